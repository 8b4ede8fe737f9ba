"""``grpo train`` and ``grpo evaluate`` end to end, including a run killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from grpo_cli.main import main
from grpo_core.config import OptimConfig
from grpo_core.data.config import DataConfig, OpinionGeneratorConfig
from tests.lm.helpers import tiny_run_config


def _write_config(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(tiny_run_config(**changes).model_dump(mode="json")))
    return path


def test_train_then_evaluate_on_the_built_in_opinion_data(tmp_path, capsys):
    # given: the built-in opinion survey (small), prepared by the command itself
    survey = OpinionGeneratorConfig(num_questions=100)
    config = _write_config(tmp_path / "run.yaml", data=DataConfig(synthetic=survey))
    common = ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    # when
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--method",
            "gr_ipo",
            "--output",
            str(tmp_path / "run"),
            *common,
        ]
    )
    # then
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {
        "eval/test/group/eastland/loss",
        "eval/test/worst_group/reward_accuracy",
        "train/group_weight/eastland",
    } <= set(metrics)
    assert "WORST GROUP" in capsys.readouterr().out
    data_dirs = list((tmp_path / "cache" / "data").iterdir())
    assert len(data_dirs) == 1
    # when: the checkpoint is evaluated on the test split
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(data_dirs[0]), "--json", str(out),
                 "--batch-size", "16", *common])  # fmt: skip
    # then: the same per-group numbers as the run's own test evaluation, of its last step
    assert code == 0
    assert json.loads(out.read_text()) == {
        "checkpoint/step": int(metrics["train/steps"]),
        **{k: v for k, v in metrics.items() if k.startswith("eval/test/")},
    }


def test_train_needs_a_method_when_the_config_lists_several(tmp_path, capsys):
    config = _write_config(tmp_path / "run.yaml")
    assert (
        main(["train", "--config", str(config), "--output", str(tmp_path / "run"), "--no-progress"])
        == 2
    )
    assert "--method" in capsys.readouterr().err


def test_evaluate_refuses_a_checkpoint_with_a_pickle(tmp_path, capsys, data_dir):
    config = _write_config(
        tmp_path / "run.yaml", optim=OptimConfig(learning_rate=1e-3, batch_size=8, max_steps=1)
    )
    common = ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--method",
                "ipo",
                "--data",
                str(data_dir),
                "--output",
                str(tmp_path / "run"),
                *common,
            ]
        )
        == 0
    )
    (checkpoint,) = (tmp_path / "run" / "checkpoints").iterdir()
    torch.save({"step": 1}, checkpoint / "optimizer.pt")
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data_dir), *common])
    assert code == 2
    assert "optimizer.pt is a pickled payload" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_killed_with_sigkill_and_resumed_ends_with_the_same_metrics(tmp_path, data_dir):
    # given: a 40-step run with a checkpoint every 4 steps, trained once without interruption
    config = _write_config(
        tmp_path / "run.yaml",
        optim=OptimConfig(learning_rate=1e-3, batch_size=8, max_steps=40),
        checkpoint_every=4,
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def command(output: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "grpo_cli.main", "train", "--config", str(config), "--method", "gr_ipo",
                "--data", str(data_dir), "--output", str(output), "--device", "cpu",
                "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]  # fmt: skip

    subprocess.run(command(tmp_path / "full"), check=True, env=env, capture_output=True)
    expected = json.loads((tmp_path / "full" / "metrics.json").read_text())
    # when: a second run is killed with SIGKILL as soon as its first checkpoint exists ...
    process = subprocess.Popen(
        command(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 120
    while not (
        checkpoints.is_dir() and any(p.name.startswith("step-") for p in checkpoints.iterdir())
    ):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "metrics.json").exists(), (
        "the run should have died before finishing"
    )
    # ... and run again with --resume
    subprocess.run(
        command(tmp_path / "killed", "--resume"), check=True, env=env, capture_output=True
    )
    # then: the same final metrics, bit for bit
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text()) == expected


def test_a_learning_rate_that_overflows_stops_with_one_line_and_saves_nothing_non_finite(
    tmp_path, capsys, data_dir
):
    # given: eta_theta = 1e30 with checkpoints every step
    config = _write_config(
        tmp_path / "run.yaml",
        optim=OptimConfig(learning_rate=1e30, batch_size=8, max_steps=6),
        checkpoint_every=1,
    )
    common = ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    # when
    code = main(["train", "--config", str(config), "--method", "ipo", "--data", str(data_dir),
                 "--output", str(tmp_path / "run"), *common])  # fmt: skip
    # then: exit 1, one line naming the step and the quantity; no metrics.json; only good checkpoints
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "is not finite" in err[0] and "step" in err[0], err
    assert not (tmp_path / "run" / "metrics.json").exists()
    from safetensors.torch import load_file

    from grpo_core.lm.checkpoint import list_checkpoints

    for checkpoint in list_checkpoints(tmp_path / "run"):
        for file in checkpoint.rglob("*.safetensors"):
            for name, tensor in load_file(str(file)).items():
                assert torch.isfinite(tensor).all(), f"{file}:{name} is not finite"
