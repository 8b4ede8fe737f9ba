"""Tasks of the sweep flow: where each child trains, and the sweep's worst-group vs average summary
(table, Pareto front, figure) logged to the parent MLflow run and to Prefect."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from dashboards import figures, shaping
from dashboards.render_matplotlib import to_matplotlib
from grpo_core import names
from grpo_core.hashing import hash_json
from grpo_core.lm.config import ModelConfig
from tasks import tracking
from tasks.records import ChildResult, Failure, ParentRun
from tasks.sweep_config import SweepConfig, SweepPoint

SWEEP_ARTIFACTS = "sweep"
"""The parent run's artifact folder of the summary: ``sweep.json``, one CSV and PNG per metric."""


DEFAULT_CHUNK_COST = ModelConfig.model_fields["chunk_cost_tokens"].default


def sweep_dir(config: SweepConfig) -> Path:
    """The sweep's folder, named by its content: running the same sweep again resumes its children
    from their checkpoints (the runner and the Pareto choices do not change what is trained)."""
    trained = config.model_dump(mode="json", exclude={"runner", "pareto_split", "pareto_metric"})
    trained["run"].pop("execution")
    model = trained["run"]["model"]
    model.pop("compile", None)  # how fast, not what: a resumed sweep may switch it
    # added later: at its default, older sweeps keep their folder
    if model.get("chunk_cost_tokens") == DEFAULT_CHUNK_COST:
        model.pop("chunk_cost_tokens")
    output = Path(config.run.execution.output_dir).resolve()
    return output / "sweeps" / f"{config.run.name}-{hash_json(trained)[:12]}"


def child_dir(config: SweepConfig, point: SweepPoint, method: str, seed: int) -> str:
    return str(sweep_dir(config) / point.slug / f"{method}-seed{seed}")


def shared_runs(config: SweepConfig, outcomes: list[ChildResult | Failure]) -> dict[str, str]:
    """``{run id: run id of the training it reports}`` of the children that did not train, given
    every child's outcome in the order of ``config.children()`` (the sweep-children flow's)."""
    children = config.children()
    trained = {
        (c.point, c.method, c.seed): o.run_id
        for c, o in zip(children, outcomes, strict=True)
        if c.trains and isinstance(o, ChildResult)
    }
    return {
        o.run_id: trained[c.trained_at, c.method, c.seed]
        for c, o in zip(children, outcomes, strict=True)
        if not c.trains and isinstance(o, ChildResult)
    }


def shared_settings(config: SweepConfig) -> dict[tuple[str, str], str]:
    """``{(method, setting): the setting whose training it reports}`` of the (method, setting)
    pairs that did not train (the same effective recipe as an earlier setting, for every seed)."""
    return {
        (c.method, c.point.label): c.trained_at.label for c in config.children() if not c.trains
    }


@task(name="summarize-sweep")
def summarize_sweep(
    parent: ParentRun, config: SweepConfig, results: list[ChildResult]
) -> dict[str, Any]:
    """Per method and setting, the worst-group and average metric (mean and 95% interval over
    seeds) on ``config.pareto_split`` with the Pareto front marked, for both headline metrics; the
    figure of ``config.pareto_metric`` per method. A row whose setting trained nothing (its
    method's effective recipe is that of an earlier setting) names that setting in ``shares``
    (else None). All logged under the parent run's ``sweep/``; returns the document logged as
    ``sweep.json``."""
    values = shaping.result_values([r.as_json() for r in results], "setting", "sweep_point")
    shared = shared_settings(config)
    tables = {
        metric: _with_shares(shaping.sweep_points(values, config.pareto_split, metric), shared)
        for metric in names.HEADLINE_METRICS
    }
    client = tracking.client()
    document = {
        "split": config.pareto_split,
        "metric": config.pareto_metric,
        "grid": {k: list(v) for k, v in config.grid.items()},
        "children": config.size,
        "trainings": sum(c.trains for c in config.children()),
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
            "%s %s: worst group %.4f ± %.4f, average %.4f ± %.4f%s%s",
            row.method, row.setting, row.worst, row.worst_ci95, row.average, row.average_ci95,
            " (Pareto front)" if row.pareto else "",
            f" (the training of {row.shares})" if row.shares else "",
        )  # fmt: skip
    return document


def _with_shares(table: pd.DataFrame, shared: dict[tuple[str, str], str]) -> pd.DataFrame:
    """``table`` with a ``shares`` column: the setting whose training a row reports, or None."""
    shares = [shared.get(key) for key in zip(table["method"], table["setting"], strict=True)]
    return table.assign(shares=pd.Series(shares, index=table.index, dtype=object))
