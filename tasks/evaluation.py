"""Tasks of the evaluate flow: find the model, open its MLflow run, compare with training time."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from grpo_core import names
from tasks import tracking
from tasks.records import PreparedData, ResolvedModel
from tasks.registry import checkpoint_uri, registered_model_name


@task(name="resolve-model")
def resolve_model(experiment_name: str, model: str, download_dir: str) -> ResolvedModel:
    """A local checkpoint for ``model``: an alias, a version, a ``models:/`` URI, or a folder.

    Registry models are downloaded; a folder is its own checkpoint, with no source run.
    """
    tracking.require_reachable()
    if Path(model).exists():
        folder = str(Path(model).resolve())
        return ResolvedModel(
            checkpoint=folder, uri=folder, label=Path(model).name, source_run_id=None
        )
    client = tracking.client()
    name = registered_model_name(experiment_name)
    if model.startswith("models:/"):
        uri = model
    elif model.isdigit():
        uri = f"models:/{name}/{model}"
    else:
        uri = f"models:/{name}@{model}"
    body = uri.removeprefix("models:/")
    reg_name, _, ref = body.partition("@") if "@" in body else body.partition("/")
    version = (
        client.get_model_version_by_alias(reg_name, ref)
        if "@" in body
        else client.get_model_version(reg_name, ref)
    )
    target = Path(download_dir) / reg_name / f"v{version.version}"
    source = checkpoint_uri(client, version)  # the raw checkpoint, not the pyfunc model
    checkpoint = target / Path(source).name  # download_artifacts keeps the last path component
    if (
        not checkpoint.is_dir()
    ):  # download beside it, then rename: an interrupted download is never reused
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as partial:
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=partial, tracking_uri=client.tracking_uri
            )
            os.replace(Path(partial) / checkpoint.name, checkpoint)
    get_run_logger().info(
        "evaluating %s (version %s of %s, from run %s)",
        uri,
        version.version,
        reg_name,
        version.run_id,
    )
    return ResolvedModel(
        checkpoint=str(checkpoint), uri=uri, label=f"{reg_name}-v{version.version}",
        source_run_id=version.run_id,
    )  # fmt: skip


@task(name="open-evaluation-run")
def open_evaluation_run(config: Any, model: ResolvedModel, data: PreparedData) -> str:
    """The evaluate flow's MLflow run (its config, the model and data as tags); returns its id."""
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, config.name)
    tags = {
        names.RUN_TYPE: "evaluation",
        names.MODEL_URI: model.uri,
        names.DATASET: data.summary.get("source", "unknown"),
        names.GROUP_SLUGS: json.dumps(data.slugs),
        names.GIT_COMMIT: tracking.git_commit(),
        **tracking.prefect_tags(),
    }
    if model.source_run_id:
        tags[names.SOURCE_RUN_ID] = model.source_run_id
    run = client.create_run(experiment_id, run_name=f"evaluate-{model.label}", tags=tags)
    tracking.log_config(client, run.info.run_id, config)
    return run.info.run_id


@task(name="compare-with-training")
def compare_with_training(
    run_id: str, model: ResolvedModel, metrics: dict[str, float], slugs: dict[str, str]
) -> dict[str, float]:
    """Per-group (and worst-group) change since the model's own training-time evaluation, as
    ``drift/...`` keys (:mod:`grpo_core.names`).

    Logged to the evaluation run and shown as a Prefect markdown table; empty for a plain checkpoint.
    """
    if not model.source_run_id:
        return {}
    client = tracking.client()
    before = client.get_run(model.source_run_id).data.metrics
    changed = {
        parsed: value - before[key]
        for key, value in metrics.items()
        if key in before
        and (parsed := names.EvalKey.parse(key)) is not None
        and parsed.scope in ("group", "worst_group")
        and parsed.metric != names.COUNT
    }
    drift = {str(key.as_drift()): change for key, change in changed.items()}
    if drift:
        tracking.log_metrics(client, run_id, drift)
        rows = ["| metric | at training | now | change |", "|---|---|---|---|"]
        for key in sorted(changed, key=str):
            if key.metric in names.HEADLINE_METRICS:
                source = str(key)
                rows.append(
                    f"| {source} | {before[source]:.4f} | {metrics[source]:.4f} | {changed[key]:+.4f} |"
                )
        create_markdown_artifact(
            key="group-drift", markdown="# Per-group drift since training\n\n" + "\n".join(rows)
        )
    return drift
