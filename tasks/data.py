"""Task: group the data (load, validate, split, statistics), cached on its content key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.data.cache import prepared_data_dir, prepared_data_key
from grpo_core.data.config import DataConfig
from grpo_core.data.storage import QUARANTINE_FILE, load_groups, load_summary
from grpo_core.lm.config import ModelConfig
from grpo_core.lm.presets import chat_template_tokenizer
from tasks import tracking
from tasks.records import PreparedData

if TYPE_CHECKING:
    from grpo_core.data.headroom import Headroom


def data_key(data: DataConfig, model: ModelConfig | None, cache_dir: str | Path) -> str:
    """:func:`grpo_core.data.cache.prepared_data_key` of ``data``: the input :func:`group_data` is
    cached on, so its cache misses when the source file, the data code or the template changes."""
    tokenizer = chat_template_tokenizer(data, model, cache_dir) if model is not None else None
    return prepared_data_key(data, getattr(tokenizer, "chat_template", None))


@task(name="group-data", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def group_data(
    data: DataConfig, key: str, output_dir: str, cache_dir: str, model: ModelConfig | None = None
) -> PreparedData:
    """The grouped splits of ``data`` in ``<output_dir>/data/<key>`` (:func:`data_key`), prepared
    unless already there; returns the folder, its summary and its groups."""
    logger = get_run_logger()
    out, fresh = prepared_data_dir(
        data,
        Path(output_dir).resolve() / "data",
        chat_template_tokenizer=chat_template_tokenizer(data, model, cache_dir) if model else None,
        key=key,
    )
    summary, groups = load_summary(out), load_groups(out)
    logger.info("%s grouped data in %s", "prepared" if fresh else "reusing", out)
    for name, counts in summary["groups"].items():
        logger.info(
            "group %-30s slug %-28s train %5d  validation %4d  test %4d",
            name, counts["slug"], counts["train"], counts["validation"], counts["test"],
        )  # fmt: skip
    rejected = summary.get("rejected_rows") or {}
    if rejected:
        logger.warning("rejected rows (see %s): %s", out / QUARANTINE_FILE, rejected)
    logger.info("imbalance ratio (max/min train pairs): %.2f", groups.imbalance_ratio)
    return PreparedData(
        data_dir=str(out), summary=summary, slugs=groups.slugs, groups=tuple(groups.names)
    )


@task(name="hold-out-group", task_run_name="hold-out-{group}")
def hold_out_group(data: PreparedData, group: str) -> PreparedData:
    """The grouped data without ``group`` (every split), beside the full data's folder; returns
    the same fields as :func:`group_data` (the full data's ``slugs``: runs are evaluated on all)."""
    from grpo_core.data.holdout import without_group

    source = Path(data.data_dir)
    target = without_group(
        source, source.parent / f"{source.name}-without-{data.slug_of(group)}", group
    )
    get_run_logger().info("training data without %s: %s", group, target)
    return data.model_copy(update={"data_dir": str(target), "summary": load_summary(target)})


def headroom_metrics(
    headroom: Mapping[str, Headroom], slugs: Mapping[str, str]
) -> dict[str, float]:
    """The ``headroom/<split>/...`` metrics of :func:`grpo_core.data.headroom.prepared_headroom`'s
    result: worst-group and average bounds, per-group accuracies of the policy that reaches the
    worst-group lower bound (keyed by slug; ``slugs`` maps slug -> group name), and the prompt
    counts behind the bound."""
    slug_of = {name: slug for slug, name in slugs.items()}
    metrics: dict[str, float] = {}
    for split, bound in headroom.items():
        for scope, upper, lower in (
            ("worst_group", bound.worst_group_upper, bound.worst_group_lower),
            ("average", bound.average_upper, bound.average_lower),
        ):
            upper_key, lower_key = names.HEADROOM_BOUNDS
            metrics[names.headroom_key(split, scope, upper_key)] = upper  # type: ignore[arg-type]
            metrics[names.headroom_key(split, scope, lower_key)] = lower  # type: ignore[arg-type]
        for group, accuracy in bound.group_accuracy_lower.items():
            key = names.headroom_key(split, "group", names.HEADROOM_GROUP_METRIC, slug_of[group])
            metrics[key] = accuracy
        for count in names.HEADROOM_COUNTS:
            metrics[names.headroom_key(split, "data", count)] = getattr(bound, count)
    return metrics


@task(name="log-headroom")
def log_headroom(parent_run_id: str, data: PreparedData) -> dict[str, Any]:
    """What a group-blind policy can reach on every split of ``data`` (the best worst-group reward
    accuracy the data allow, :mod:`grpo_core.data.headroom`), on the parent run: the
    ``headroom/<split>/...`` metrics and ``headroom.json``; returns ``{split: summary}``."""
    from grpo_core.data.headroom import prepared_headroom

    headroom = prepared_headroom(data.data_dir)
    client = tracking.client()
    tracking.log_metrics(client, parent_run_id, headroom_metrics(headroom, data.slugs))
    summaries = {split: bound.summary() for split, bound in headroom.items()}
    tracking.log_json(client, parent_run_id, summaries, names.HEADROOM_ARTIFACT)
    logger = get_run_logger()
    for split, bound in headroom.items():
        logger.info(
            "headroom %s: a group-blind policy reaches worst-group reward accuracy %.3f..%.3f (%s)",
            split, bound.worst_group_lower, bound.worst_group_upper, bound.reason,
        )  # fmt: skip
    return summaries
