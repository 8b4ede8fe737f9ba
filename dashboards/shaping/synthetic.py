"""The synthetic benchmark's runs: per setting and method, final numbers and validation curves."""

from __future__ import annotations

import pandas as pd

from dashboards.shaping.curves import thin
from dashboards.shaping.final import plus_minus
from dashboards.shaping.order import FAMILIES, ordered, sort_by
from dashboards.shaping.sweep import setting_order, short_setting
from dashboards.shaping.tables import RunTables
from grpo_core import names
from grpo_core.pareto import non_dominated

SETTINGS = ("even-imbalanced", "uneven-balanced", "uneven-imbalanced")


def _family(method: object) -> str:
    text = str(method)
    return FAMILIES["ipo"] if text.endswith("ipo") else FAMILIES["dpo"]


def _synthetic_runs(tables: RunTables) -> pd.DataFrame:
    """The synthetic_method runs outside a chi sweep, the latest one per (setting, method)."""
    runs = tables.runs[
        (tables.runs["run_type"] == "synthetic_method") & tables.runs["sweep_point"].isna()
    ]
    runs = runs.sort_values("start_time", na_position="first").drop_duplicates(
        ["setting", "method"], keep="last"
    )
    return runs.assign(family=runs["method"].map(_family))


def _setting_rank(setting: object) -> tuple[int, str]:
    return (SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS), str(setting))


def synthetic_summary(tables: RunTables) -> pd.DataFrame:
    """Per (setting, method): max validation group loss and max reward error (mean, ci95 over seeds)
    and the final group weights, from the synthetic benchmark's metrics."""
    runs = _synthetic_runs(tables)
    columns = [
        "setting",
        "family",
        "method",
        "max_val_group_loss",
        "max_val_group_loss_ci95",
        "max_reward_error",
        "max_reward_error_ci95",
        "weight_group_0",
        "weight_group_1",
        "seeds",
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    latest = tables.latest.pivot_table(
        index="run_id", columns="key", values="value", aggfunc="last"
    )
    columns_of = {
        names.synthetic_key(metric, stat): metric if stat == "mean" else f"{metric}_{stat}"
        for metric in names.SYNTHETIC_SUMMARY_METRICS
        for stat in names.SYNTHETIC_STATS
    }
    columns_of |= {names.synthetic_group_weight_key(g): f"weight_group_{g}" for g in (0, 1)}
    values = latest.reindex(columns=list(columns_of)).rename(columns=columns_of)
    table = runs[["run_id", "setting", "family", "method", "seeds"]].merge(
        values, left_on="run_id", right_index=True, how="left"
    )
    table = sort_by(table, setting=settings_of(table), method=ordered(table["method"]))
    return table[columns].reset_index(drop=True)


def synthetic_curves(tables: RunTables, max_points: int = 400) -> pd.DataFrame:
    """Worst-group validation loss over iterations: ``setting, family, method, step, value`` (thinned)."""
    runs = _synthetic_runs(tables)[["run_id", "setting", "family", "method"]]
    history = tables.history[tables.history["key"] == names.SYNTHETIC_WORST_VAL_LOSS]
    curves = history.merge(runs, on="run_id", how="inner")[
        ["setting", "family", "method", "step", "value"]
    ]
    return thin(curves, ["setting", "method"], max_points)


def settings_of(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["setting"].dropna()), key=_setting_rank)


def synthetic_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`synthetic_summary` for people: ``mean ± half-width`` and the final weights side by side."""
    return pd.DataFrame(
        {
            "setting": summary["setting"],
            "method": summary["method"],
            "worst-group val. loss": [
                plus_minus(m, h, digits)
                for m, h in zip(
                    summary["max_val_group_loss"], summary["max_val_group_loss_ci95"], strict=True
                )
            ],
            "max reward error": [
                plus_minus(m, h, digits)
                for m, h in zip(
                    summary["max_reward_error"], summary["max_reward_error_ci95"], strict=True
                )
            ],
            "final weights (group 0 / 1)": [
                f"{a:.2f} / {b:.2f}" if pd.notna(a) and pd.notna(b) else ""
                for a, b in zip(summary["weight_group_0"], summary["weight_group_1"], strict=True)
            ],
            "seeds": summary["seeds"],
        }
    )


def sweep_table(document: dict) -> pd.DataFrame:
    """The rows of a chi sweep (``grpo synthetic --pareto --json``) as the Pareto figure draws them:
    ``setting`` (its label), ``worst``/``average`` validation loss with their ``_ci95``, ``pareto``."""
    return pd.DataFrame(
        [
            {
                "setting": f"χ={row['chi']:g}",
                "worst": row["worst_val_group_loss"]["mean"],
                "worst_ci95": row["worst_val_group_loss"]["ci95"],
                "average": row["average_val_group_loss"]["mean"],
                "average_ci95": row["average_val_group_loss"]["ci95"],
                "pareto": bool(row["pareto"]),
            }
            for row in document["rows"]
        ],
        columns=["setting", "worst", "worst_ci95", "average", "average_ci95", "pareto"],
    )


def synthetic_sweeps(tables: RunTables) -> pd.DataFrame:
    """The chi sweeps of the synthetic flow run (its runs with a sweep point) as the Pareto figure
    draws them: ``problem`` (the paper's setting), ``method``, ``setting`` (``robust_mix=0.5``),
    ``worst``/``average`` final validation loss with ``_ci95``, ``pareto`` (within problem and
    method), settings by value."""
    columns = ["problem", "method", "setting", "worst", "worst_ci95", "average", "average_ci95"]
    runs = tables.runs[
        (tables.runs["run_type"] == "synthetic_method") & tables.runs["sweep_point"].notna()
    ]
    if runs.empty:
        return pd.DataFrame(columns=[*columns, "pareto"])
    latest = tables.latest.pivot_table(
        index="run_id", columns="key", values="value", aggfunc="last"
    )
    keys = {
        names.synthetic_key("max_val_group_loss", "mean"): "worst",
        names.synthetic_key("max_val_group_loss", "ci95"): "worst_ci95",
        names.synthetic_key(names.SYNTHETIC_AVERAGE_VAL_LOSS, "mean"): "average",
        names.synthetic_key(names.SYNTHETIC_AVERAGE_VAL_LOSS, "ci95"): "average_ci95",
    }
    values = latest.reindex(columns=list(keys)).rename(columns=keys)
    table = runs.merge(values, left_on="run_id", right_index=True, how="inner").dropna(
        subset=["worst", "average"]
    )
    table = table.assign(
        problem=table["setting"],
        setting=table["sweep_point"].map(short_setting),
        order=[
            (_setting_rank(p), str(m), setting_order(s))
            for p, m, s in zip(table["setting"], table["method"], table["sweep_point"], strict=True)
        ],
    )
    table = table.sort_values("order", kind="stable")[columns].reset_index(drop=True)
    front = pd.Series(False, index=table.index)
    for _, part in table.groupby(["problem", "method"], sort=False):
        front[part.index] = non_dominated(list(part["worst"]), list(part["average"]))
    return table.assign(pareto=front.astype(bool))
