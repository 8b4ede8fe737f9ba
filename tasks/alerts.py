"""Drift alerts: the rule, the task that raises one, and the installer of its Prefect automation.

Rule (:func:`degraded_groups`): a group is degraded when its ``metric`` on the evaluation data is
worse than at the model's training-time evaluation by more than ``threshold`` (metric units,
direction from :data:`grpo_core.names.HIGHER_IS_BETTER`). A degraded group marks the MLflow
evaluation run (``grpo.drift_status`` = ``alert``, ``grpo.drift_alert``) and emits the Prefect event
:data:`grpo_core.names.DRIFT_EVENT`; the automation of ``automations/drift-alert.yaml`` sends it to a
webhook (``grpo alerts install``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import yaml
from prefect import task
from prefect.events import emit_event
from prefect.logging import get_run_logger

from grpo_core import names
from tasks import tracking
from tasks.records import DriftAlert, ResolvedModel

AUTOMATION_FILE = Path(__file__).resolve().parents[1] / "automations" / "drift-alert.yaml"
WEBHOOK_BLOCK = "grpo-drift-webhook"


def degraded_groups(drift: Mapping[str, float], metric: str, threshold: float) -> dict[str, float]:
    """``{slug: fall}`` of the groups whose ``metric`` got worse by more than ``threshold``.

    ``drift``: ``drift/<split>/group/<slug>/<metric>`` -> now minus at training; the fall is that
    change signed so that positive is worse; the largest fall over the splits is kept.
    """
    higher = names.HIGHER_IS_BETTER[metric]
    falls: dict[str, float] = {}
    for key, change in drift.items():
        parsed = names.EvalKey.parse(key)
        if parsed is None or parsed.scope != "group" or parsed.metric != metric:
            continue
        fall = -change if higher else change
        if fall > threshold:
            falls[parsed.group] = max(fall, falls.get(parsed.group, fall))
    return dict(sorted(falls.items(), key=lambda item: -item[1]))


def summary(falls: Mapping[str, float], slugs: Mapping[str, str], metric: str) -> str:
    """One line: which groups fell, by how much."""
    parts = [f"{slugs.get(slug, slug)} {metric} {-fall:+.4g}" for slug, fall in falls.items()]
    return f"{len(falls)} group(s) worse than at training: " + ", ".join(parts) + "."


@task(name="raise-drift-alert")
def raise_drift_alert(
    run_id: str,
    model: ResolvedModel,
    drift: dict[str, float],
    slugs: dict[str, str],
    metric: str,
    threshold: float,
) -> DriftAlert:
    """Mark the evaluation run and, for a degraded group, emit the drift event."""
    client = tracking.client()
    logger = get_run_logger()
    if not model.source_run_id:
        tracking.set_tags(client, run_id, {names.DRIFT_STATUS: "no-baseline"})
        return DriftAlert(status="no-baseline", degraded={})
    falls = degraded_groups(drift, metric, threshold)
    if not falls:
        tracking.set_tags(client, run_id, {names.DRIFT_STATUS: "ok"})
        logger.info("no group's %s fell by more than %g since training", metric, threshold)
        return DriftAlert(status="ok", degraded={})
    text = summary(falls, slugs, metric)
    tracking.set_tags(client, run_id, {names.DRIFT_STATUS: "alert", names.DRIFT_ALERT: text})
    emit_event(
        event=names.DRIFT_EVENT,
        resource={
            "prefect.resource.id": names.DRIFT_RESOURCE_PREFIX + model.uri,
            "prefect.resource.name": model.label,
        },
        payload={
            "summary": text,
            "groups": {slugs.get(s, s): fall for s, fall in falls.items()},
            "metric": metric,
            "threshold": threshold,
            "mlflow_run_id": run_id,
            "source_run_id": model.source_run_id,
        },
    )
    logger.warning("drift alert for %s: %s", model.uri, text)
    return DriftAlert(status="alert", degraded=falls, summary=text)


def install_drift_alert(
    webhook_url: str, automation_file: Path = AUTOMATION_FILE
) -> dict[str, str]:
    """Save the webhook block and (re)create the automation of ``automation_file`` on the Prefect
    server of ``PREFECT_API_URL``. Returns the block's and the automation's ids."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    spec = yaml.safe_load(automation_file.read_text())
    block = CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK,
        url=webhook_url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    block_id = block.save(WEBHOOK_BLOCK, overwrite=True)
    for action in spec["actions"]:
        if action["type"] == "send-notification":
            action["block_document_id"] = str(block_id)
    with contextlib.suppress(ValueError):  # ValueError: none of that name yet
        Automation.read(name=spec["name"]).delete()
    automation = Automation.model_validate(spec).create()
    return {"block_id": str(block_id), "automation_id": str(automation.id), "name": spec["name"]}
