"""The static report of one flow run: one self-contained HTML file plus the PNGs and CSVs beside it.

:func:`build_report` reads the flow run from MLflow; :func:`build_report_from_tables` does the rest
from :class:`dashboards.shaping.RunTables` alone, so it is tested without MLflow. The HTML embeds
its figures as base64 PNGs and needs no network to open.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient

from dashboards import figures, shaping
from dashboards.render_matplotlib import to_matplotlib
from grpo_core import names
from grpo_core.names import metric_label

REPORT_FILE = "report.html"
GAP_KEYS = tuple(k for k in names.SUMMARY if names.split_aggregate(k)[0] != "average")
"""Differences between methods are shown for the worst group and the spread between groups."""


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    tables: list[tuple[str, str, pd.DataFrame]] = field(
        default_factory=list
    )  # (file stem, caption, table)
    notes: list[str] = field(default_factory=list)


def build_report(
    client_or_tracking_uri: MlflowClient | str, parent_run_id: str, out_dir: str | Path
) -> Path:
    """Write the report of the flow run ``parent_run_id`` to ``out_dir``; return the HTML file's path.

    Reads MLflow only (the caller logs ``out_dir`` as the parent run's ``report/`` artifacts).
    """
    from dashboards.mlflow_source import load_flow_run

    tables, parent = load_flow_run(client_or_tracking_uri, parent_run_id)
    headroom = read_headroom(client_or_tracking_uri, parent_run_id)
    return build_report_from_tables(tables, out_dir, parent, headroom)


def read_headroom(client_or_tracking_uri: MlflowClient | str, run_id: str) -> dict | None:
    """The parent run's ``headroom.json`` (``{split: summary}``); None when it has none."""
    import json
    import tempfile

    from dashboards.mlflow_source import as_client

    client = as_client(client_or_tracking_uri)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = client.download_artifacts(run_id, names.HEADROOM_ARTIFACT, folder)
            return json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:  # an older flow run without it, or a damaged one: only the figure is lost
        return None


def build_report_from_tables(
    tables: shaping.RunTables,
    out_dir: str | Path,
    parent: Mapping[str, object] | None = None,
    headroom: Mapping[str, dict] | None = None,
) -> Path:
    """Write ``report.html``, one PNG per figure and one CSV per table to ``out_dir``.

    Args:
        tables: the flow run's runs, latest metrics and histories.
        parent: the parent run's row (``run_id``, ``flow_run_name``, ``flow_run_url``, ``dataset``,
            ``git_commit``, ``experiment_name``, ...), shown in the header; optional.
        headroom: the parent run's ``headroom.json``; on two groups, its frontier is drawn.
    Returns:
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = report_sections(tables, headroom)
    blocks = []
    for section in sections:
        parts = [f"<h2>{html.escape(section.title)}</h2>"]
        if section.intro:
            parts.append(f"<p class='intro'>{html.escape(section.intro)}</p>")
        parts += [f"<p class='note'>{html.escape(note)}</p>" for note in section.notes]
        for stem, fig in section.figures:
            png = _png(fig)
            (out / f"{stem}.png").write_bytes(png)
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(stem)}'></figure>"
            )
        for stem, caption, table in section.tables:
            table.to_csv(out / f"{stem}.csv", index=False)
            parts.append(
                f"<h3>{html.escape(caption)}</h3>"
                + table.to_html(
                    index=False,
                    na_rep="",
                    float_format=lambda v: f"{v:.4g}",
                    border=0,
                    classes="table",
                )
            )
        blocks.append("<section>" + "\n".join(parts) + "</section>")
    document = _page(_header(tables, parent or {}), "\n".join(blocks))
    path = out / REPORT_FILE
    path.write_text(document, encoding="utf-8")
    return path


def report_sections(
    tables: shaping.RunTables, headroom: Mapping[str, dict] | None = None
) -> list[Section]:
    """The report's content: figures and tables per section, with notes on what is missing."""
    sections = []
    train = tables.runs[tables.runs["run_type"] == "train"]
    if train["sweep_point"].notna().any():
        sections.append(_sweep_section(tables))
    elif not train.empty:
        seen = train[train["held_out_group"].isna()]
        sections += _experiment_sections(
            tables.select(seen["run_id"]), shaping.headroom_metrics(tables), headroom
        )
        if train["held_out_group"].notna().any():
            sections.append(_unseen_section(tables))
    if (tables.runs["run_type"] == "synthetic_method").any():
        sections.append(_synthetic_section(tables))
    if not sections:
        sections.append(
            Section(
                "Nothing to show", notes=["This flow run has no training or synthetic runs (yet)."]
            )
        )
    return sections


def _experiment_sections(
    tables: shaping.RunTables,
    bounds: pd.DataFrame | None = None,
    headroom: Mapping[str, dict] | None = None,
) -> list[Section]:
    final = shaping.final_metrics(tables)
    split = "test" if (final["split"] == "test").any() else "validation"
    groups = list(tables.groups)
    per_group = Section(
        "Per-group metrics",
        f"Final evaluation on the {split} split, mean over seeds with 95% Student-t intervals.",
        notes=shaping.status_notes(tables),
    )
    if bounds is not None and not bounds.empty:
        per_group.tables += _headroom_tables(bounds, final, tables.groups)
        per_group.notes += [
            sentence
            for s in ("validation", "test")
            if (sentence := shaping.headroom_sentence(bounds, final, s)) is not None
        ]
    frontier = (headroom or {}).get(split) or {}
    if len(frontier.get("frontier") or []) >= 2 and len(frontier.get("groups") or []) == 2:
        first, second = frontier["groups"]
        slug_of = {name: slug for slug, name in tables.groups.items()}
        methods = shaping.group_points(
            final, split, slug_of.get(first, first), slug_of.get(second, second)
        )
        per_group.figures.append(
            (
                f"headroom_frontier_{split}",
                to_matplotlib(
                    figures.frontier_figure(
                        [tuple(p) for p in frontier["frontier"]], (first, second), methods, split
                    )
                ),
            )
        )
    for metric in names.HEADLINE_METRICS:
        bars = shaping.group_bars(final, split, metric, tables.groups)
        if bars.empty:
            continue
        per_group.figures.append(
            (
                f"group_{metric}_{split}",
                to_matplotlib(figures.group_bar_figure(bars, metric, split)),
            )
        )
        per_group.tables.append(
            (
                f"group_{metric}_{split}",
                f"{split} {metric_label(metric)} per group",
                _group_table(bars),
            )
        )
    if final.empty:
        per_group.notes.append("No evaluation metrics were logged yet.")

    seeds = Section(
        "Across seeds",
        "Mean ± half-width of the 95% Student-t interval over seeds; gaps paired by seed where the seeds match.",
    )
    summary = shaping.seed_summary(final, split)
    if not summary.empty:
        seeds.tables.append(
            (f"summary_{split}", f"{split} aggregates per method", shaping.summary_table(summary))
        )
    gaps = pd.concat(
        [shaping.method_gaps(final, split, key) for key in GAP_KEYS], ignore_index=True
    )
    if not gaps.empty:
        seeds.figures.append((f"gaps_{split}", to_matplotlib(figures.gap_figure(gaps))))
        seeds.tables.append(
            (f"gaps_{split}", "differences between methods (method − baseline)", _gap_table(gaps))
        )
    elif not summary.empty:
        seeds.notes.append("No pair of comparable methods (e.g. gr_ipo and ipo) among these runs.")

    training = Section("Over training")
    curves, source = shaping.training_curves(tables, "loss")
    if curves.empty:
        training.notes.append("No periodic validation nor group losses were logged over training.")
    else:
        if source.startswith("training batches"):
            training.notes.append(
                "No periodic validation was logged: the curves show the training batches' group losses."
            )
        summary_curves = shaping.thin(shaping.curve_summary(curves), ["method", "series"])
        training.figures.append(
            ("curves_loss", to_matplotlib(figures.curves_figure(summary_curves, "loss", source)))
        )
    weights = shaping.group_weights(tables)
    if weights.empty:
        training.notes.append("No group-robust run logged group weights.")
    else:
        training.figures.append(
            (
                "group_weights",
                to_matplotlib(
                    figures.weights_figure(shaping.thin(weights, ["method", "group"]), groups)
                ),
            )
        )
    return [per_group, seeds, training]


def _unseen_section(tables: shaping.RunTables) -> Section:
    values = shaping.held_out_values(tables)
    split = shaping.last_split(values)
    section = Section(
        "Groups never seen in training (leave one group out)",
        f"Each group's metric on the {split} split when the method trained with it (seen) and "
        "without it (unseen), mean over seeds with 95% intervals; worse_unseen > 0: the method "
        "does worse on the group it never saw.",
    )
    for metric in names.HEADLINE_METRICS:
        table = shaping.unseen_groups(values, split, metric, dict(tables.groups))
        section.tables.append((f"unseen_{metric}", metric_label(metric), table))
    return section


def _sweep_section(tables: shaping.RunTables) -> Section:
    values = shaping.sweep_values(tables)
    splits = shaping.evaluated_splits(values["key"])
    section = Section(
        "Worst group against average, per setting of the sweep",
        "Each setting's worst-group and average metric, mean over seeds with 95% Student-t "
        "intervals; the Pareto front is the settings that no other setting of the same method "
        "beats on both.",
        notes=shaping.status_notes(tables),
    )
    if not splits:
        section.notes.append("No child of this sweep has been evaluated yet.")
        return section
    for metric in names.HEADLINE_METRICS:
        for split in splits:
            table = shaping.sweep_points(values, split, metric)
            shown = table.assign(setting=table["setting"].map(shaping.short_setting))
            for method in shown["method"].unique():
                spec = figures.pareto_figure(shown[shown["method"] == method], method, metric)
                spec = replace(spec, title=f"{spec.title}, {split}")
                section.figures.append((f"pareto_{split}_{metric}_{method}", to_matplotlib(spec)))
            section.tables.append(
                (f"sweep_{split}_{metric}", f"{metric_label(metric)} on {split}", table)
            )
    return section


def _synthetic_section(tables: shaping.RunTables) -> Section:
    summary = shaping.synthetic_summary(tables)
    curves = shaping.synthetic_curves(tables)
    section = Section(
        "Synthetic benchmark",
        "Worst-group validation loss over iterations per family, and the max reward error per method (mean over seeds, 95% intervals).",
    )
    section.figures.append(("synthetic", to_matplotlib(figures.synthetic_figure(curves, summary))))
    section.tables.append(
        (
            "synthetic_summary",
            "per setting and method (mean ± 95% interval over seeds)",
            shaping.synthetic_table(summary),
        )
    )
    if curves.empty:
        section.notes.append("No validation-loss curves were logged.")
    sweeps = shaping.synthetic_sweeps(tables)
    for (problem, method), sweep in sweeps.groupby(["problem", "method"], sort=False):
        spec = figures.pareto_figure(sweep, method)
        spec = replace(spec, title=f"{problem}: {spec.title}")
        section.figures.append((f"pareto_{problem}_{method}", to_matplotlib(spec)))
    if not sweeps.empty:
        section.tables.append(
            (
                "synthetic_pareto",
                "chi sweeps: final validation loss (mean and 95% interval over seeds; pareto: "
                "not dominated)",
                sweeps,
            )
        )
    return section


def _headroom_tables(
    bounds: pd.DataFrame, final: pd.DataFrame, groups: Mapping[str, str]
) -> list[tuple[str, str, pd.DataFrame]]:
    """Per split, each method's reward accuracy (mean over seeds) beside the group-blind bound."""
    out = []
    for split in ("validation", "test"):
        table = shaping.headroom_table(bounds, final, split, dict(groups))
        if not table.empty:
            caption = (
                f"{split} reward accuracy beside what a group-blind policy can reach on the same "
                "data (worst group: lower..upper bound; per group: that policy's accuracy)"
            )
            out.append((f"headroom_{split}", caption, table))
    return out


def _group_table(bars: pd.DataFrame) -> pd.DataFrame:
    text = [
        shaping.plus_minus(m, h, 4) + (" (worst)" if w else "")
        for m, h, w in zip(bars["mean"], bars["ci95"], bars["is_worst"], strict=True)
    ]
    wide = bars.assign(text=text).pivot(index="method", columns="group_name", values="text")
    wide = wide.loc[shaping.ordered(wide.index), list(dict.fromkeys(bars["group_name"]))]
    wide.columns.name = None
    return wide.reset_index()


def _gap_table(gaps: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "comparison": gaps["method"] + " − " + gaps["baseline"],
            "metric": gaps["label"],
            "difference": [
                shaping.plus_minus(d, h, 4)
                for d, h in zip(gaps["difference"], gaps["ci95"], strict=True)
            ],
            "seeds": gaps["n"],
            "paired": gaps["paired"].map({True: "yes", False: "no"}),
            "verdict": gaps["verdict"],
        }
    )


