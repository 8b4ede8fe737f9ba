"""Tasks of the sweep flow: where each child trains, and the sweep's worst-group vs average summary
(table, Pareto front, figure) logged to the parent MLflow run and to Prefect."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from dashboards import figures, shaping
from dashboards.render_matplotlib import to_matplotlib
from grpo_core import names
from grpo_core.hashing import hash_json
from tasks import tracking
from tasks.records import ChildResult, ParentRun
from tasks.sweep_config import SweepConfig, SweepPoint

SWEEP_ARTIFACTS = "sweep"
"""The parent run's artifact folder of the summary: ``sweep.json``, one CSV and PNG per metric."""


def sweep_dir(config: SweepConfig) -> Path:
    """The sweep's folder, named by its content: running the same sweep again resumes its children
    from their checkpoints (the runner and the Pareto choices do not change what is trained)."""
    trained = config.model_dump(mode="json", exclude={"runner", "pareto_split", "pareto_metric"})
    trained["run"].pop("execution")
    output = Path(config.run.execution.output_dir).resolve()
    return output / "sweeps" / f"{config.run.name}-{hash_json(trained)[:12]}"


def child_dir(config: SweepConfig, point: SweepPoint, method: str, seed: int) -> str:
    return str(sweep_dir(config) / point.slug / f"{method}-seed{seed}")


@task(name="summarize-sweep")
def summarize_sweep(
    parent: ParentRun, config: SweepConfig, results: list[ChildResult]
) -> dict[str, Any]:
    """Per method and setting, the worst-group and average metric (mean and 95% interval over
    seeds) on ``config.pareto_split`` with the Pareto front marked, for both headline metrics; the
    figure of ``config.pareto_metric`` per method. All logged under the parent run's ``sweep/``;
    returns the document logged as ``sweep.json``."""
    values = shaping.result_values([r.as_json() for r in results], "setting", "sweep_point")
    tables = {
        metric: shaping.sweep_points(values, config.pareto_split, metric)
        for metric in names.HEADLINE_METRICS
    }
    client = tracking.client()
    document = {
        "split": config.pareto_split,
        "metric": config.pareto_metric,
        "grid": {k: list(v) for k, v in config.grid.items()},
        "tables": {m: shaping.json_records(t) for m, t in tables.items()},
    }
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for metric, table in tables.items():
            table.to_csv(out / f"sweep_{metric}.csv", index=False)
        shown = tables[config.pareto_metric].assign(
            setting=lambda t: t["setting"].map(shaping.short_setting)
        )
        for method in shown["method"].unique():
            spec = figures.pareto_figure(
                shown[shown["method"] == method], method, config.pareto_metric
            )
            to_matplotlib(spec).savefig(out / f"pareto_{method}.png", dpi=120, bbox_inches="tight")
        client.log_artifacts(parent.run_id, folder, SWEEP_ARTIFACTS)
    tracking.log_json(client, parent.run_id, document, "sweep.json")
    table = tables[config.pareto_metric]
    create_table_artifact(
        key="sweep-pareto",
        table=shaping.json_records(table),
        description=f"Worst-group against average {config.pareto_metric} on "
        f"{config.pareto_split}, mean and 95% interval over seeds; pareto: not dominated.",
    )
    for row in table.itertuples():
        get_run_logger().info(
            "%s %s: worst group %.4f ± %.4f, average %.4f ± %.4f%s",
            row.method, row.setting, row.worst, row.worst_ci95, row.average, row.average_ci95,
            " (Pareto front)" if row.pareto else "",
        )  # fmt: skip
    return document
