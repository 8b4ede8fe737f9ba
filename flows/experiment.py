"""The ``experiment`` flow: data -> (SFT) -> each method x seed -> per-group evaluation -> comparison
-> champion registration -> report. Its one parameter is the run config (a typed form in the UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from tasks.comparison import compare_methods
from tasks.data import data_key, group_data
from tasks.registry import register_champion
from tasks.reporting import publish_report
from tasks.run_config import RunConfig, demo_config
from tasks.runs import (
    FAIL_OPEN_RUNS_ON_ERROR,
    close_run,
    log_checkpoint,
    log_dataset,
    open_child_run,
    open_parent_run,
)
from tasks.training import cache_dir, evaluate_split, failure_of, sft, train_method


@flow(
    name="experiment",
    description="Group robust vs. plain preference optimisation, evaluated per group.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def experiment(config: RunConfig = demo_config()) -> dict[str, Any]:  # noqa: B008 (Prefect reads the default)
    output = Path(config.execution.output_dir).resolve()
    parent = open_parent_run(config)
    inputs = (
        config.data,
        data_key(config.data, config.model, cache_dir()),
        str(output),
        cache_dir(),
    )
    data = group_data(*inputs, model=config.model)
    if not Path(data["data_dir"]).exists():  # a cached result whose folder was deleted since
        data = group_data.with_options(refresh_cache=True)(*inputs, model=config.model)
    log_dataset(parent["run_id"], config, data)
    start_model = sft(config, data["data_dir"])
    results, failed = [], []
    for seed in config.seeds:
        for method in config.methods:
            child = open_child_run(parent, config, method, seed, data["slugs"])
            run_dir = str(output / "runs" / parent["run_id"] / f"{method}-seed{seed}")
            state = train_method(
                config, method, seed, data["data_dir"], start_model, run_dir, child,
                return_state=True,
            )  # fmt: skip
            if state.is_failed():  # the run is marked FAILED with its reason; the others go on
                failed.append(failure_of(state, method, seed, child))
                continue
            trained = state.result()
            metrics: dict[str, float] = {}
            for split in config.eval.splits:
                metrics |= evaluate_split(
                    run_dir, data["data_dir"], split, child, f"{method}-seed{seed}",
                    device=config.device, batch_size=config.eval.batch_size,
                    timeout_minutes=config.execution.timeout_minutes, step=trained["steps"],
                )  # fmt: skip
            if config.tracking.log_checkpoints:
                log_checkpoint(child, run_dir)
            close_run(child)
            results.append(
                {
                    **trained,
                    "metrics": metrics,
                    "value": metrics.get(config.tracking.champion_metric),
                }
            )
    if not results:
        reasons = dict.fromkeys(f["reason"] for f in failed)  # the same reason is said once
        runs = ", ".join(f"{f['method']} seed {f['seed']}" for f in failed)
        raise RuntimeError(f"every training run failed ({runs}): " + "; ".join(reasons))
    split = "test" if "test" in config.eval.splits else config.eval.splits[-1]
    comparison = compare_methods(results, data["slugs"], split)
    champion = None
    if config.tracking.register_models and config.tracking.log_checkpoints:
        champion = register_champion(
            config.name, results, config.tracking.champion_metric, config.tracking.promotion_rule()
        )
    report = publish_report(parent, str(output / "reports" / parent["run_id"]), comparison)
    close_run(parent["run_id"])
    return {
        "parent_run_id": parent["run_id"],
        "experiment_id": parent["experiment_id"],
        "tracking_uri": parent["tracking_uri"],
        "flow_run_id": str(flow_run.id),
        "data": data["summary"],
        "comparison": comparison,
        "champion": champion,
        "report": report,
        "runs": [
            {k: r[k] for k in ("method", "seed", "run_id", "run_dir", "timing")} for r in results
        ],
        "failed": failed,
    }
