"""Per-pair losses: the spec's hand-computed numbers (spec section 2)."""

import math

import pytest
import torch

from grpo_core.losses import dpo_loss, ipo_loss, log_ratio_margin, pair_loss


def test_dpo_at_zero_margin_is_ln2():
    assert dpo_loss(torch.zeros(3), beta=0.1).tolist() == pytest.approx([math.log(2)] * 3, abs=1e-7)


@pytest.mark.parametrize(("beta", "expected"), [(0.5, 1.0), (0.01, 2500.0)])
def test_ipo_at_zero_margin(beta, expected):
    assert ipo_loss(torch.zeros(1), beta).item() == pytest.approx(expected)


def test_losses_are_unreduced_and_keep_shape():
    margin = torch.randn(4, 7)
    for loss_type in ("dpo", "ipo"):
        assert pair_loss(margin, 0.1, loss_type).shape == (4, 7), "one loss per pair, no reduction"


def test_margin_is_the_difference_of_log_ratios():
    # h = (-1 - -3) - (-2 - -2) = 2
    assert (
        log_ratio_margin(
            torch.tensor(-1.0), torch.tensor(-2.0), torch.tensor(-3.0), torch.tensor(-2.0)
        ).item()
        == 2.0
    )


def test_dpo_is_stable_for_large_negative_margins():
    # -log sigmoid(-1000) = 1000 exactly in logsigmoid form; log(sigmoid(.)) would give inf
    assert dpo_loss(torch.tensor([-1000.0]), beta=1.0).item() == pytest.approx(1000.0)


def test_dpo_value_at_known_margin():
    # beta*h = 1: -log(1/(1+e^-1)) = log(1 + e^-1) = 0.3132616875...
    assert dpo_loss(torch.tensor([10.0]), beta=0.1).item() == pytest.approx(
        math.log1p(math.exp(-1)), rel=1e-6
    )


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_non_positive_beta_is_refused(bad):
    with pytest.raises(ValueError, match="beta"):
        pair_loss(torch.zeros(1), bad, "dpo")


def test_unknown_loss_type_is_refused():
    with pytest.raises(ValueError, match="loss_type"):
        pair_loss(torch.zeros(1), 0.1, "hinge")
