"""Task: register the trained models and point the ``champion`` alias at the fairest one so far.

One registered model per experiment; every trained run becomes a version (its final checkpoint
folder, logged as run artifacts); ``champion`` goes to the version with the best value of the
configured worst-group metric over ALL versions, so ``models:/NAME@champion`` always names the
fairest model so far, not merely the best of the last flow run.
"""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.logging import get_run_logger

from grpo_core import names
from tasks import tracking

CHAMPION = "champion"


def registered_model_name(experiment_name: str) -> str:
    return f"{experiment_name}-policy"


def ensure_registered_model(mlflow: MlflowClient, name: str) -> None:
    try:
        mlflow.get_registered_model(name)
    except MlflowException:
        mlflow.create_registered_model(
            name, description="GRPO pipeline policies; alias 'champion' = best worst-group metric."
        )


def choose_champion(versions: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The version with the best ``metric`` value (direction from the metric); ties keep the older one."""
    scored = [v for v in versions if v.get("metric") == metric and v.get("value") is not None]
    if not scored:
        return None
    key = names.EvalKey.parse(metric)
    if key is None or key.higher_is_better is None:
        raise ValueError(f"{metric!r} is not an evaluation metric with a direction")
    higher = key.higher_is_better
    best = scored[0]
    for version in scored[1:]:
        better = version["value"] > best["value"] if higher else version["value"] < best["value"]
        if better:
            best = version
    return best


@task(name="register-champion")
def register_champion(
    experiment_name: str, runs: list[dict[str, Any]], metric: str
) -> dict[str, Any]:
    """Register each run's checkpoint as a model version and move ``champion`` to the best version.

    ``runs``: ``{"run_id", "method", "seed", "value"}`` where value is ``metric`` of the run.
    """
    mlflow = tracking.client()
    name = registered_model_name(experiment_name)
    ensure_registered_model(mlflow, name)
    for run in runs:
        source = mlflow.get_run(run["run_id"]).info.artifact_uri + "/checkpoint"
        tags = {
            names.METHOD: run["method"],
            names.SEED: str(run["seed"]),
            names.CHAMPION_METRIC: metric,
        }
        if run.get("value") is not None:
            tags[names.CHAMPION_METRIC_VALUE] = repr(float(run["value"]))
        version = mlflow.create_model_version(name, source=source, run_id=run["run_id"], tags=tags)
        run["version"] = version.version
    versions = [
        {
            "version": v.version,
            "run_id": v.run_id,
            "metric": v.tags.get(names.CHAMPION_METRIC),
            "value": float(v.tags[names.CHAMPION_METRIC_VALUE])
            if names.CHAMPION_METRIC_VALUE in v.tags
            else None,
            "method": v.tags.get(names.METHOD),
        }
        for v in sorted(
            mlflow.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)
        )
    ]
    champion = choose_champion(versions, metric)
    logger = get_run_logger()
    if champion is None:
        logger.warning("no version of %s has %s: champion alias unchanged", name, metric)
        return {"model": name, "champion": None}
    mlflow.set_registered_model_alias(name, CHAMPION, champion["version"])
    logger.info(
        "champion of %s: version %s (%s, %s = %.4f) -> models:/%s@%s",
        name, champion["version"], champion["method"], metric, champion["value"], name, CHAMPION,
    )  # fmt: skip
    return {"model": name, "champion": champion, "uri": f"models:/{name}@{CHAMPION}"}
