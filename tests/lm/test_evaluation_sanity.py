"""Evaluation data that does not suit the model is said loudly (or refused), and non-finite metrics
are never reported as results."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from grpo_core.lm.dataset import LMPairDataset, TokenizedPair
from grpo_core.lm.evaluate import data_problems, finite_only
from tests.lm.helpers import opinion_frames, write_data_dir

UNK, EOS = 1, 2


def dataset(pairs):
    return LMPairDataset(pairs, torch.zeros(len(pairs), dtype=torch.long), 1, 0)


def test_unknown_response_tokens_over_a_fifth_are_a_problem_by_hand():
    tokenizer = SimpleNamespace(unk_token_id=UNK)
    # 2 of 8 response tokens unknown (EOS not counted): 25%
    pairs = [
        TokenizedPair("a", (5,), (UNK, 6, EOS), (7, 8, EOS)),
        TokenizedPair("b", (5,), (9, UNK, EOS), (3, 4, EOS)),
    ]
    (problem,) = data_problems(dataset(pairs), tokenizer, ["g"], ["g"])
    assert "25% of the response tokens (2 of 8)" in problem
    # 1 of 8: 12.5%, fine
    pairs[1] = TokenizedPair("b", (5,), (9, 10, EOS), (3, 4, EOS))
    assert data_problems(dataset(pairs), tokenizer, ["g"], ["g"]) == []
    # a tokenizer without an unknown token (byte-level) has nothing unknown
    assert data_problems(dataset(pairs), SimpleNamespace(unk_token_id=None), ["g"], None) == []


def test_other_groups_than_the_models_are_a_problem():
    tokenizer = SimpleNamespace(unk_token_id=None)
    pairs = [TokenizedPair("a", (5,), (6, EOS), (7, EOS))]
    (problem,) = data_problems(dataset(pairs), tokenizer, ["Japan", "Mars"], ["Japan", "Nigeria"])
    assert "groups it was not trained on: ['Mars']" in problem
    assert "no data for groups it was trained on: ['Nigeria']" in problem
    assert data_problems(dataset(pairs), tokenizer, ["Japan"], None) == [], (
        "unknown training groups"
    )


def test_non_finite_metrics_are_left_out():
    kept, dropped = finite_only({"a": 1.0, "b": math.nan, "c": math.inf})
    assert kept == {"a": 1.0} and dropped == ["b", "c"]


def test_grpo_evaluate_warns_on_other_groups_and_strict_refuses(tmp_path, capsys, data_dir):
    from grpo_cli.main import main
    from tests.lm.test_cli import _write_config

    config = _write_config(tmp_path / "run.yaml")
    common = ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(["train", "--config", str(config), "--method", "ipo", "--data", str(data_dir),
                 "--output", str(tmp_path / "run"), *common]) == 0  # fmt: skip
    other = write_data_dir(tmp_path / "other", opinion_frames({"Northland": 8, "Eastland": 8}))
    capsys.readouterr()
    # when: evaluated on data with a group the model never saw
    evaluate = ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(other), *common]
    assert main(evaluate) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "groups it was not trained on: ['Eastland']" in err, err
    # and with --strict: refused, one line
    assert main([*evaluate, "--strict"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Eastland" in lines[0], lines


@pytest.fixture
def data_dir(tmp_path):
    return write_data_dir(tmp_path / "data", opinion_frames({"Northland": 24, "Southland": 8}))
