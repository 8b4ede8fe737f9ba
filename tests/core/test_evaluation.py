"""Per-group evaluation: exact metrics, worst group with an explicit direction, aggregates."""

import math

import pytest
import torch

from grpo_core.evaluation import PairScores, group_metrics, summarize, worst_group


def scores() -> PairScores:
    # group 0: h = 2, h = 0 ; group 1: h = -1 (policy prefers the rejected answer)
    return PairScores(
        policy_chosen=torch.tensor([-1.0, -2.0, -3.0]),
        policy_rejected=torch.tensor([-3.0, -2.0, -2.0]),
        ref_chosen=torch.zeros(3),
        ref_rejected=torch.zeros(3),
        group_ids=torch.tensor([0, 0, 1]),
    )


def test_group_metrics_hand_computed():
    m = group_metrics(scores(), num_groups=2, beta=1.0, loss_type="dpo")
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731  -log sigmoid(h) = softplus(-h)
    assert m["loss"].tolist() == pytest.approx([(softplus(-2) + math.log(2)) / 2, softplus(1)])
    assert m["reward_accuracy"].tolist() == [0.5, 0.0], "h = 0 is not a win: accuracy is strict"
    assert m["logprob_accuracy"].tolist() == [0.5, 0.0]
    assert m["reward_margin"].tolist() == [1.0, -1.0]
    assert m["chosen_reward"].tolist() == [-1.5, -3.0]
    assert m["count"].tolist() == [2.0, 1.0]


def test_worst_group_direction_is_explicit():
    values = torch.tensor([0.2, 0.9, 0.5])
    assert worst_group(values, higher_is_better=False)[1].item() == 1
    assert worst_group(values, higher_is_better=True)[1].item() == 0


def test_worst_group_ignores_absent_groups():
    value, index = worst_group(
        torch.tensor([0.0, 0.3]), higher_is_better=True, counts=torch.tensor([0.0, 4.0])
    )
    assert (value.item(), index.item()) == (pytest.approx(0.3), 1)


def test_summarize_keys_and_aggregates():
    m = group_metrics(scores(), num_groups=2, beta=1.0, loss_type="dpo")
    out = summarize(m, ["japan", "nigeria"], "test")
    assert out["eval/test/worst_group/reward_accuracy"] == 0.0
    assert out["eval/test/worst_group/loss"] == pytest.approx(m["loss"][1].item())
    assert out["eval/test/average/reward_accuracy"] == 0.25
    assert out["eval/test/imbalance/loss"] == pytest.approx(abs(m["loss"][1] - m["loss"][0]).item())
    assert out["eval/test/gap/reward_accuracy"] == 0.5
    assert out["eval/test/group/nigeria/count"] == 1.0
    assert all(k.replace("/", "").replace("_", "").replace("-", "").isalnum() for k in out)


def test_absent_group_has_no_metrics_and_no_nan():
    s = scores()
    m = group_metrics(s, num_groups=3, beta=1.0, loss_type="ipo")
    out = summarize(m, ["a", "b", "c"], "validation")
    assert "eval/validation/group/c/loss" not in out
    assert out["eval/validation/group/c/count"] == 0.0
    assert not any(math.isnan(v) for v in out.values())


def test_summarize_refuses_mismatched_slugs():
    with pytest.raises(ValueError, match="expected"):
        summarize(group_metrics(scores(), 2, 1.0, "dpo"), ["only-one"], "test")
