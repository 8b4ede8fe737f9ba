"""Tasks: open and close the MLflow runs of a flow run (a parent, then one child per method x seed)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import Dataset, DatasetInput, InputTag
from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.config import Section
from grpo_core.methods import Method
from tasks import tracking
from tasks.records import ParentRun, PreparedData
from tasks.run_config import RunConfig


def dataset_name(config: RunConfig) -> str:
    if config.data.path is None:
        return f"opinions-{config.data.synthetic.num_groups}groups-seed{config.data.seed}"
    return f"{Path(config.data.path).name}:{config.data.format}"


def run_link(
    tracking_uri: str, experiment_id: str, run_id: str, artifact_uri: str, path: str = ""
) -> str:
    """A link that opens a run (or its artifact ``path``) from a browser: the MLflow UI's page
    when the store is a server (its artifacts are ``mlflow-artifacts:/`` URIs, no place on this
    disk), the ``file://`` URI of the real file when the artifacts are local, else the artifact
    URI itself (an object store's)."""
    if tracking_uri.startswith(("http://", "https://")):
        page = f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"{page}/artifacts/{path}" if path else page
    target = f"{artifact_uri.rstrip('/')}/{path}" if path else artifact_uri
    scheme = urlparse(target).scheme
    if scheme == "file":
        return Path(url2pathname(urlparse(target).path)).resolve().as_uri()
    if not scheme:
        return Path(target).resolve().as_uri()
    return target


@task(name="open-parent-run")
def open_parent_run(
    config: Section,
    run_type: names.RunType = "experiment",
    extra_tags: dict[str, str] | None = None,
) -> ParentRun:
    """The flow run's MLflow parent run: config params, config.json, tags, and a Prefect link to it."""
    tracking.require_reachable()
    client = tracking.client()
    experiment_id = tracking.experiment_id(client, config.name)
    tags = {
        names.RUN_TYPE: run_type,
        names.GIT_COMMIT: tracking.git_commit(),
        **tracking.prefect_tags(),
        **tracking.process_tags(),
        **(extra_tags or {}),
    }
    run_config = getattr(config, "run", config)  # a sweep's config holds its run config
    if isinstance(run_config, RunConfig):
        tags[names.DATASET] = dataset_name(run_config)
    run_name = tags.get(names.prefect_tag("flow_run_name"))
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    tracking.log_config(client, run.info.run_id, config)
    link = run_link(client.tracking_uri, experiment_id, run.info.run_id, run.info.artifact_uri)
    create_link_artifact(
        key="mlflow-run",
        link=link,
        link_text=f"MLflow parent run {run.info.run_id}",
        description=f"MLflow run of this flow run ({client.tracking_uri})",
    )
    get_run_logger().info(
        "MLflow parent run %s in experiment %r (%s)",
        run.info.run_id,
        config.name,
        client.tracking_uri,
    )
    return ParentRun(
        run_id=run.info.run_id, experiment_id=experiment_id, tracking_uri=client.tracking_uri
    )


@task(name="log-dataset")
def log_dataset(parent_run_id: str, config: RunConfig, data: PreparedData) -> None:
    """The prepared dataset as an MLflow input (with group counts) and the slug-to-name map."""
    client = tracking.client()
    summary = data.summary
    profile = {
        "groups": {
            name: {k: v for k, v in c.items() if k != "slug"}
            for name, c in summary["groups"].items()
        },
        "total": summary["total"],
        "imbalance_ratio": summary["imbalance_ratio"],
        "rejected_rows": summary.get("rejected_rows", {}),
    }
    schema = json.dumps(
        {
            "mlflow_colspec": [
                {"name": c, "type": "string"}
                for c in ("pair_id", "question_id", "group", "prompt", "chosen", "rejected")
            ]
        }
    )
    entity = Dataset(
        name=dataset_name(config),
        digest=Path(data.data_dir).name,
        source_type="local",
        source=json.dumps({"uri": data.data_dir}),
        schema=schema,
        profile=json.dumps(profile),
    )
    client.log_inputs(
        parent_run_id,
        datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", "train")])],
    )
    tracking.log_json(
        client,
        parent_run_id,
        {"groups": list(data.groups), "slugs": data.slugs, "summary": summary},
        "groups.json",
    )


@task(name="open-child-run", task_run_name="open-run-{method}-seed{seed}")
def open_child_run(
    parent: ParentRun,
    config: RunConfig,
    method: Method,
    seed: int,
    slugs: dict[str, str],
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
) -> str:
    """A child run of ``parent`` for one method and seed (an explicit parent-run tag), with
    ``extra_tags`` added (a sweep's point)."""
    client = tracking.client()
    tags = {
        names.PARENT_RUN: parent.run_id,
        names.RUN_TYPE: "train",
        names.METHOD: method,
        names.SEED: str(seed),
        names.DATASET: dataset_name(config),
        names.GROUP_SLUGS: json.dumps(slugs),
        names.GIT_COMMIT: tracking.git_commit(),
        **tracking.prefect_tags(),
        **tracking.process_tags(),
        **(extra_tags or {}),
    }
    run = client.create_run(
        parent.experiment_id, run_name=run_name or f"{method}-seed{seed}", tags=tags
    )
    extra = {
        "method": method,
        "seed": str(seed),
        "effective_learning_rate": str(config.learning_rate_for(method)),
    }
    tracking.log_config(client, run.info.run_id, config, extra=extra)
    return run.info.run_id


@task(name="log-checkpoint")
def log_checkpoint(run_id: str, run_dir: str) -> None:
    """The run folder's newest checkpoint (safetensors, tokenizer, config, trainer state) as the
    run's ``checkpoint/`` artifacts."""
    from grpo_core.lm.checkpoint import latest_checkpoint

    found = latest_checkpoint(run_dir)
    if found is None:
        raise FileNotFoundError(f"training wrote no checkpoint under {run_dir}")
    tracking.client().log_artifacts(run_id, str(found), "checkpoint")


@task(name="close-run")
def close_run(run_id: str) -> None:
    """Mark a run FINISHED (failures are handled by :func:`fail_open_runs`)."""
    tracking.end_run(tracking.client(), run_id)


def fail_open_runs(flow, flow_run, state) -> None:
    """Flow hook (failure, crash, cancellation): no MLflow run of this flow run stays RUNNING."""
    failed = tracking.fail_runs_of_flow_run(str(flow_run.id))
    if failed:
        from prefect.logging import get_logger

        get_logger("grpo").warning(
            "flow run %s ended %s: marked MLflow runs FAILED: %s", flow_run.name, state.name, failed
        )


FAIL_OPEN_RUNS_ON_ERROR = {
    "on_failure": [fail_open_runs],
    "on_crashed": [fail_open_runs],
    "on_cancellation": [fail_open_runs],
}
"""Flow hooks for every way a flow run can end badly: ``@flow(..., **FAIL_OPEN_RUNS_ON_ERROR)``."""
