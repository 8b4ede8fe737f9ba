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
