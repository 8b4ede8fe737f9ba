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
from tasks.children import train_child
from tasks.records import ChildResult, Failure, ParentRun, PreparedData, StartModelRef
from tasks.reporting import publish_report
from tasks.runners import task_runner
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.sweep import child_dir, summarize_sweep, sweep_dir
from tasks.sweep_config import SweepConfig

RUN_FIELDS = ("method", "seed", "sweep_point", "run_id", "run_dir", "timing", "metrics")
"""What the flow's result says of each trained child."""


@flow(
    name="sweep",
    description="Every grid point x method x seed, trained on a task runner (local or Dask), "
    "worst group against average with the Pareto front.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def sweep(config: SweepConfig = SweepConfig()) -> dict[str, Any]:  # noqa: B008 (Prefect reads the default)
    """Returns the JSON document that ``grpo sweep --json`` writes: where the runs are, the runner,
    the data's summary, the worst-group vs average summary, the report, the runs and failures."""
    run = config.run
    parent = open_parent_run(
        config, run_type="sweep", extra_tags={names.RUNNER: config.runner.describe()}
    )
    data, start_model = data_and_start_model(run, parent)
    runner = task_runner(config.runner, run.device)
    children = sweep_children.with_options(task_runner=runner)
    outcomes = children(config, data, start_model, parent)
    results = [o for o in outcomes if isinstance(o, ChildResult)]
    failed = [o for o in outcomes if isinstance(o, Failure)]
    if not results:
        reasons = dict.fromkeys(f.reason for f in failed)
        raise RuntimeError(f"every child of the sweep failed: {'; '.join(reasons)}")
    summary = summarize_sweep(parent, config, results)
    report = publish_report(
        parent, str(Path(run.execution.output_dir).resolve() / "reports" / parent.run_id)
    )
    close_run(parent.run_id)
    return {
        **where_it_is(parent),
        "runner": config.runner.describe(),
        "sweep_dir": str(sweep_dir(config)),
        "data": data.summary,
        "summary": summary,
        "report": report.as_json(),
        "runs": [r.json_fields(RUN_FIELDS) for r in results],
        "failed": [f.as_json() for f in failed],
    }


@flow(name="sweep-children", description="The sweep's child trainings, on the sweep's task runner.")
def sweep_children(
    config: SweepConfig,
    data: PreparedData,
    start_model: StartModelRef,
    parent: ParentRun,
) -> list[ChildResult | Failure]:
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
    outcomes: list[ChildResult | Failure] = []
    for future, point, method, seed in submitted:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):  # the task itself crashed (a lost Dask worker)
            outcome = Failure.of(outcome, method, seed, run_id=None)
        outcomes.append(outcome.model_copy(update={"sweep_point": point.label}))
    return outcomes
