"""The synthetic group linear bandit (docs/ALGORITHM.md#log-linear-policies): generator facts and
the paper's ordering."""

import pytest
import torch

from grpo_core.config import GroupWeightsConfig, LossConfig, OptimConfig
from grpo_core.loglinear import LogLinearPolicy
from grpo_core.loop import train
from grpo_core.objective import Objective
from grpo_core.synthetic.bandit import (
    TRUE_THETA,
    EvalStates,
    features,
    reward_errors,
    sample_pairs,
    true_rewards,
)
from grpo_core.synthetic.experiment import (
    SETTINGS,
    SyntheticConfig,
    make_problem,
    run_method,
    run_methods,
    validation_group_losses,
)


def test_group_features_at_a_known_state():
    # x = (0, 0.5), action 0 (c = 1): group 0 = [cos 0, sin 0, cos(pi/2), sin(pi/2)] = [1, 0, 0, 1]
    phi = features(torch.tensor([0.0, 0.5]), torch.tensor(0), "swapped")[0]
    assert torch.allclose(phi, torch.tensor([1.0, 0.0, 0.0, 1.0]), atol=1e-6)
    swapped = features(torch.tensor([0.0, 0.5]), torch.tensor(1), "swapped")[0]
    assert torch.allclose(swapped, torch.tensor([0.0, 1.0, 1.0, 0.0]), atol=1e-6)
    # action 4 (c = 1.5) tells the two group-1 maps apart: swapped scales cos, flipped scales sin
    swapped4 = features(torch.tensor([0.0, 0.5]), torch.tensor(1), "swapped")[4]
    assert torch.allclose(swapped4, torch.tensor([0.0, 1.5, 1 / 1.5, 0.0]), atol=1e-6)
    flipped4 = features(torch.tensor([0.0, 0.5]), torch.tensor(1), "flipped")[4]
    assert torch.allclose(flipped4, torch.tensor([0.0, 1 / 1.5, 1.5, 0.0]), atol=1e-6)
    # action 4: c = 1.5 scales cos by 1.5 and divides sin by 1.5 in group 0
    phi4 = features(torch.tensor([0.0, 0.5]), torch.tensor(0), "swapped")[4]
    assert torch.allclose(phi4, torch.tensor([1.5, 0.0, 0.0, 1 / 1.5]), atol=1e-6)


def test_labels_follow_the_true_reward_and_uneven_pairs_have_the_right_gaps():
    g = torch.Generator().manual_seed(0)
    pairs = sample_pairs(
        (40, 60), replicas=2, feature_type="swapped", response_type="uneven", generator=g
    )
    rewards = true_rewards(pairs.features, pairs.group_ids)
    r_w = rewards.gather(-1, pairs.chosen[..., None]).squeeze(-1)
    r_l = rewards.gather(-1, pairs.rejected[..., None]).squeeze(-1)
    assert (r_w >= r_l).all(), "the chosen action has the higher true reward"
    gap = (pairs.chosen - pairs.rejected).abs()
    assert (gap[:, :40] == 1).all(), "group 0 compares adjacent actions"
    assert (gap[:, 40:] == 4).all(), "group 1 compares a with a+4 mod 8"
    assert TRUE_THETA.shape == (2, 4)


def test_optimal_theta_has_zero_reward_error_for_its_group():
    states = EvalStates(torch.rand(1, 50, 2, generator=torch.Generator().manual_seed(1)))
    errors = reward_errors(TRUE_THETA[:1], states, "swapped")
    assert errors[0, 0].abs().item() < 1e-6
    assert errors[0, 1].item() > 0, "group 0's theta* does not serve group 1"


def test_seed_data_do_not_depend_on_the_number_of_seeds():
    a = make_problem(SyntheticConfig(seeds=2))
    b = make_problem(SyntheticConfig(seeds=3))
    assert torch.equal(a.train.features[1], b.train.features[1])
    assert torch.equal(a.theta0[1], b.theta0[1])


def test_group_robust_dpo_lowers_the_worst_group_validation_loss():
    # Given the seeded uneven-imbalanced setting (shortened)
    config = SyntheticConfig(
        setting="uneven-imbalanced", seeds=4, iterations=1500, methods=("dpo", "gr_dpo")
    )
    problem = make_problem(config)
    # When plain DPO and GR-DPO train on the same data from the same start
    plain = run_method(problem, config, "dpo")
    robust = run_method(problem, config, "gr_dpo")
    # Then GR-DPO's worst group is better served, on average and on every seed, and alpha favours group 0
    assert robust.max_val_group_loss.mean() < plain.max_val_group_loss.mean() - 0.03
    assert (robust.max_val_group_loss < plain.max_val_group_loss).all()
    assert (robust.group_weights[:, 0] > 0.5).all(), "the minority group 0 gets the larger weight"


def test_closed_form_solver_runs_the_ipo_family():
    config = SyntheticConfig(
        seeds=3, iterations=50, methods=("ipo", "gr_ipo"), solver="closed_form"
    )
    problem = make_problem(config)
    plain = run_method(problem, config, "ipo")
    robust = run_method(problem, config, "gr_ipo")
    assert (robust.max_val_group_loss <= plain.max_val_group_loss + 1e-6).all()


@pytest.mark.parametrize(
    "methods", [("dpo", "is_dpo", "gr_dpo"), ("dpo", "cdpo", "rdpo", "dr_dpo", "kl_dpo")]
)
def test_a_family_trained_in_one_call_equals_each_method_trained_alone(methods):
    # Given a family of DPO methods (group weights, label flips, pair weights) as replicas of one call
    config = SyntheticConfig(setting="even-imbalanced", seeds=2, iterations=200, methods=methods)
    problem = make_problem(config)
    together = run_methods(problem, config, config.methods)
    # When each method trains on its own with its own objective (its own group weighting)
    setting = SETTINGS[config.setting]
    optim = OptimConfig(
        optimizer="sgd",
        learning_rate=setting.learning_rate,
        batch_size=None,
        max_steps=200,
        max_grad_norm=None,
    )
    for result, method in zip(together, config.methods, strict=True):
        objective = Objective.for_method(
            method, LossConfig(beta=setting.beta), GroupWeightsConfig(step_size=setting.step_size)
        )
        policy = LogLinearPolicy(problem.theta0)
        train(policy, problem.train, objective, optim, seed=0)
        alone = validation_group_losses(policy, problem.validation, setting.beta, "dpo")
        # Then the outcomes agree
        assert result.method == method
        assert torch.allclose(result.val_group_loss, alone, atol=1e-5), method
    assert together[0].group_weights[0].tolist() == pytest.approx([0.2, 0.8]), (
        "plain DPO weighs groups by size"
    )
    if "is_dpo" in methods:
        assert together[1].group_weights[0].tolist() == pytest.approx([0.5, 0.5])
    else:  # the pair-robust baselines differ from DPO and from each other
        finals = [r.val_group_loss.mean().item() for r in together]
        assert len({round(f, 6) for f in finals}) == len(methods), finals
