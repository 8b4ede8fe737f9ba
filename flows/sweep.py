"""The ``sweep`` flow: data -> (SFT) -> every grid point x method x seed on a task runner -> the
worst-group vs average summary with its Pareto front -> report. Its one parameter is the sweep config.

The children run in the subflow ``sweep-children`` under the task runner the config names (threads,
or Dask through prefect-dask), so a deployment chooses it with a parameter like the CLI does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.shared import data_and_start_model, where_it_is
from grpo_core import names
from tasks import tracking
from tasks.children import train_child
from tasks.reporting import publish_report
from tasks.runners import task_runner
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.sweep import child_dir, summarize_sweep, sweep_dir
from tasks.sweep_config import SweepConfig


@flow(
    name="sweep",
    description="Every grid point x method x seed, trained on a task runner (local or Dask), "
    "worst group against average with the Pareto front.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def sweep(config: SweepConfig = SweepConfig()) -> dict[str, Any]:  # noqa: B008 (Prefect reads the default)
    run = config.run
    parent = open_parent_run(
        config, run_type="sweep", extra_tags={names.RUNNER: config.runner.describe()}
    )
    data, start_model = data_and_start_model(run, parent)
    runner = task_runner(config.runner, run.device)
    children = sweep_children.with_options(task_runner=runner)
    outcomes = children(config, data, start_model, parent)
    results = [o for o in outcomes if "failure" not in o]
    failed = [o["failure"] | {"sweep_point": o["sweep_point"]} for o in outcomes if "failure" in o]
    if not results:
        reasons = dict.fromkeys(f["reason"] for f in failed)
        raise RuntimeError(f"every child of the sweep failed: {'; '.join(reasons)}")
    summary = summarize_sweep(parent, config, results)
    report = publish_report(
        parent, str(Path(run.execution.output_dir).resolve() / "reports" / parent["run_id"])
    )
    close_run(parent["run_id"])
    return {
        **where_it_is(parent),
        "runner": config.runner.describe(),
        "sweep_dir": str(sweep_dir(config)),
        "data": data["summary"],
        "summary": summary,
        "report": report,
        "runs": [
            {k: r[k] for k in ("method", "seed", "sweep_point", "run_id", "run_dir", "timing")}
            | {"metrics": r["metrics"]}
            for r in results
        ],
        "failed": failed,
    }


@flow(name="sweep-children", description="The sweep's child trainings, on the sweep's task runner.")
def sweep_children(
    config: SweepConfig,
    data: dict[str, Any],
    start_model: dict[str, str],
    parent: dict[str, str],
) -> list[dict[str, Any]]:
    """Submit every child to this flow's task runner; each outcome carries its ``sweep_point``."""
    submitted = []
    for point in config.points():
        child = config.child_config(point)
        for seed in child.seeds:
            for method in child.methods:
                label = f"{method}-seed{seed} {point.label}"
                future = train_child.submit(
                    child, method, seed, data, start_model,
                    child_dir(config, point, method, seed), parent, label,
                    {names.SWEEP_POINT: point.label},
                )  # fmt: skip
                submitted.append((future, point, method, seed))
    outcomes = []
    for future, point, method, seed in submitted:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):  # the task itself crashed (a lost Dask worker)
            reason = tracking.error_line(outcome)
            outcome = {
                "failure": {"method": method, "seed": seed, "run_id": None, "reason": reason}
            }
        outcomes.append({**outcome, "sweep_point": point.label})
    return outcomes
