"""A sweep's children -> the worst-group vs average table of its settings, Pareto front marked.

The flow (from its children's results), the report and the dashboard (from MLflow) all pass the
children's latest metrics here, so the three show the same numbers.
"""

from __future__ import annotations

import pandas as pd

from grpo_core import names, stats
from grpo_core.pareto import non_dominated

SWEEP_COLUMNS = [
    "method", "setting", "seeds", "worst", "worst_ci95", "average", "average_ci95", "pareto",
]  # fmt: skip


def sweep_points(values: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    """One row per (method, setting) of the children's metrics, in first-seen order.

    Args:
        values: ``run_id, method, setting, key, value``: the latest metrics of each child run,
            ``setting`` its sweep point (``grpo.sweep_point``).
        split, metric: the worst-group and average ``metric`` on ``split`` are set against each other.
    Returns:
        :data:`SWEEP_COLUMNS`, settings in the grid's order (numbers by value): mean over seeds and 95% interval half-width of the worst-group and
        the average metric, ``seeds`` the children with both values, and ``pareto`` whether no other
        setting of the same method dominates (by the metric's direction). A child without both
        values (failed, not evaluated on ``split``) is left out.
    """
    worst_key = names.eval_key(split, "worst_group", metric)
    average_key = names.eval_key(split, "average", metric)
    wanted = values[values["key"].isin([worst_key, average_key])]
    if wanted.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    wide = (
        wanted.pivot_table(
            index=["run_id", "method", "setting"], columns="key", values="value", sort=False
        )
        .dropna()
        .reset_index()
    )
    if worst_key not in wide or average_key not in wide or wide.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    rows = []
    for (method, setting), part in wide.groupby(["method", "setting"], sort=False):
        worst, worst_half, n = stats.t_interval(part[worst_key])
        average, average_half, _ = stats.t_interval(part[average_key])
        rows.append([method, setting, n, worst, worst_half, average, average_half, False])
    rows.sort(key=lambda row: setting_order(row[1]))  # stable: methods stay in first-seen order
    out = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    lower_is_better = not names.HIGHER_IS_BETTER[metric]
    for _, index in out.groupby("method", sort=False).groups.items():
        part = out.loc[index]
        out.loc[index, "pareto"] = non_dominated(
            list(part["worst"]), list(part["average"]), lower_is_better=lower_is_better
        )
    out["pareto"] = out["pareto"].astype(bool)
    return out


def setting_order(label: str) -> tuple:
    """``a=0.25, b=x`` sorts by its values, numbers by value and before words."""
    key = []
    for part in label.split(", "):
        name, _, value = part.partition("=")
        try:
            key.append((name, 0, float(value), ""))
        except ValueError:
            key.append((name, 1, 0.0, value))
    return tuple(key)


def short_setting(label: str) -> str:
    """``group_weights.robust_mix=0.5, loss.beta=0.1`` -> ``robust_mix=0.5, beta=0.1``."""
    return ", ".join(part.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + part.split("=", 1)[1]
                     if "=" in part else part for part in label.split(", "))  # fmt: skip


def sweep_values(tables) -> pd.DataFrame:
    """``run_id, method, setting, key, value`` of the children of :class:`RunTables` that carry a
    sweep point (the input of :func:`sweep_points`)."""
    kids = tables.runs[tables.runs["sweep_point"].notna()][["run_id", "method", "sweep_point"]]
    kids = kids.rename(columns={"sweep_point": "setting"})
    return kids.merge(tables.latest, on="run_id", how="inner")[
        ["run_id", "method", "setting", "key", "value"]
    ]


def held_out_values(tables) -> pd.DataFrame:
    """``run_id, method, held_out_group, key, value`` of the train runs of :class:`RunTables`
    (``held_out_group`` empty for the runs on every group; the input of :func:`unseen_groups`)."""
    train = tables.runs[tables.runs["run_type"] == "train"]
    return train[["run_id", "method", "held_out_group"]].merge(tables.latest, on="run_id")


def result_values(results, column: str, field: str) -> pd.DataFrame:
    """``run_id, method, <column>, key, value`` of a flow's children results (dicts with
    ``run_id``, ``method``, ``metrics`` and ``field``, which may be absent): the input of
    :func:`sweep_points` and :func:`unseen_groups` straight from the flow."""
    return pd.DataFrame(
        [
            (r["run_id"], r["method"], r.get(field), key, value)
            for r in results
            for key, value in r["metrics"].items()
        ],
        columns=["run_id", "method", column, "key", "value"],
    )


def last_split(values: pd.DataFrame) -> str:
    """The split a table of one split shows: test if the values have it, else validation."""
    return (evaluated_splits(values["key"]) or ["validation"])[-1]


UNSEEN_COLUMNS = [
    "method", "group", "seeds", "seen", "seen_ci95", "unseen", "unseen_ci95", "worse_unseen",
]  # fmt: skip


def unseen_groups(
    values: pd.DataFrame, split: str, metric: str, slugs: dict[str, str]
) -> pd.DataFrame:
    """How much each method loses on a group it never saw (leave-one-group-out).

    Args:
        values: ``run_id, method, held_out_group, key, value``: the latest metrics of the children,
            ``held_out_group`` empty for the runs trained on every group.
        slugs: ``{slug: group name}``.
    Returns:
        :data:`UNSEEN_COLUMNS`, one row per method and held-out group: the group's ``metric`` on
        ``split`` when trained with it (``seen``) and without it (``unseen``), mean and 95% interval
        over seeds, and ``worse_unseen``, the difference in the direction that is worse (positive:
        the method does worse on the group it never saw).
    """
    higher_is_better = names.HIGHER_IS_BETTER[metric]
    rows = []
    held = values[values["held_out_group"].notna()]
    seen_runs = values[values["held_out_group"].isna()]
    for (method, group), part in held.groupby(["method", "held_out_group"], sort=False):
        slug = next((s for s, name in slugs.items() if name == group), None)
        key = names.eval_key(split, "group", metric, slug or "")
        unseen, unseen_half, n = stats.t_interval(part.loc[part["key"] == key, "value"])
        own = seen_runs[(seen_runs["method"] == method) & (seen_runs["key"] == key)]
        seen, seen_half, _ = stats.t_interval(own["value"])
        worse = seen - unseen if higher_is_better else unseen - seen
        rows.append([method, group, n, seen, seen_half, unseen, unseen_half, worse])
    return pd.DataFrame(rows, columns=UNSEEN_COLUMNS)


def evaluated_splits(keys: pd.Series) -> list[str]:
    """The splits that ``eval/...`` keys among ``keys`` were evaluated on, validation then test."""
    found = {parsed.split for parsed in map(names.EvalKey.parse, keys) if parsed is not None}
    return [split for split in ("validation", "test") if split in found]
