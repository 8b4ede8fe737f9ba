"""Task: the static per-experiment report (HTML + PNGs), logged to MLflow and linked from Prefect."""

from __future__ import annotations

import math
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.logging import get_run_logger

from grpo_core import names
from tasks import tracking
from tasks.comparison import best_method, describe_gain
from tasks.records import Comparison, ParentRun, ReportFiles
from tasks.runs import run_link


@task(name="publish-report")
def publish_report(
    parent: ParentRun,
    out_dir: str,
    comparison: Comparison | None = None,
    selection: Comparison | None = None,
    champion_metric: str | None = None,
) -> ReportFiles:
    """Build the report of the parent run, log it under ``report/``, link it from a Prefect
    artifact that opens (:func:`tasks.runs.run_link`), and summarise ``comparison`` in another.

    ``selection``: the methods compared on the split of ``champion_metric``, the metric the
    champion is chosen on; the summary names its best method there (as the champion rule sees it)
    beside the best on ``comparison``'s split."""
    from dashboards.report import build_report

    client = tracking.client()
    html = Path(build_report(client, parent.run_id, Path(out_dir)))
    client.log_artifacts(parent.run_id, str(html.parent), "report")
    artifact_uri = client.get_run(parent.run_id).info.artifact_uri
    logged = f"{artifact_uri}/report/{html.name}"
    link = run_link(
        parent.tracking_uri,
        parent.experiment_id,
        parent.run_id,
        artifact_uri,
        f"report/{html.name}",
    )
    create_link_artifact(
        key="fairness-report",
        link=link,
        link_text="Group fairness report (HTML)",
        description="Per-group results, worst-group curves and group weights of this flow run.",
    )
    if comparison is not None:
        markdown = _markdown(comparison, link, selection, champion_metric)
        create_markdown_artifact(key="fairness-summary", markdown=markdown)
    get_run_logger().info("report: %s", link)
    return ReportFiles(html=str(html), logged=logged)


def _markdown(
    comparison: Comparison,
    link: str,
    selection: Comparison | None = None,
    champion_metric: str | None = None,
) -> str:
    split = comparison.split
    header = ["method", "seeds", *(names.label(key) for key in names.HEADLINE)]
    rule = names.EvalKey.parse(champion_metric) if champion_metric else None
    lines = [f"# Group fairness on the {split} split", "", f"[Full report]({link})", ""]
    if rule is not None and rule.split != split:
        lines += [
            f"Every number below is on the **{split}** split; the champion is chosen on the "
            f"**{rule.split}** split ({names.label(rule.aggregate)}), never on {split}.",
            "",
        ]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in comparison.rows:
        cells = [
            "-" if row.get(k) is None else _plus_minus(row[k], row["ci95"].get(k))
            for k in names.HEADLINE
        ]
        lines.append(f"| {row['method']} | {row['seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± half-width of the 95% interval over seeds."]
    lines += ["", *(f"- {describe_gain(gain, split)}" for gain in comparison.gains)]
    best = comparison.best_worst_group_reward_accuracy
    if best:
        lines += ["", f"Best worst-group reward accuracy on {split}: **{best}**."]
    if rule is not None and selection is not None and selection.split == rule.split:
        chosen = best_method(selection.rows, rule.aggregate)
        if chosen:
            lines += [
                "",
                f"Best {names.label(rule.aggregate)} on {rule.split} (the champion rule's metric "
                f"and split): **{chosen}**.",
            ]
    return "\n".join(lines)


def _plus_minus(mean: float, half: float | None) -> str:
    return f"{mean:.4f}" if half is None or math.isnan(half) else f"{mean:.4f} ± {half:.4f}"
