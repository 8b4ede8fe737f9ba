"""Task: one child of a flow run, from its MLflow run to its evaluated and logged checkpoint.

The experiment flow calls it once per method and seed; the sweep flow submits it to a task runner
(threads or Dask), and logs a child that would train what another already trains with
:func:`share_child` instead. Whatever happens, the child's MLflow run ends FINISHED or FAILED with
its reason, and a failure is returned, not raised, so one child never takes the others down.
"""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.methods import Method
from tasks import tracking
from tasks.records import ChildResult, Failure, ParentRun, PreparedData, StartModelRef
from tasks.run_config import RunConfig
from tasks.runners import gpu_pool
from tasks.runs import close_run, log_checkpoint, open_child_run
from tasks.stages import evaluate_split, train_run


@task(name="train-child", task_run_name="{label}")
def train_child(
    config: RunConfig,
    method: Method,
    seed: int,
    data: PreparedData,
    start_model: StartModelRef,
    run_dir: str,
    parent: ParentRun,
    label: str,
    extra_tags: dict[str, str] | None = None,
    eval_data: PreparedData | None = None,
) -> ChildResult | Failure:
    """Open the child run, train ``method`` with ``seed`` on ``data`` (on one free GPU of this
    machine, if any), evaluate every split of ``config.eval.splits`` on ``eval_data`` (default:
    ``data``; the full data of a leave-one-group-out run), log the checkpoint and close the run.

    Returns the result with its ``metrics`` and ``value`` (the champion metric), or the failure.
    """
    eval_data = eval_data or data
    child = open_child_run(
        parent, config, method, seed, eval_data.slugs, extra_tags, run_name=label
    )
    try:
        with gpu_pool(config.device).claim() as gpu_env:
            worker_env = config.execution.worker_env() | gpu_env
            state = train_run(
                config, method, seed, data.data_dir, start_model, run_dir, child, worker_env,
                return_state=True,
            )  # fmt: skip
            if state.is_failed():  # the run is already FAILED with its reason
                return Failure.of(state.result(raise_on_failure=False), method, seed, child)
            trained = state.result()
            metrics: dict[str, float] = {}
            for split in config.eval.splits:
                metrics |= evaluate_split(
                    run_dir, eval_data.data_dir, split, child, label, device=config.device,
                    batch_size=config.eval.batch_size, timeout_minutes=config.execution.timeout_minutes,
                    step=trained.steps, worker_env=worker_env,
                    trust_remote_code=config.model.trust_remote_code, start_model=start_model.path,
                )  # fmt: skip
        if config.tracking.log_checkpoints:
            log_checkpoint(child, run_dir)
    except Exception as error:  # an evaluation or the tracking server: this child fails alone
        failure = Failure.of(error, method, seed, child)
        get_run_logger().error("%s failed: %s", label, failure.reason)
        tracking.fail_run(tracking.client(), child, failure.reason)
        return failure
    close_run(child)
    return ChildResult(
        **trained.model_dump(), metrics=metrics, value=metrics.get(config.tracking.champion_metric)
    )


@task(name="share-child", task_run_name="{label}")
def share_child(
    config: RunConfig,
    trained: ChildResult,
    slugs: dict[str, str],
    parent: ParentRun,
    label: str,
    extra_tags: dict[str, str] | None = None,
) -> ChildResult | Failure:
    """A child that trains nothing because ``trained`` already trained its effective recipe, method
    and seed (at another grid point of a sweep): its own child run of ``parent``, with its config's
    params and ``extra_tags``, tagged ``grpo.shared_with`` = ``trained``'s run, holding a copy of
    that run's latest metrics (so every grid point has a run with its numbers; the checkpoint and
    the training curves stay in the run that trained).

    Returns ``trained`` with this run's id, or the failure (this run FAILED with its reason).
    """
    tags = (extra_tags or {}) | {names.SHARED_WITH: trained.run_id}
    child = open_child_run(
        parent, config, trained.method, trained.seed, slugs, tags, run_name=label
    )
    client = tracking.client()
    try:
        metrics = client.get_run(trained.run_id).data.metrics
        metrics.pop(names.TRAIN_STEP_SIZE, None)  # the trained point's eta_alpha, not this one's
        tracking.log_metrics(client, child, metrics, step=trained.steps or 0)
    except Exception as error:  # the tracking server: this child fails alone
        failure = Failure.of(error, trained.method, trained.seed, child)
        get_run_logger().error("%s failed: %s", label, failure.reason)
        tracking.fail_run(client, child, failure.reason)
        return failure
    close_run(child)
    return trained.model_copy(update={"run_id": child})
