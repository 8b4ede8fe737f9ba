"""Bad input and faults end in one line naming what is at fault, an exit code, and no traceback."""

from __future__ import annotations

import pytest

from grpo_cli.main import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, main, one_line

EXAMPLE = "examples/tiny_opinions.yaml"


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err.strip().splitlines()


@pytest.fixture
def bad_utf8(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: x\n\xff\xfe: 1\n")
    return path


def test_a_config_that_is_not_utf8_names_the_file(capsys, bad_utf8):
    code, lines = run(capsys, "run", "--config", str(bad_utf8))
    assert code == EXIT_BAD_INPUT and len(lines) == 1
    assert str(bad_utf8) in lines[0] and "not UTF-8" in lines[0] and "0xff" in lines[0]


def test_a_malformed_override_names_the_key(capsys):
    code, lines = run(capsys, "run", "--config", EXAMPLE, "--set", "seeds=[0,1")
    assert code == EXIT_BAD_INPUT and len(lines) == 1
    assert "--set seeds" in lines[0] and "not a YAML value" in lines[0]


def test_an_override_of_an_unknown_field_is_refused(capsys):
    code, lines = run(capsys, "run", "--config", EXAMPLE, "--set", "optim.max_stpes=5")
    assert code == EXIT_BAD_INPUT and "max_stpes" in " ".join(lines)


def test_a_missing_config_file(capsys, tmp_path):
    code, lines = run(capsys, "train", "--config", str(tmp_path / "none.yaml"))
    assert code == EXIT_BAD_INPUT and str(tmp_path / "none.yaml") in lines[0]


def test_a_cuda_device_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, lines = run(capsys, "train", "--config", EXAMPLE, "--method", "ipo", "--device", "cuda")
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and "sees no CUDA GPU" in lines[0]


def test_an_unknown_method(capsys):
    code, lines = run(capsys, "train", "--config", EXAMPLE, "--method", "grpo")
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and "unknown method 'grpo'" in lines[0]


def test_an_error_no_command_handles_still_ends_in_one_line(capsys, monkeypatch):
    from grpo_cli.main import build_parser

    def broken(args):
        raise KeyError("theta")

    parser = build_parser()
    parser._subparsers._group_actions[0].choices["synthetic"].set_defaults(func=broken)
    monkeypatch.setattr("grpo_cli.main.build_parser", lambda: parser)
    code, lines = run(capsys, "synthetic")
    assert code == EXIT_BAD_INPUT, "a KeyError is a LookupError: the input named something unknown"
    assert lines == ["grpo synthetic: 'theta'"]


def test_one_line_says_the_kind_of_unexpected_errors():
    assert one_line(FileNotFoundError("no such file: x.yaml")) == "no such file: x.yaml"
    assert one_line(RuntimeError("first\n\nsecond\nthird\nfourth")) == "first; second; third"
    text = one_line(TypeError("unsupported operand"))
    assert (
        text.startswith("internal error (TypeError: unsupported operand)") and "GRPO_DEBUG" in text
    )
    assert EXIT_FAILED == 1 and EXIT_INTERNAL == 70


def test_an_empty_config_is_refused(capsys, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    code, lines = run(capsys, "run", "--config", str(empty))
    assert code == EXIT_BAD_INPUT and len(lines) == 1
    assert str(empty) in lines[0] and "empty" in lines[0]


def test_a_batch_larger_than_the_training_set_is_refused_not_cut():
    import torch

    from grpo_core.config import OptimConfig
    from grpo_core.loglinear import LogLinearPolicy
    from grpo_core.loop import train
    from grpo_core.objective import Objective
    from tests.core.conftest import random_pairs

    data = random_pairs(1, group_counts=(3, 2))
    policy = LogLinearPolicy(torch.ones(1, data.features.shape[-1]))
    with pytest.raises(ValueError, match="optim.batch_size 8 is larger than the 5 training pairs"):
        train(policy, data, Objective("dpo", "size", beta=1.0), OptimConfig(batch_size=8), seed=0)


@pytest.mark.parametrize("kind", ["folder", "file-parent"])
def test_data_prepare_checks_its_json_path_before_writing_anything(capsys, tmp_path, kind):
    if kind == "folder":
        target = tmp_path / "summary"
        target.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "summary.json"
    out = tmp_path / "prepared"
    code, lines = run(
        capsys, "data", "prepare", "--format", "synthetic", "--out", str(out), "--json", str(target)
    )
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and "--json" in lines[0], lines
    assert not out.exists(), "nothing was prepared"


def test_run_checks_its_output_folder_before_starting(capsys, tmp_path):
    (tmp_path / "blocker").write_text("x")
    code, lines = run(
        capsys, "run", "--config", EXAMPLE, "--set", f"execution.output_dir={tmp_path}/blocker/out"
    )
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and "execution.output_dir" in lines[0], lines
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("./models/none", "no such folder"),
        ("../none/x/y", "no such folder"),
        ("someone/some-model", "offline"),
    ],
)
def test_a_model_path_that_is_not_there_fails_at_once(capsys, monkeypatch, path, says):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    code, lines = run(
        capsys,
        "run",
        "--config",
        EXAMPLE,
        "--set",
        "model.preset=null",
        "--set",
        f"model.path={path}",
    )
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and path in lines[0] and says in lines[0], (
        lines
    )
    assert time.monotonic() - started < 30, "no network retries"
