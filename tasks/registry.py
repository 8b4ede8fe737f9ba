"""Task: register the trained models and move the ``champion`` alias only on evidence.

One registered model per experiment; every trained run becomes a version: an MLflow pyfunc model
logged from the run (:mod:`tasks.model_logging`: it loads, predicts, serves), while the run keeps
its raw checkpoint as ``checkpoint/`` artifacts for resuming and evaluation. Each method of the flow run is a candidate, its seeds' per-pair
validation values the evidence; :func:`grpo_core.promotion.decide` says whether it beats the current
champion (README "Promotion"). Of the candidates that pass, the best moves ``champion`` to its best
seed's version. Every decision is written on the versions (tags and description) and as a Prefect
artifact, promoted or not.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.promotion import Decision, PairValues, PromotionRule, decide
from tasks import tracking
from tasks.model_logging import log_policy_model
from tasks.records import Champion, ChildResult, Promotion

CHAMPION = "champion"


def registered_model_name(experiment_name: str) -> str:
    return f"{experiment_name}-policy"


def ensure_registered_model(mlflow: MlflowClient, name: str) -> None:
    try:
        mlflow.get_registered_model(name)
    except MlflowException:
        mlflow.create_registered_model(
            name,
            description="GRPO pipeline policies; alias 'champion' = the model whose worst group "
            "beat the previous champion's beyond the noise (README 'Promotion').",
        )


def groups_of(mlflow: MlflowClient, run_id: str) -> list[str]:
    """The group names of a training run, in the data's order (its slug -> name tag)."""
    slugs = json.loads(mlflow.get_run(run_id).data.tags.get(names.GROUP_SLUGS, "{}"))
    return list(slugs.values())


def checkpoint_uri(mlflow: MlflowClient, version: Any) -> str:
    """Where the raw checkpoint of a model version lies: its run's ``checkpoint/`` artifacts when
    the version is a logged pyfunc model (source ``models:/...``), else the version's own source (a
    checkpoint folder: versions registered before models were logged, or by hand)."""
    if not str(version.source).startswith("models:/"):
        return version.source
    return mlflow.get_run(version.run_id).info.artifact_uri + "/checkpoint"


def pair_values(document: dict[str, Any], metric: str) -> PairValues:
    """The evidence of one run from its per-pair artifact (None values, not finite, become NaN)."""
    values = [math.nan if v is None else v for v in document[metric]]
    return PairValues(tuple(document["slugs"]), document["group_ids"], values)


def load_evidence(
    mlflow: MlflowClient, run_ids: list[str], split: str, metric: str
) -> list[PairValues]:
    """Per-pair values of ``metric`` on ``split`` of each run that has them."""
    evidence = []
    with tempfile.TemporaryDirectory() as folder:
        for run_id in run_ids:
            try:
                path = mlflow.download_artifacts(run_id, names.pairs_artifact(split), folder)
            except (MlflowException, OSError):
                continue
            evidence.append(pair_values(json.loads(Path(path).read_text()), metric))
    return evidence


def current_champion(mlflow: MlflowClient, name: str) -> Any | None:
    try:
        return mlflow.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def choose(decisions: dict[str, Decision], higher_is_better: bool) -> str | None:
    """The candidate to promote: of those that pass, the best value; ties keep the first."""
    passing = [m for m, d in decisions.items() if d.promote]
    if not passing:
        return None
    sign = 1.0 if higher_is_better else -1.0
    return max(passing, key=lambda m: sign * decisions[m].candidate_value)


def best_seed(runs: list[ChildResult], higher_is_better: bool) -> ChildResult:
    """The run of a method whose own champion metric is best (the model to serve)."""
    sign = 1.0 if higher_is_better else -1.0
    scored = [r for r in runs if r.value is not None and math.isfinite(r.value)]
    return max(scored or runs, key=lambda r: sign * (r.value or 0.0))


def numbers_of(decision: Decision) -> dict[str, Any]:
    """The decision's numbers, finite ones only (JSON-safe)."""
    data = asdict(decision)
    data.pop("promote"), data.pop("reason")
    finite = {}
    for key, value in data.items():
        if isinstance(value, float) and math.isfinite(value):
            finite[key] = value
        elif isinstance(value, (tuple, list)) and all(map(math.isfinite, value)):
            finite[key] = list(value)
        elif isinstance(value, dict) and value:
            finite[key] = {k: v for k, v in value.items() if math.isfinite(v)}
    return finite


