"""Per-pair losses: hand-computed numbers (DPO, Rafailov et al. 2023, Eq. 7; IPO, Azar et al. 2023,
Eq. 17; docs/ALGORITHM.md#per-pair-losses)."""

import math

import pytest
import torch

from grpo_core.losses import (
    dpo_loss,
    flip_coefficients,
    ipo_loss,
    log_ratio_margin,
    pair_loss,
    pair_weights,
)


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


# The pair-robust baselines: label flips (cdpo, rdpo) and pair weights (dr_dpo, kl_dpo) ------------


def test_conservative_and_robust_dpo_at_a_known_margin():
    # beta * h = 1: l(h) = -log sigmoid(1) = 0.31326169, l(-h) = l(h) + 1; eps = 0.1
    margin = torch.tensor([2.0])
    plain = 0.3132616875182228
    cdpo = pair_loss(margin, 0.5, "dpo", flip_coefficients("conservative", 0.1))
    rdpo = pair_loss(margin, 0.5, "dpo", flip_coefficients("robust", 0.1))
    assert cdpo.item() == pytest.approx(0.9 * plain + 0.1 * (plain + 1.0), abs=1e-6)
    assert rdpo.item() == pytest.approx((0.9 * plain - 0.1 * (plain + 1.0)) / 0.8, abs=1e-6)
    assert flip_coefficients("none", 0.3) == (1.0, 0.0)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2, 0.45])
def test_label_flips_shift_dpo_by_a_multiple_of_the_margin(eps):
    # -log sigmoid(-x) = -log sigmoid(x) + x, so cDPO = DPO + eps beta h and
    # rDPO = DPO - eps beta h / (1 - 2 eps): the same minimiser direction, a different pull
    margin, beta = torch.linspace(-30, 30, 61, dtype=torch.float64), 0.3
    plain = dpo_loss(margin, beta)
    cdpo = pair_loss(margin, beta, "dpo", flip_coefficients("conservative", eps))
    rdpo = pair_loss(margin, beta, "dpo", flip_coefficients("robust", eps))
    assert torch.allclose(cdpo, plain + eps * beta * margin, atol=1e-12)
    assert torch.allclose(rdpo, plain - eps * beta * margin / (1 - 2 * eps), atol=1e-12)


def test_label_smoothing_of_half_or_more_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        flip_coefficients("robust", 0.5)


def test_pair_weights_by_hand():
    losses = torch.tensor([0.0, math.log(3.0)])
    # Dr. DPO: exp(-l) = [1, 1/3] -> softmax [0.75, 0.25] -> times B = 2
    assert pair_weights(losses, -1.0, 1.0).tolist() == pytest.approx([1.5, 0.5])
    # KL: the mirror image
    assert pair_weights(losses, 1.0, 1.0).tolist() == pytest.approx([0.5, 1.5])
    assert pair_weights(losses, 0.0, 1.0).tolist() == [1.0, 1.0]
    # KL with a cap: exp(l) = [1, 1, 1, 9] -> [1/3, 1/3, 1/3, 3]; cut to 2, rescaled to mean 1
    capped = pair_weights(torch.tensor([0.0, 0.0, 0.0, math.log(9.0)]), 1.0, 1.0, cap=2.0)
    assert capped.tolist() == pytest.approx([4 / 9, 4 / 9, 4 / 9, 8 / 3])


def test_dr_dpo_weights_give_the_gradient_of_its_objective():
    # d/dtheta of -tau log mean exp(-l / tau) = sum_i softmax(-l / tau)_i dl_i = mean(w * dl)
    theta = torch.tensor([0.3, -1.2, 2.0, 0.7], dtype=torch.float64, requires_grad=True)
    losses = dpo_loss(theta * torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64), 0.8)
    tau = 0.4
    objective = -tau * torch.log(torch.exp(-losses / tau).mean())
    (expected,) = torch.autograd.grad(objective, theta, retain_graph=True)
    weighted = (pair_weights(losses, -1.0, tau) * losses).mean()
    (got,) = torch.autograd.grad(weighted, theta)
    assert torch.allclose(got, expected, atol=1e-12)


def test_pair_weights_have_mean_one_and_no_gradient_for_each_replica():
    losses = torch.rand(3, 7, requires_grad=True) * 5
    weights = pair_weights(
        losses, torch.tensor([[-1.0], [1.0], [0.0]]), torch.tensor([[0.5], [2.0], [1.0]])
    )
    assert not weights.requires_grad
    assert torch.allclose(weights.mean(-1), torch.ones(3))
    assert torch.equal(weights[2], torch.ones(7))
