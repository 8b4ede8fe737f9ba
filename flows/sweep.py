"""The ``sweep`` flow: data -> (SFT) -> every grid point x method x seed on a task runner -> the
worst-group vs average summary with its Pareto front -> report. Its one parameter is the sweep config.

Children with the same effective recipe, method and seed (``SweepConfig.children``) train once: the
first trains, the others get a child run that copies its metrics and names it (``grpo.shared_with``).

The children run in the subflow ``sweep-children`` under the task runner the config names (threads,
or Dask through prefect-dask), so a deployment chooses it with a parameter like the CLI does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.shared import data_and_start_model, where_it_is
from grpo_core import names
from tasks.children import share_child, train_child
from tasks.records import ChildResult, Failure, ParentRun, PreparedData, StartModelRef
from tasks.reporting import publish_report
from tasks.runners import task_runner
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.sweep import child_dir, shared_runs, summarize_sweep, sweep_dir
from tasks.sweep_config import SweepChild, SweepConfig

RUN_FIELDS = ("method", "seed", "sweep_point", "run_id", "run_dir", "timing", "metrics")
"""What the flow's result says of each child (plus ``shared_with``, the run that trained it, for a
child that did not train)."""


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
    shared = shared_runs(config, outcomes)
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
        "runs": [
            r.json_fields(RUN_FIELDS)
            | ({"shared_with": shared[r.run_id]} if r.run_id in shared else {})
            for r in results
        ],
        "failed": [f.as_json() for f in failed],
    }


@flow(name="sweep-children", description="The sweep's child trainings, on the sweep's task runner.")
def sweep_children(
    config: SweepConfig,
    data: PreparedData,
    start_model: StartModelRef,
    parent: ParentRun,
) -> list[ChildResult | Failure]:
    """Submit every child that trains to this flow's task runner, then give each child that
    shares its training its own run (:func:`share_child`); returns every child's outcome, in the
    order of ``config.children()``, each with its ``sweep_point``."""
    children = config.children()
    futures = {}
    for c in children:
        if c.trains:
            futures[c.point, c.method, c.seed] = train_child.submit(
                config.child_config(c.point), c.method, c.seed, data, start_model,
                child_dir(config, c.point, c.method, c.seed), parent, _label(c),
                {names.SWEEP_POINT: c.point.label},
            )  # fmt: skip
    trained: dict[tuple, ChildResult | Failure] = {}
    for where, future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):  # the task itself crashed (a lost Dask worker)
            outcome = Failure.of(outcome, where[1], where[2], run_id=None)
        trained[where] = outcome
    outcomes: list[ChildResult | Failure] = []
    for c in children:
        outcome = trained[c.trained_at, c.method, c.seed]
        if not c.trains and isinstance(outcome, ChildResult):
            outcome = share_child(
                config.child_config(c.point), outcome, data.slugs, parent, _label(c),
                {names.SWEEP_POINT: c.point.label},
            )  # fmt: skip
        elif not c.trains:
            reason = f"shares the training at {c.trained_at.label}, which failed: {outcome.reason}"
            outcome = outcome.model_copy(update={"reason": reason})
        outcomes.append(outcome.model_copy(update={"sweep_point": c.point.label}))
    return outcomes


def _label(child: SweepChild) -> str:
    return f"{child.method}-seed{child.seed} {child.point.label}"