def decision_table(decisions: dict[str, Decision], outcome: dict[str, str], metric: str) -> str:
    """The decisions as a Markdown table (the Prefect artifact)."""
    lines = [
        f"Promotion on `{metric}` (README 'Promotion')",
        "",
        "| method | outcome | value | champion | improvement | 95% interval | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, d in decisions.items():
        interval = f"[{d.interval[0]:.4g}, {d.interval[1]:.4g}]" if d.interval else ""
        cells = [
            method, outcome[method], f"{d.candidate_value:.4g}",
            "" if d.champion_value is None else f"{d.champion_value:.4g}",
            "" if d.improvement is None else f"{d.improvement:+.4g}", interval, d.reason,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@task(name="register-champion")
def register_champion(
    experiment_name: str,
    runs: list[ChildResult],
    metric: str,
    rule: PromotionRule = PromotionRule(),  # noqa: B008 (frozen)
) -> Promotion:
    """Log each run's policy as an MLflow model and register it as a model version; promote a method's best seed to
    ``champion`` if the evidence says it beats the current champion.

    ``runs``: the trained children, each ``value`` being ``metric`` of the run.
    """
    key = names.EvalKey.parse(metric)
    if key is None or key.higher_is_better is None:
        raise ValueError(f"{metric!r} is not an evaluation metric with a direction")
    higher = key.higher_is_better
    mlflow = tracking.client()
    name = registered_model_name(experiment_name)
    ensure_registered_model(mlflow, name)
    by_method: dict[str, list[ChildResult]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    versions: dict[str, int | str] = {}  # run id -> its model version (as the store gives it)
    for method_runs in by_method.values():
        evidence_runs = ",".join(r.run_id for r in method_runs)
        for run in method_runs:
            model_id = log_policy_model(
                mlflow, run.run_id, run.run_dir, groups=groups_of(mlflow, run.run_id),
                evaluation=run.metrics, step=run.steps or 0,
            )  # fmt: skip
            tags = {
                names.METHOD: run.method,
                names.SEED: str(run.seed),
                names.CHAMPION_METRIC: metric,
                names.EVIDENCE_RUNS: evidence_runs,
            }
            if run.value is not None:
                tags[names.CHAMPION_METRIC_VALUE] = repr(float(run.value))
            version = mlflow.create_model_version(
                name, source=f"models:/{model_id}", run_id=run.run_id, tags=tags, model_id=model_id
            )
            versions[run.run_id] = version.version

    previous = current_champion(mlflow, name)
    champion_evidence = None
    if previous is not None:
        champion_runs = previous.tags.get(names.EVIDENCE_RUNS, previous.run_id).split(",")
        champion_evidence = load_evidence(mlflow, champion_runs, key.split, key.metric)
    decisions: dict[str, Decision] = {}
    for method, method_runs in by_method.items():
        evidence = load_evidence(mlflow, [r.run_id for r in method_runs], key.split, key.metric)
        if previous is not None and not champion_evidence:
            decisions[method] = Decision(
                False,
                f"the champion (version {previous.version}) has no per-pair evidence to compare "
                "with; to start afresh, delete its alias",
                math.nan,
            )
        else:
            decisions[method] = decide(evidence, champion_evidence, higher, rule)
    chosen = choose(decisions, higher)
    outcome = {
        m: "promoted" if m == chosen else ("passed" if d.promote else "rejected")
        for m, d in decisions.items()
    }
    promoted = best_seed(by_method[chosen], higher) if chosen else None
    for method, decision in decisions.items():
        reason = decision.reason
        if outcome[method] == "passed":
            reason += f"; {chosen} was better"
        for run in by_method[method]:
            tags = {
                names.PROMOTION: "promoted" if run is promoted else outcome[method],
                names.PROMOTION_REASON: reason[:5000],
                names.PROMOTION_NUMBERS: json.dumps(numbers_of(decision)),
            }
            for tag, value in tags.items():
                mlflow.set_model_version_tag(name, versions[run.run_id], tag, value)
            mlflow.update_model_version(
                name, versions[run.run_id], description=f"{method}: {outcome[method]}. {reason}"
            )
    create_markdown_artifact(
        decision_table(decisions, outcome, metric),
        key="champion-promotion",
        description=f"Champion promotion decisions for {name}",
    )
    logger = get_run_logger()
    for method, decision in decisions.items():
        logger.info("promotion of %s: %s (%s)", method, outcome[method], decision.reason)
    if promoted is None:
        kept = f"version {previous.version}" if previous is not None else "none"
        logger.warning("champion of %s unchanged (%s): no candidate passed", name, kept)
        return Promotion(model=name, champion=None, decisions=_plain(decisions, outcome))
    champion = Champion(
        version=versions[promoted.run_id], method=promoted.method, seed=promoted.seed,
        run_id=promoted.run_id, value=promoted.value,
    )  # fmt: skip
    mlflow.set_registered_model_alias(name, CHAMPION, champion.version)
    logger.info(
        "champion of %s: version %s (%s seed %s) -> models:/%s@%s",
        name, champion.version, chosen, champion.seed, name, CHAMPION,
    )  # fmt: skip
    return Promotion(
        model=name, champion=champion, uri=f"models:/{name}@{CHAMPION}",
        decisions=_plain(decisions, outcome),
    )  # fmt: skip


def _plain(decisions: dict[str, Decision], outcome: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"method": m, "outcome": outcome[m], "reason": d.reason, **numbers_of(d)}
        for m, d in decisions.items()
    ]