def _when(value: object) -> str | None:
    return (
        pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")
        if value is not None and pd.notna(value)
        else None
    )


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _header(tables: shaping.RunTables, parent: Mapping[str, object]) -> str:
    train = tables.runs[tables.runs["run_type"] == "train"]
    name = parent.get("flow_run_name") or parent.get("run_name") or "flow run"
    facts = {
        "experiment": parent.get("experiment_name"),
        "MLflow parent run": parent.get("run_id"),
        "status": None if parent.get("status") == "RUNNING" else parent.get("status"),
        "started": _when(parent.get("start_time")),
        "dataset": parent.get("dataset"),
        "methods": ", ".join(shaping.ordered(train["method"].dropna())),
        "seeds": ", ".join(str(s) for s in sorted(train["seed"].dropna().unique())),
        "groups": ", ".join(tables.groups.values()),
        "git commit": parent.get("git_commit"),
        "report written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
        if v not in (None, "")
    )
    url = parent.get("flow_run_url")
    link = f" · <a href='{html.escape(str(url))}'>Prefect flow run</a>" if url else ""
    return f"<h1>GRPO report: {html.escape(str(name))}</h1><p class='sub'>Group Robust Preference Optimization{link}</p><table class='facts'>{rows}</table>"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
section { margin-top: 2rem; border-top: 1px solid #ddd; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #eee; text-align: left; }
table.facts th { color: #555; font-weight: 600; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.4rem 0.8rem; }
.intro { color: #444; }
"""


def _page(header: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>GRPO report</title>
<style>{STYLE}</style></head>
<body>
{header}
{body}
</body></html>
"""
