"""The ``experiment`` flow: data -> (SFT) -> each method x seed -> per-group evaluation -> (each
group left out once: trained without it, evaluated on all) -> comparison -> champion registration ->
report. Its one parameter is the run config (a typed form in the UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.shared import data_and_start_model, where_it_is
from grpo_core import names
from tasks.children import train_child
from tasks.comparison import compare_methods, compare_unseen_groups, summarize_seeds
from tasks.data import hold_out_group
from tasks.records import ChildResult, Failure
from tasks.registry import register_champion
from tasks.reporting import publish_report
from tasks.run_config import RunConfig, demo_config
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.stages import sft

RUN_FIELDS = ("method", "seed", "run_id", "run_dir", "timing")
"""What the flow's result says of each trained run."""


@flow(
    name="experiment",
    description="Group robust vs. plain preference optimisation, evaluated per group.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def experiment(config: RunConfig = demo_config()) -> dict[str, Any]:  # noqa: B008 (Prefect reads the default)
    """Returns the JSON document that ``grpo run --json`` writes: where the runs are, the data's
    summary, the comparison, the unseen groups, the champion, the report, the runs and failures."""
    output = Path(config.execution.output_dir).resolve()
    parent = open_parent_run(config)
    data, start_model = data_and_start_model(config, parent)
    if config.leave_one_group_out and len(data.groups) < 3:
        raise ValueError(
            f"leave_one_group_out needs three or more groups; the data has {len(data.groups)}"
        )
    results: list[ChildResult] = []
    failed: list[Failure] = []
    for seed in config.seeds:
        for method in config.methods:
            run_dir = str(output / "runs" / parent.run_id / f"{method}-seed{seed}")
            outcome = train_child(
                config, method, seed, data, start_model, run_dir, parent, f"{method}-seed{seed}"
            )
            # A failed run is marked FAILED with its reason; the others go on.
            (failed if isinstance(outcome, Failure) else results).append(outcome)
    held_out: list[ChildResult] = []
    if config.leave_one_group_out:  # each group once unseen: trained without it, evaluated on all
        for group in data.groups:
            without = hold_out_group(data, group)
            start = sft(config, without.data_dir) if config.sft.enabled else start_model
            for seed in config.seeds:
                for method in config.methods:
                    name = f"{method}-seed{seed}-without-{Path(without.data_dir).name}"
                    outcome = train_child(
                        config, method, seed, without, start, str(output / "runs" / parent.run_id / name),
                        parent, f"{method}-seed{seed} without {group}",
                        {names.HELD_OUT_GROUP: group}, eval_data=data,
                    )  # fmt: skip
                    outcome = outcome.model_copy(update={"held_out_group": group})
                    (failed if isinstance(outcome, Failure) else held_out).append(outcome)
    if not results:
        reasons = dict.fromkeys(f.reason for f in failed)  # the same reason is said once
        runs = ", ".join(f"{f.method} seed {f.seed}" for f in failed)
        raise RuntimeError(f"every training run failed ({runs}): " + "; ".join(reasons))
    summarize_seeds(parent, results, data.slugs, config.eval.splits)
    split = "test" if "test" in config.eval.splits else config.eval.splits[-1]
    comparison = compare_methods(results, data.slugs, split)
    # the champion is chosen on another split (validation): the summary names its best there too
    rule_split = names.EvalKey.parse(config.tracking.champion_metric).split  # type: ignore[union-attr]
    selection = None
    if rule_split in config.eval.splits:
        selection = (
            comparison if rule_split == split else compare_methods(results, data.slugs, rule_split)
        )
    unseen = compare_unseen_groups(results, held_out, data.slugs, split) if held_out else None
    champion = None
    if config.tracking.register_models and config.tracking.log_checkpoints:
        champion = register_champion(
            config.name, results, config.tracking.champion_metric, config.tracking.promotion_rule()
        )
    report = publish_report(
        parent, str(output / "reports" / parent.run_id), comparison, selection,
        config.tracking.champion_metric,
    )  # fmt: skip
    close_run(parent.run_id)
    return {
        **where_it_is(parent),
        "data": data.summary,
        "comparison": comparison.as_json(),
        "unseen_groups": None if unseen is None else unseen.as_json(),
        "champion": None if champion is None else champion.as_json(),
        "report": report.as_json(),
        "runs": [r.json_fields(RUN_FIELDS) for r in results],
        "failed": [f.as_json() for f in failed],
    }
