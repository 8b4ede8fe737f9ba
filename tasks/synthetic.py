"""Task: one setting of the paper's synthetic benchmark, logged as one MLflow child run per method."""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.methods import Method
from grpo_core.synthetic.experiment import (
    SyntheticConfig,
    make_problem,
    run_methods,
    summarize_results,
)
from grpo_core.synthetic.pareto import chi_sweep, summarize_sweep
from tasks import tracking
from tasks.records import ParentRun


def _open_method_run(
    client, parent: ParentRun, config: SyntheticConfig, method: Method, run_name: str,
    tags: dict[str, str] | None = None, params: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """A child run of the synthetic flow's parent for one method (``tags``: e.g. its chi), with the
    config as params."""
    run = client.create_run(
        parent.experiment_id,
        run_name=run_name,
        tags={
            names.PARENT_RUN: parent.run_id,
            names.RUN_TYPE: "synthetic_method",
            names.SETTING: config.setting,
            names.METHOD: method,
            names.FEATURE_TYPE: config.feature_type,
            names.SOLVER: config.solver,
            names.SEEDS: str(config.seeds),
            **tracking.prefect_tags(),
            **(tags or {}),
        },
    )
    tracking.log_config(client, run.info.run_id, config, extra={"method": method, **(params or {})})
    return run.info.run_id


@task(name="synthetic-setting", task_run_name="synthetic-{config.setting}")
def run_synthetic_setting(config: SyntheticConfig, parent: ParentRun) -> dict[str, Any]:
    """Every method of ``config`` on every seed; the validation curve and final metrics go to MLflow."""
    logger = get_run_logger()
    client = tracking.client()
    problem = make_problem(config)
    results = run_methods(problem, config, config.methods)  # one loop call per loss family
    for result in results:
        run_id = _open_method_run(
            client, parent, config, result.method, f"{config.setting}-{result.method}"
        )
        document = summarize_results(config, [result])["results"][result.method]
        buffer = tracking.MetricBuffer(client, run_id)
        for step, value in zip(result.curve_steps, result.curve_worst_val_loss, strict=True):
            buffer.add({names.SYNTHETIC_WORST_VAL_LOSS: value}, step)
        final = {
            names.synthetic_key(metric, stat): document[metric][stat]
            for metric in names.SYNTHETIC_SUMMARY_METRICS
            for stat in names.SYNTHETIC_STATS
        }
        for g, weight in enumerate(document["final_group_weights"]):
            final[names.synthetic_group_weight_key(g)] = weight
        buffer.add(final, result.curve_steps[-1] if result.curve_steps else 0)
        buffer.flush()
        tracking.log_json(client, run_id, document, "results.json")
        tracking.end_run(client, run_id)
        loss, error = document["max_val_group_loss"], document["max_reward_error"]
        logger.info(
            "%s %s: worst-group val loss %.4f +- %.4f, max reward error %.4f +- %.4f",
            config.setting, result.method, loss["mean"], loss["ci95"], error["mean"], error["ci95"],
        )  # fmt: skip
    summary = summarize_results(config, results)
    create_table_artifact(
        key=f"synthetic-{config.setting}",
        table=[
            {
                "method": m,
                "max val group loss": round(r["max_val_group_loss"]["mean"], 4),
                "ci95": round(r["max_val_group_loss"]["ci95"], 4),
                "max reward error": round(r["max_reward_error"]["mean"], 4),
                "ci95 ": round(r["max_reward_error"]["ci95"], 4),
                "group weights": json.dumps([round(w, 3) for w in r["final_group_weights"]]),
            }
            for m, r in summary["results"].items()
        ],
        description=f"Synthetic {config.setting}: mean and 95% interval over {config.seeds} seeds.",
    )
    return {
        m: {k: r[k] for k in ("max_val_group_loss", "max_reward_error", "final_group_weights")}
        for m, r in summary["results"].items()
    }


@task(name="synthetic-pareto", task_run_name="synthetic-pareto-{config.setting}")
def run_synthetic_pareto(
    config: SyntheticConfig, parent: ParentRun, method: Method, chis: tuple[float, ...]
) -> dict[str, Any]:
    """The chi sweep of ``method`` on every seed: one MLflow child run per chi (tagged with its sweep
    point) with the worst-group and average validation loss, and the Pareto front in the log."""
    logger = get_run_logger()
    client = tracking.client()
    results = chi_sweep(make_problem(config), config, method, chis)
    document = summarize_sweep(config, method, chis, results)
    for row in document["rows"]:
        point = f"group_weights.robust_mix={row['chi']:g}"
        run_id = _open_method_run(
            client, parent, config, method, f"{config.setting}-{method}-chi{row['chi']:g}",
            {names.SWEEP_POINT: point}, {"chi": str(row["chi"])},
        )  # fmt: skip
        final = {
            names.synthetic_key(metric, stat): row[source][stat]
            for metric, source in (
                ("max_val_group_loss", "worst_val_group_loss"),
                (names.SYNTHETIC_AVERAGE_VAL_LOSS, "average_val_group_loss"),
                ("max_reward_error", "max_reward_error"),
            )
            for stat in names.SYNTHETIC_STATS
        }
        for g, weight in enumerate(row["final_group_weights"]):
            final[names.synthetic_group_weight_key(g)] = weight
        tracking.log_metrics(client, run_id, final, step=0)
        tracking.end_run(client, run_id)
        logger.info(
            "%s %s chi=%g: worst-group val loss %.4f +- %.4f, average %.4f +- %.4f%s",
            config.setting, method, row["chi"], row["worst_val_group_loss"]["mean"],
            row["worst_val_group_loss"]["ci95"], row["average_val_group_loss"]["mean"],
            row["average_val_group_loss"]["ci95"], " (Pareto front)" if row["pareto"] else "",
        )  # fmt: skip
    return document
