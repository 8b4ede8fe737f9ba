"""The language-model entry points: train_method, evaluate_checkpoint, prepare_sft_model, callbacks, resume."""

from __future__ import annotations

import json

import pytest

from grpo_core.config import EvalConfig, OptimConfig, PlateauConfig
from grpo_core.lm.callbacks import RunCallback
from grpo_core.lm.checkpoint import latest_checkpoint
from grpo_core.lm.evaluate import evaluate_checkpoint
from grpo_core.lm.start_model import prepare_sft_model
from grpo_core.lm.training import train_method
from tests.lm.helpers import tiny_run_config


def train(config, method, *args, **kwargs):
    """train_method with the run config's recipe for ``method``."""
    return train_method(config.recipe(method), method, *args, **kwargs)


class Recorder(RunCallback):
    def __init__(self, stop_at: int | None = None):
        self.sft_steps, self.steps, self.evaluations, self.final = [], [], [], None
        self.stop_at = stop_at

    def on_step(self, record, metrics):
        if "sft/loss" in metrics:
            self.sft_steps.append(dict(metrics))
            return
        self.steps.append(dict(metrics))
        if record.step == self.stop_at:
            raise KeyboardInterrupt("simulated kill")

    def on_evaluation(self, step, metrics):
        self.evaluations.append((step, dict(metrics)))

    def on_end(self, metrics):
        self.final = dict(metrics)


def test_train_method_reports_every_step_and_writes_metrics(tmp_path, data_dir):
    # given
    config = tiny_run_config(eval=EvalConfig(batch_size=16, every_steps=2))
    recorder = Recorder()
    stages = set()
    # when
    metrics = train(
        config, "gr_ipo", 0, data_dir, tmp_path / "run", device="cpu", cache_dir=tmp_path / "cache",
        callbacks=[recorder], progress=lambda stage, done, total: stages.add(stage),
    )  # fmt: skip
    # then: SFT steps (64 pairs / 8), then one record per step with the documented keys,
    # validations every 2 steps, the final metrics
    assert (
        len(recorder.sft_steps) == 8
        and recorder.sft_steps[-1]["sft/loss"] < recorder.sft_steps[0]["sft/loss"]
    )
    assert len(recorder.steps) == 6
    assert {
        "train/loss",
        "train/learning_rate",
        "train/group_loss/southland",
        "train/group_weight/northland",
    } <= set(recorder.steps[0])
    assert [step for step, _ in recorder.evaluations] == [2, 4, 6]
    assert "eval/validation/worst_group/loss" in recorder.evaluations[0][1]
    assert recorder.final == metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("eval/test/group/southland/loss", "eval/test/worst_group/reward_accuracy", "eval/test/average/loss",
                "eval/validation/imbalance/loss", "train/group_weight/southland"):  # fmt: skip
        assert key in metrics, key
    weights = metrics["train/group_weight/northland"] + metrics["train/group_weight/southland"]
    assert weights == pytest.approx(1.0)
    assert {"sft", "train", "evaluate test"} <= stages
    # and: evaluating the final checkpoint on the test split reproduces the run's test metrics exactly
    again = evaluate_checkpoint(
        tmp_path / "run",
        data_dir,
        "test",
        device="cpu",
        batch_size=16,
        cache_dir=tmp_path / "cache",
    )
    assert again == {k: v for k, v in metrics.items() if k.startswith("eval/test/")}


def test_an_output_folder_with_a_checkpoint_needs_resume(tmp_path, data_dir):
    config = tiny_run_config(optim=OptimConfig(learning_rate=1e-3, batch_size=8, max_steps=2))
    kwargs = dict(device="cpu", cache_dir=tmp_path / "cache")
    train(config, "ipo", 0, data_dir, tmp_path / "run", **kwargs)
    with pytest.raises(FileExistsError, match="resume"):
        train(config, "ipo", 0, data_dir, tmp_path / "run", **kwargs)
    with pytest.raises(ValueError, match="method 'ipo' -> 'gr_ipo'"):
        train(config, "gr_ipo", 0, data_dir, tmp_path / "run", resume=True, **kwargs)
    # the fields that differ are named; those that cannot change the steps may change
    faster = config.model_copy(
        update={"optim": config.optim.model_copy(update={"learning_rate": 1e-2})}
    )
    with pytest.raises(ValueError, match=r"optim.learning_rate 0.001 -> 0.01"):
        train(faster, "ipo", 0, data_dir, tmp_path / "run", resume=True, **kwargs)
    longer = config.model_copy(
        update={"optim": config.optim.model_copy(update={"max_steps": 3}), "checkpoint_every": 1}
    )
    metrics = train(longer, "ipo", 0, data_dir, tmp_path / "run", resume=True, **kwargs)
    assert metrics["train/steps"] == 3.0, "a resumed run may train for longer"


def test_a_killed_run_resumed_ends_with_the_same_metrics(tmp_path, data_dir):
    # given: plateau cuts, alpha halving, validation every step, checkpoints every 2 steps
    config = tiny_run_config(
        optim=OptimConfig(
            learning_rate=1e-3,
            batch_size=8,
            max_steps=7,
            plateau=PlateauConfig(enabled=True, patience=1),
        ),
        eval=EvalConfig(batch_size=16, every_steps=1),
        checkpoint_every=2,
    )
    kwargs = dict(device="cpu", cache_dir=tmp_path / "cache")
    expected = train(config, "gr_ipo", 1, data_dir, tmp_path / "full", **kwargs)
    # when: killed during step 5 (after the checkpoint of step 4), then resumed
    with pytest.raises(KeyboardInterrupt):
        train(
            config,
            "gr_ipo",
            1,
            data_dir,
            tmp_path / "killed",
            callbacks=[Recorder(stop_at=5)],
            **kwargs,
        )
    assert latest_checkpoint(tmp_path / "killed").name == "step-00000004"
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = Recorder()
    metrics = train(
        config,
        "gr_ipo",
        1,
        data_dir,
        tmp_path / "killed",
        resume=True,
        callbacks=[resumed],
        **kwargs,
    )
    # then: steps 5..7 ran again and every final metric is bit-for-bit the uninterrupted one
    assert len(resumed.steps) == 3
    assert metrics == expected
    # and: resuming a finished run changes nothing
    assert (
        train(config, "gr_ipo", 1, data_dir, tmp_path / "killed", resume=True, **kwargs) == expected
    )


def test_sft_output_is_cached_and_shared(tmp_path, data_dir):
    config = tiny_run_config()
    kwargs = dict(
        max_grad_norm=config.optim.max_grad_norm, device="cpu", cache_dir=tmp_path / "cache"
    )
    first = prepare_sft_model(config.model, config.sft, data_dir, **kwargs)
    again = prepare_sft_model(config.model, config.sft, data_dir, **kwargs)
    assert first == again and "sft" in first.path
    no_sft = prepare_sft_model(
        config.model, config.sft.model_copy(update={"enabled": False}), data_dir, **kwargs
    )
    assert no_sft.fingerprint != first.fingerprint and "models" in no_sft.path
