"""``grpo train --nproc 2``: two CPU ranks (gloo) under torch's elastic launcher train the same
model and group weights as one process with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from grpo_cli.main import main
from tests.lm.helpers import tiny_run_config

GRPO = str(Path(sys.executable).parent / "grpo")


def config_file(tmp_path: Path) -> Path:
    document = tiny_run_config().model_dump(mode="json")
    document["optim"] |= {"max_steps": 4, "batch_size": 8}
    document["model"]["dtype"] = "float32"
    document["checkpoint_every"] = 4
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def final_state(run: Path) -> tuple[dict, torch.Tensor]:
    (checkpoint,) = (run / "checkpoints").iterdir()
    (weights,) = (checkpoint / "model").glob("*.safetensors")
    return load_file(weights), load_file(checkpoint / "trainer_state.safetensors")[
        "weights.log_alpha"
    ]


def test_two_ranks_train_what_one_process_trains(tmp_path):
    config = config_file(tmp_path)
    common = ["--config", str(config), "--method", "gr_ipo", "--device", "cpu", "--no-progress",
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    # Given one process training gr_ipo with minibatches of 8
    assert main(["train", *common, "--output", str(tmp_path / "one")]) == 0
    # When two ranks train the same run, 4 pairs of each minibatch each
    ranks = subprocess.run(
        [GRPO, "train", *common, "--output", str(tmp_path / "two"), "--nproc", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    # Then the weights and the group weights are the single process's
    (one, alpha_one), (two, alpha_two) = (
        final_state(tmp_path / "one"),
        final_state(tmp_path / "two"),
    )
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    assert torch.allclose(alpha_one, alpha_two, atol=1e-6)
    assert not torch.allclose(alpha_one, torch.full_like(alpha_one, alpha_one[0])), "alpha moved"
    assert json.loads((tmp_path / "two" / "timing.json").read_text())["processes"] == 2
    assert "Traceback" not in ranks.stderr


def test_a_failing_rank_fails_the_run_in_lines_not_tracebacks(tmp_path):
    # a data folder that passes the command's check (as one prepared before split files had a
    # hash: counts only) but whose train split lacks a column: every rank fails on it
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    assert main(["data", "prepare", "--format", "synthetic", "--out", str(data)]) == 0
    groups = json.loads((data / "groups.json").read_text())
    del groups["files"]
    (data / "groups.json").write_text(json.dumps(groups))
    pq.write_table(pq.read_table(data / "train.parquet").drop(["prompt"]), data / "train.parquet")
    result = subprocess.run(
        [GRPO, "train", "--config", str(config_file(tmp_path)), "--method", "ipo", "--device",
         "cpu", "--no-progress", "--data", str(data), "--output", str(tmp_path / "run"),
         "--cache-dir", str(tmp_path / "cache"), "--nproc", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines[-1].endswith("its own error is above")
    assert "of 2 failed" in lines[-1] and all(line.startswith("grpo train: ") for line in lines)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--nproc", "0"], "--nproc 0: give 1 or more"),
        (["--nproc", "2", "--data", "."], "no groups.json"),
    ],
)
def test_bad_nproc_arguments_are_one_line(tmp_path, capsys, args, says):
    code = main(["train", "--config", str(config_file(tmp_path)), "--method", "ipo",
                 "--output", str(tmp_path / "run"), *args])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err
