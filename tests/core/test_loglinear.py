"""Log-linear policies: analytic gradient and closed form equal what autograd and descent find."""

import pytest
import torch

from grpo_core.config import OptimConfig
from grpo_core.groups import group_means
from grpo_core.loglinear import LogLinearPolicy, dpo_gradient, group_pair_weights, ipo_closed_form
from grpo_core.loop import train
from grpo_core.losses import dpo_loss
from grpo_core.objective import Objective
from tests.core.conftest import random_pairs


def test_pair_logps_are_normalised_log_probs(pairs):
    policy = LogLinearPolicy(torch.randn(1, 3))
    logps = policy.action_logps(pairs)
    assert torch.allclose(logps.exp().sum(-1), torch.ones(1, pairs.num_pairs), atol=1e-6)
    chosen, rejected = policy.pair_logps(pairs)
    # a difference of two float32 log-probs of size ~10: exact to about 1e-6 absolute
    assert torch.allclose(
        chosen - rejected,
        torch.einsum("rnd,rd->rn", pairs.feature_difference, policy.theta),
        atol=1e-5,
    )


def test_analytic_dpo_gradient_equals_autograd(pairs):
    theta = torch.randn(1, 3, dtype=torch.float64)
    policy = LogLinearPolicy(theta)
    policy.theta.data = theta.clone()
    weights = torch.rand(1, pairs.num_pairs, dtype=torch.float64)
    chosen, rejected = policy.pair_logps(
        type(pairs)(pairs.features.double(), pairs.chosen, pairs.rejected, pairs.group_ids, 2)
    )
    (weights * dpo_loss(chosen - rejected, beta=0.7)).sum().backward()
    analytic = dpo_gradient(theta, pairs.feature_difference.double(), 0.7, weights)
    assert torch.allclose(policy.theta.grad.double(), analytic, atol=1e-5)


def test_closed_form_equals_converged_gradient_descent():
    # Given a small IPO problem with importance weights 1/(K N_g) per pair
    data = random_pairs(3, group_counts=(4, 12))
    sizes = torch.tensor([[4.0, 12.0]])
    beta = 0.5
    closed = ipo_closed_form(
        data.feature_difference,
        group_pair_weights(data.group_ids, torch.tensor([[0.5, 0.5]]), sizes),
        beta,
    )
    # When the training loop runs full-batch gradient descent on is_ipo to convergence
    policy = LogLinearPolicy(torch.zeros(1, 3))
    optim = OptimConfig(
        optimizer="sgd", learning_rate=0.05, batch_size=None, max_steps=4000, max_grad_norm=None
    )
    train(policy, data, Objective("ipo", "uniform", beta), optim, seed=0)
    # Then both reach the same theta
    assert torch.allclose(policy.theta.detach(), closed, atol=1e-3), (policy.theta, closed)


def test_closed_form_minimises_the_weighted_group_objective():
    data = random_pairs(4, group_counts=(5, 7))
    sizes = torch.tensor([[5.0, 7.0]])
    coefficients = torch.tensor([[0.8, 0.2]])
    theta = ipo_closed_form(
        data.feature_difference, group_pair_weights(data.group_ids, coefficients, sizes), 0.5
    )

    def objective(t):
        h = torch.einsum("rnd,rd->rn", data.feature_difference, t)
        means, _ = group_means((h - 1.0) ** 2, data.group_ids, 2)
        return (coefficients * means).sum()

    best = objective(theta)
    for _ in range(20):
        assert objective(theta + 0.01 * torch.randn_like(theta)) >= best - 1e-6, (
            "closed form must be the minimum"
        )


def test_policy_parameters_are_theta_only():
    policy = LogLinearPolicy(torch.ones(2, 4))
    assert [p.shape for p in policy.trainable_parameters()] == [torch.Size([2, 4])]
    with pytest.raises(TypeError):
        LogLinearPolicy()  # theta is required
