"""A small MLflow store in the pipeline's layout, written with the real MLflow client.

Experiments, oldest first: a synthetic flow run with every method in two settings; a flow run
still in progress (a run without periodic validation, a running one not yet evaluated, and a
synthetic flow run without method runs) and a newer flow run without runs yet; runs without the pipeline's tags; and, latest, an
experiment flow run (parent) with ``ipo`` and ``gr_ipo`` x seeds 0, 1 (three groups, a few steps,
periodic validation, final evaluation) with a nightly evaluation run.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from grpo_core.names import HIGHER_IS_BETTER

GROUPS = {
    "nigeria": "Nigeria",
    "egypt": "Egypt",
    "india-current-national-sample": "India (Current national sample)",
}
SIZES = {"nigeria": 0.2, "egypt": 0.3, "india-current-national-sample": 0.5}
FINAL_LOSS = {
    "ipo": {"nigeria": 0.90, "egypt": 0.60, "india-current-national-sample": 0.50},
    "gr_ipo": {"nigeria": 0.70, "egypt": 0.66, "india-current-national-sample": 0.62},
}
STEPS = 20
EXPERIMENT = "opinions-tiny"
SYNTHETIC_EXPERIMENT = "synthetic-benchmark"
SWEEP_EXPERIMENT = "chi-sweep"
UNSEEN_EXPERIMENT = "leave-one-out"
SYNTHETIC_CHI = {1.0: (0.42, 0.40), 0.0: (0.55, 0.33), 0.5: (0.46, 0.39), 0.75: (0.47, 0.41)}
"""The synthetic flow's chi sweep (logged out of order): chi -> final worst-group and average
validation loss; chi = 0.75 is dominated by chi = 0.5, the others trade one for the other."""
SWEEP_WORST = {0.0: (0.90, 0.94), 0.5: (0.80, 0.82), 1.0: (0.70, 0.74)}
"""chi -> the worst-group test loss of seeds 0 and 1 (the average is 0.5, 0.6, 0.7 + 0.01 x seed)."""
HEADROOM = {
    "headroom/test/worst_group/reward_accuracy_upper": 0.817,
    "headroom/test/worst_group/reward_accuracy_lower": 0.812,
    "headroom/test/average/reward_accuracy_upper": 0.9,
    "headroom/test/average/reward_accuracy_lower": 0.9,
    "headroom/test/group/nigeria/reward_accuracy": 0.812,
    "headroom/test/group/egypt/reward_accuracy": 0.85,
    "headroom/test/group/india-current-national-sample/reward_accuracy": 0.9,
    "headroom/test/data/prompts": 40,
    "headroom/test/data/shared_prompts": 30,
    "headroom/test/data/conflicting_prompts": 9,
    "headroom/validation/worst_group/reward_accuracy_upper": 1.0,
    "headroom/validation/worst_group/reward_accuracy_lower": 1.0,
    "headroom/validation/data/prompts": 40,
    "headroom/validation/data/shared_prompts": 0,
    "headroom/validation/data/conflicting_prompts": 0,
}
"""The experiment flow's parent run: what a group-blind policy can reach on its data (the test split
conflicts; on the validation split no prompt is shared, so the bound is 1)."""
PARTIAL_EXPERIMENT = "in-progress"
UNTAGGED_EXPERIMENT = "untagged"
SETTINGS = ("even-imbalanced", "uneven-imbalanced")
METHODS = ("dpo", "is_dpo", "gr_dpo", "ipo", "is_ipo", "gr_ipo")


def group_loss(method: str, seed: int, slug: str, step: int) -> float:
    final = FINAL_LOSS[method][slug] + 0.02 * seed
    return final + (1.0 - final) * math.exp(-step / 6)


def evaluation_metrics(split: str, losses: dict[str, float]) -> dict[str, float]:
    """The ``eval/<split>/...`` keys of one run from its group losses (accuracy falls with the loss)."""
    per_group = {
        slug: {
            "loss": loss,
            "reward_accuracy": 1.2 - loss,
            "logprob_accuracy": 1.15 - loss,
            "reward_margin": 0.1 * (1 - loss),
            "chosen_reward": 0.05 * (1 - loss),
            "rejected_reward": -0.05 * (1 - loss),
            "count": 100 * SIZES[slug],
        }
        for slug, loss in losses.items()
    }
    out = {
        f"eval/{split}/group/{s}/{m}": v
        for s, values in per_group.items()
        for m, v in values.items()
    }
    for metric, higher in HIGHER_IS_BETTER.items():
        values = [v[metric] for v in per_group.values()]
        out[f"eval/{split}/worst_group/{metric}"] = min(values) if higher else max(values)
        out[f"eval/{split}/average/{metric}"] = sum(values) / len(values)
    loss_values = [v["loss"] for v in per_group.values()]
    out[f"eval/{split}/imbalance/loss"] = max(loss_values) - min(loss_values)
    for metric in ("reward_accuracy", "logprob_accuracy"):
        values = [v[metric] for v in per_group.values()]
        out[f"eval/{split}/gap/{metric}"] = max(values) - min(values)
    return out


def _log(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()])


def _tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def _params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def _experiment(client: MlflowClient, name: str, folder: Path) -> str:
    return client.create_experiment(
        name, artifact_location=(folder / "mlartifacts" / name).as_uri()
    )


def train_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str | None,
    method: str,
    seed: int,
    periodic: bool = True,
    final: bool = True,
    steps: int = STEPS,
    held_out: str | None = None,
) -> str:
    """One child run with step metrics, periodic validation every 5 steps and the final evaluation
    (``held_out``: a leave-one-group-out run, which does worse by 0.2 on that group)."""
    tags = {
        "grpo.run_type": "train",
        "grpo.method": method,
        "grpo.seed": str(seed),
        "grpo.dataset": "global-opinions (tiny)",
        "grpo.group_slugs": json.dumps(GROUPS),
    }
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    if held_out:
        tags["grpo.held_out_group"] = held_out
    run_id = client.create_run(
        experiment_id, run_name=f"{method}-seed{seed}", tags=tags
    ).info.run_id
    _params(client, run_id, {"method": method, "seed": seed, "optim.learning_rate": 3e-5})
    robust = method.startswith("gr_")
    cumulative = dict.fromkeys(GROUPS, 0.0)
    for step in range(steps + 1):
        losses = {s: group_loss(method, seed, s, step) for s in GROUPS}
        for s in GROUPS:
            cumulative[s] += losses[s]
        if robust:
            scores = {s: math.exp(0.15 * cumulative[s]) for s in GROUPS}
            weights = {s: v / sum(scores.values()) for s, v in scores.items()}
        else:
            weights = dict(SIZES)
        metrics = {
            "train/loss": sum(weights[s] * losses[s] for s in GROUPS),
            "train/learning_rate": 3e-5,
        }
        metrics |= {f"train/group_loss/{s}": v for s, v in losses.items()}
        metrics |= {f"train/group_weight/{s}": v for s, v in weights.items()}
        if periodic and step % 5 == 0 and step < steps:
            validation = {s: v + 0.03 for s, v in losses.items()}
            evaluated = evaluation_metrics("validation", validation)
            metrics |= {
                k: v for k, v in evaluated.items() if "/group/" not in k or k.endswith("/loss")
            }
        if final and step == steps:
            metrics |= evaluation_metrics("validation", {s: v + 0.03 for s, v in losses.items()})
            unseen = {s: 0.2 if GROUPS[s] == held_out else 0.0 for s in GROUPS}
            metrics |= evaluation_metrics(
                "test", {s: v + 0.05 + unseen[s] for s, v in losses.items()}
            )
        _log(client, run_id, metrics, step)
    if final:
        client.set_terminated(run_id)
    return run_id


def experiment_parent(client: MlflowClient, experiment_id: str, name: str = "brave-otter") -> str:
    tags = {
        "grpo.run_type": "experiment",
        "grpo.dataset": "global-opinions (tiny)",
        "prefect.flow_run_id": "0000-1111",
        "prefect.flow_run_name": name,
        "prefect.flow_run_url": "http://127.0.0.1:4200/runs/flow-run/0000-1111",
        "git.commit": "0123456789abcdef",
    }
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    _params(client, run_id, {"methods": "ipo,gr_ipo", "seeds": "0,1", "optim.learning_rate": 3e-5})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "groups.json"
        path.write_text(
            json.dumps(
                {"groups": list(GROUPS.values()), "slugs": {v: k for k, v in GROUPS.items()}}
            )
        )
        client.log_artifact(run_id, str(path))
    return run_id


def synthetic_flow(client: MlflowClient, experiment_id: str, iterations: int = 200) -> str:
    parent = client.create_run(
        experiment_id, run_name="synthetic", tags={"grpo.run_type": "synthetic"}
    ).info.run_id
    rank = {"dpo": 0, "is_dpo": 1, "gr_dpo": 2, "ipo": 0, "is_ipo": 1, "gr_ipo": 2}
    for setting in SETTINGS:
        for method in METHODS:
            tags = {
                "mlflow.parentRunId": parent,
                "grpo.run_type": "synthetic_method",
                "grpo.setting": setting,
                "grpo.method": method,
                "grpo.feature_type": "swapped",
                "grpo.solver": "gradient",
                "grpo.seeds": "5",
            }
            run_id = client.create_run(
                experiment_id, run_name=f"{setting}-{method}", tags=tags
            ).info.run_id
            final = 0.67 - 0.09 * rank[method]
            stamp = int(time.time() * 1000)
            curve = [
                Metric("synthetic/worst_val_group_loss", final + 0.6 * math.exp(-i / 30), stamp, i)
                for i in range(0, iterations + 1, 2)
            ]
            client.log_batch(run_id, metrics=curve)
            _log(
                client,
                run_id,
                {
                    "synthetic/max_val_group_loss/mean": final,
                    "synthetic/max_val_group_loss/ci95": 0.02,
                    "synthetic/max_reward_error/mean": 0.1 - 0.022 * rank[method],
                    "synthetic/max_reward_error/ci95": 0.01,
                    "synthetic/group_weight/group-0": 0.5 + 0.15 * (rank[method] == 2),
                    "synthetic/group_weight/group-1": 0.5 - 0.15 * (rank[method] == 2),
                },
                iterations,
            )
            client.set_terminated(run_id)
    for chi, (worst, average) in SYNTHETIC_CHI.items():
        tags = {
            "mlflow.parentRunId": parent,
            "grpo.run_type": "synthetic_method",
            "grpo.setting": "uneven-imbalanced",
            "grpo.method": "gr_dpo",
            "grpo.sweep_point": f"group_weights.robust_mix={chi:g}",
            "grpo.seeds": "5",
        }
        run_id = client.create_run(
            experiment_id, run_name=f"uneven-imbalanced-gr_dpo-chi{chi:g}", tags=tags
        ).info.run_id
        _log(
            client,
            run_id,
            {
                "synthetic/max_val_group_loss/mean": worst,
                "synthetic/max_val_group_loss/ci95": 0.02,
                "synthetic/average_val_group_loss/mean": average,
                "synthetic/average_val_group_loss/ci95": 0.01,
            },
            0,
        )
        client.set_terminated(run_id)
    client.set_terminated(parent)
    return parent


def sweep_flow(client: MlflowClient, experiment_id: str) -> str:
    """A sweep flow run of GR-IPO over chi in {0, 0.5, 1} x seeds {0, 1}, final evaluations only:
    the worst group improves and the average worsens with chi, so every setting is on the front."""
    parent = client.create_run(
        experiment_id, run_name="sweep", tags={"grpo.run_type": "sweep"}
    ).info.run_id
    for rank, (chi, worst) in enumerate(SWEEP_WORST.items()):
        for seed in (0, 1):
            tags = {
                "mlflow.parentRunId": parent,
                "grpo.run_type": "train",
                "grpo.method": "gr_ipo",
                "grpo.seed": str(seed),
                "grpo.sweep_point": f"group_weights.robust_mix={chi:g}",
                "grpo.group_slugs": json.dumps(GROUPS),
            }
            run_id = client.create_run(
                experiment_id, run_name=f"gr_ipo-seed{seed} chi={chi:g}", tags=tags
            ).info.run_id
            average = 0.5 + 0.1 * rank + 0.01 * seed
            metrics = {
                "eval/test/worst_group/loss": worst[seed],
                "eval/test/average/loss": average,
                "eval/test/worst_group/reward_accuracy": 1.2 - worst[seed],
                "eval/test/average/reward_accuracy": 1.2 - average,
            }
            _log(client, run_id, metrics, STEPS)
            client.set_terminated(run_id)
    client.set_terminated(parent)
    return parent


def build_store(folder: Path) -> dict[str, object]:
    """Write the store under ``folder``; return its URI and the ids a test needs."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    synthetic_id = _experiment(client, SYNTHETIC_EXPERIMENT, folder)
    synthetic_parent = synthetic_flow(client, synthetic_id)
    sweep_parent = sweep_flow(client, _experiment(client, SWEEP_EXPERIMENT, folder))
    unseen_id = _experiment(client, UNSEEN_EXPERIMENT, folder)
    unseen_parent = experiment_parent(client, unseen_id, name="left-out")
    for group in (None, *GROUPS.values()):
        train_run(client, unseen_id, unseen_parent, "gr_ipo", 0, periodic=False, held_out=group)
    client.set_terminated(unseen_parent)
    partial_id = _experiment(client, PARTIAL_EXPERIMENT, folder)
    partial_parent = experiment_parent(client, partial_id, name="slow-heron")
    train_run(client, partial_id, partial_parent, "ipo", 0, periodic=False)
    train_run(client, partial_id, partial_parent, "gr_ipo", 0, periodic=False, final=False, steps=6)
    client.create_run(partial_id, run_name="synthetic", tags={"grpo.run_type": "synthetic"})
    just_started = experiment_parent(client, partial_id, name="just-started")
    client.create_run(_experiment(client, UNTAGGED_EXPERIMENT, folder), run_name="hand-made")
    experiment_id = _experiment(client, EXPERIMENT, folder)
    parent = experiment_parent(client, experiment_id)
    _log(client, parent, HEADROOM, 0)
    children = {
        (m, s): train_run(client, experiment_id, parent, m, s)
        for m in ("ipo", "gr_ipo")
        for s in (0, 1)
    }
    client.set_terminated(parent)
    evaluation = client.create_run(
        experiment_id,
        run_name="nightly-evaluation",
        tags={
            "grpo.run_type": "evaluation",
            "grpo.model_uri": "models:/grpo-opinions@champion",
            "grpo.dataset": "global-opinions (tiny)",
            "grpo.group_slugs": json.dumps(GROUPS),
        },
    ).info.run_id
    _log(
        client,
        evaluation,
        evaluation_metrics("test", {s: group_loss("gr_ipo", 0, s, STEPS) + 0.05 for s in GROUPS}),
        0,
    )
    client.set_terminated(evaluation)
    return {
        "uri": uri,
        "experiment_id": experiment_id,
        "parent": parent,
        "children": children,
        "synthetic_experiment_id": synthetic_id,
        "synthetic_parent": synthetic_parent,
        "sweep_parent": sweep_parent,
        "evaluation": evaluation,
        "partial_parent": partial_parent,
        "just_started": just_started,
    }
