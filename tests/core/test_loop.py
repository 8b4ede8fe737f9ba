"""The one training loop: equivalences between methods, resume, plateau scheduling."""

import pytest
import torch

from grpo_core.config import OptimConfig, PlateauConfig
from grpo_core.loglinear import LogLinearPolicy
from grpo_core.loop import train
from grpo_core.objective import Objective
from tests.core.conftest import random_pairs

SGD = OptimConfig(optimizer="sgd", learning_rate=0.5, batch_size=None, max_steps=20, max_grad_norm=None)


def run(data, objective, optim=SGD, theta=None, **kwargs):
    policy = LogLinearPolicy(torch.ones(data.features.shape[0], data.features.shape[-1]) if theta is None else theta)
    result = train(policy, data, objective, optim, seed=0, **kwargs)
    return policy, result


def test_trainable_parameters_change():
    data = random_pairs(1)
    policy, _ = run(data, Objective("dpo", "size", beta=1.0))
    assert not torch.allclose(policy.theta, torch.ones_like(policy.theta)), "theta must move"


def test_group_robust_with_one_group_equals_plain_dpo():
    data = random_pairs(2, group_counts=(12,))
    plain, _ = run(data, Objective("dpo", "size", beta=1.0))
    robust, result = run(data, Objective("dpo", "robust", beta=1.0, step_size=0.7))
    assert torch.allclose(plain.theta, robust.theta, atol=1e-6)
    assert result.history[-1].group_weights.tolist() == [[1.0]]


def test_robust_at_step_size_zero_with_balanced_groups_equals_plain_dpo():
    data = random_pairs(3, group_counts=(6, 6))
    plain, _ = run(data, Objective("dpo", "size", beta=1.0))
    robust, _ = run(data, Objective("dpo", "robust", beta=1.0, step_size=0.0))
    assert torch.allclose(plain.theta, robust.theta, atol=1e-6)


def test_importance_sampling_with_balanced_groups_equals_plain():
    data = random_pairs(3, group_counts=(6, 6))
    plain, _ = run(data, Objective("ipo", "size", beta=0.5))
    weighted, _ = run(data, Objective("ipo", "uniform", beta=0.5))
    assert torch.allclose(plain.theta, weighted.theta, atol=1e-6)


def test_only_group_robust_methods_move_alpha():
    data = random_pairs(4)
    _, plain = run(data, Objective("dpo", "size", beta=1.0, step_size=1.0))
    _, robust = run(data, Objective("dpo", "robust", beta=1.0, step_size=1.0))
    assert plain.history[-1].group_weights.tolist() == [[0.5, 0.5]]
    assert plain.history[-1].coefficients[0].tolist() == pytest.approx([0.25, 0.75])
    assert robust.history[-1].group_weights[0, 0] != 0.5


def test_first_step_uses_the_updated_alpha():
    # Alpha first, then theta (Algorithm 1): the step-1 coefficients already include step 1's losses.
    data = random_pairs(5)
    _, result = run(data, Objective("dpo", "robust", beta=1.0, step_size=2.0), history_every=1)
    first = result.history[0]
    expected = torch.softmax(2.0 * first.group_losses, -1)
    assert torch.allclose(first.group_weights, expected, atol=1e-6)
    assert torch.allclose(first.coefficients, expected, atol=1e-6)


def test_replicas_train_independently():
    both = random_pairs(6, replicas=2)
    one = type(both)(both.features[1:], both.chosen[1:], both.rejected[1:], both.group_ids[1:], 2)
    objective = Objective("dpo", "robust", beta=1.0, step_size=0.5)
    policy_both, _ = run(both, objective, theta=torch.ones(2, 3))
    policy_one, _ = run(one, objective, theta=torch.ones(1, 3))
    assert torch.allclose(policy_both.theta[1:], policy_one.theta, atol=1e-6)


def test_resume_continues_exactly_like_an_uninterrupted_run():
    data = random_pairs(7, group_counts=(5, 11))
    optim = OptimConfig(optimizer="adamw", learning_rate=0.05, batch_size=4, grad_accum_steps=2, max_steps=10)
    objective = Objective("dpo", "robust", beta=1.0, step_size=0.3)
    whole, whole_result = run(data, objective, optim)
    saved = []
    half = optim.model_copy(update={"max_steps": 5})
    first, _ = run(data, objective, half, checkpoint=saved.append, checkpoint_every=5)
    assert saved[-1].step == 5
    resumed = LogLinearPolicy(first.theta.detach())
    resumed_result = train(resumed, data, objective, optim, seed=0, resume=saved[-1])
    assert torch.equal(resumed.theta, whole.theta), "resume must be bit-for-bit on CPU"
    assert torch.equal(resumed_result.state.weights.log_alpha, whole_result.state.weights.log_alpha)


def test_plateau_cuts_the_learning_rate_and_stops_after_max_cuts():
    data = random_pairs(8)
    optim = OptimConfig(
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=None,
        max_steps=100,
        max_grad_norm=None,
        plateau=PlateauConfig(enabled=True, factor=0.5, patience=1, max_cuts=2),
    )
    objective = Objective("dpo", "robust", beta=1.0, step_size=0.8, halve_step_on_lr_cut=True)
    # A validation loss that never improves: the scheduler cuts after patience + 1 evaluations.
    _, result = run(data, objective, optim, evaluate=lambda step: 1.0, eval_every=1)
    cuts = [e.step for e in result.evaluations if e.lr_cut]
    assert cuts == [3, 5], f"expected cuts at steps 3 and 5, got {cuts}"
    assert result.stopped_early and result.state.step == 5
    assert result.state.group_step_size == pytest.approx(0.2), "eta_alpha halves on each cut"
    assert result.history[-1].learning_rate == pytest.approx(0.05), "step 5 ran before its cut"
    assert result.evaluations[-1].learning_rate == pytest.approx(0.025), "0.1 halved twice"


def test_a_policy_without_trainable_parameters_is_refused():
    data = random_pairs(9)
    policy = LogLinearPolicy(torch.ones(1, 3))
    policy.theta.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(policy, data, Objective("dpo", "size", beta=1.0), SGD, seed=0)
