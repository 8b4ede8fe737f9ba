"""The one training loop: equivalences between methods, resume, plateau scheduling."""

import pytest
import torch

from grpo_core.config import GroupWeightsConfig, LossConfig, OptimConfig, PlateauConfig
from grpo_core.loglinear import LogLinearPolicy
from grpo_core.loop import NonFiniteError, check_finite, train
from grpo_core.methods import METHODS
from grpo_core.objective import Objective
from tests.core.conftest import random_pairs

SGD = OptimConfig(
    optimizer="sgd", learning_rate=0.5, batch_size=None, max_steps=20, max_grad_norm=None
)


def run(data, objective, optim=SGD, theta=None, **kwargs):
    policy = LogLinearPolicy(
        torch.ones(data.features.shape[0], data.features.shape[-1]) if theta is None else theta
    )
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


@pytest.mark.parametrize("method", METHODS)
def test_resume_from_a_mid_run_checkpoint_continues_exactly_like_an_uninterrupted_run(method):
    # Given minibatches, accumulation, AdamW, a plateau scheduler that cuts, and checkpoints every 3 steps
    data = random_pairs(7, group_counts=(5, 11))
    optim = OptimConfig(
        optimizer="adamw", learning_rate=0.05, batch_size=4, grad_accum_steps=2, max_steps=10,
        plateau=PlateauConfig(enabled=True, factor=0.5, patience=0, max_cuts=None),
    )  # fmt: skip
    objective = Objective.for_method(
        method, LossConfig(beta=1.0), GroupWeightsConfig(step_size=0.3, halve_step_on_lr_cut=True)
    )
    evaluate = lambda step: 1.0  # noqa: E731  never improves: a cut at every evaluation after the first
    saved = []
    whole, whole_result = run(
        data,
        objective,
        optim,
        checkpoint=saved.append,
        checkpoint_every=3,
        evaluate=evaluate,
        eval_every=2,
    )
    # When a fresh policy resumes from the step-6 checkpoint taken during that run
    at_six = next(s for s in saved if s.step == 6)
    assert at_six.optimizer["state"][0]["step"].item() == 6, (
        "a snapshot must not follow later steps"
    )
    theta_at_six = torch.ones(1, 3)
    replay, _ = run(
        data,
        objective,
        optim.model_copy(update={"max_steps": 6}),
        theta=theta_at_six,
        evaluate=evaluate,
        eval_every=2,
    )
    resumed = LogLinearPolicy(replay.theta.detach())
    resumed_result = train(
        resumed, data, objective, optim, seed=0, resume=at_six, evaluate=evaluate, eval_every=2
    )
    # Then parameters, group weights, eta_alpha and learning rate end bit-for-bit equal
    assert whole_result.evaluations[-1].lr_cut, "the scheduler must have been cutting"
    assert torch.equal(resumed.theta, whole.theta), "resume must be bit-for-bit on CPU"
    assert torch.equal(resumed_result.state.weights.log_alpha, whole_result.state.weights.log_alpha)
    assert resumed_result.state.step_size == whole_result.state.step_size
    assert resumed_result.history[-1].learning_rate == whole_result.history[-1].learning_rate
    assert at_six.optimizer["state"][0]["step"].item() == 6, (
        "resuming must not change the saved state"
    )


def test_halving_eta_alpha_leaves_the_objective_untouched():
    data = random_pairs(8, replicas=2)
    step_sizes = torch.tensor([[0.5], [1.0]])
    optim = OptimConfig(
        optimizer="sgd", learning_rate=0.1, batch_size=None, max_steps=4, max_grad_norm=None,
        plateau=PlateauConfig(enabled=True, factor=0.5, patience=0, max_cuts=None),
    )  # fmt: skip
    objective = Objective(
        "dpo", "robust", beta=1.0, step_size=step_sizes, halve_step_on_lr_cut=True
    )
    _, result = run(
        data, objective, optim, theta=torch.ones(2, 3), evaluate=lambda step: 1.0, eval_every=1
    )
    assert objective.step_size.tolist() == [[0.5], [1.0]]
    assert result.history[0].step_size.tolist() == [[0.5], [1.0]]
    assert result.state.step_size.tolist() == [[0.0625], [0.125]], (
        "three cuts halve eta_alpha three times"
    )


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
    assert result.state.step_size == pytest.approx(0.2), "eta_alpha halves on each cut"
    assert result.history[-1].learning_rate == pytest.approx(0.05), "step 5 ran before its cut"
    assert result.evaluations[-1].learning_rate == pytest.approx(0.025), "0.1 halved twice"


def test_a_policy_without_trainable_parameters_is_refused():
    data = random_pairs(9)
    policy = LogLinearPolicy(torch.ones(1, 3))
    policy.theta.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(policy, data, Objective("dpo", "size", beta=1.0), SGD, seed=0)


def test_a_huge_learning_rate_stops_at_the_step_whose_loss_is_not_finite():
    # given: IPO on one problem with eta_theta = 1e30
    data = random_pairs(1)
    optim = SGD.model_copy(update={"learning_rate": 1e30})
    steps = []
    # when / then: step 1 moves theta to ~1e30 (finite); step 2's squared margins overflow
    with pytest.raises(NonFiniteError, match="step 2: the loss is not finite") as stopped:
        run(
            data,
            Objective("ipo", "size", beta=0.1),
            optim,
            callbacks=[lambda r: steps.append(r.step)],
        )
    assert (stopped.value.step, stopped.value.quantity) == (2, "loss")
    assert steps == [1], "the non-finite step reaches no callback (and so no checkpoint)"


def test_non_finite_gradients_stop_before_the_parameters_move():
    # given: a policy whose log-probs are finite but whose gradient is not (sqrt at 0)
    class SqrtPolicy(LogLinearPolicy):
        def pair_logps(self, inputs):
            chosen, rejected = super().pair_logps(inputs)
            return chosen + (self.theta * 0).sum(-1, keepdim=True).sqrt(), rejected

    data = random_pairs(1)
    policy = SqrtPolicy(torch.ones(1, data.features.shape[-1]))
    before = policy.theta.detach().clone()
    with pytest.raises(NonFiniteError, match="step 1: the gradient is not finite"):
        train(policy, data, Objective("dpo", "size", beta=1.0), SGD, seed=0)
    assert torch.equal(policy.theta.detach(), before), "no step was taken"


def test_check_finite_names_the_first_bad_value():
    check_finite(3, "loss", [torch.tensor([1.0, 2.0])])
    with pytest.raises(NonFiniteError, match=r"step 3: the group weight is not finite \(inf\)"):
        check_finite(3, "group weight", [torch.tensor([0.5, float("inf")])])


@pytest.mark.parametrize("method", ["dr_dpo", "kl_dpo"])
def test_pair_weights_at_a_huge_temperature_train_like_plain_dpo(method):
    data = random_pairs(11, group_counts=(5, 9))
    plain, _ = run(data, Objective.for_method("dpo", LossConfig(beta=1.0), GroupWeightsConfig()))
    loss = LossConfig(beta=1.0, pair_temperature=1e9)
    weighted, _ = run(data, Objective.for_method(method, loss, GroupWeightsConfig()))
    assert torch.allclose(plain.theta, weighted.theta, atol=1e-6)


def test_dr_dpo_and_kl_dpo_pull_theta_apart_from_dpo_and_from_each_other():
    data = random_pairs(12, group_counts=(5, 9))
    thetas = {
        m: run(
            data,
            Objective.for_method(
                m, LossConfig(beta=1.0, pair_temperature=0.2), GroupWeightsConfig()
            ),
        )[0].theta
        for m in ("dpo", "dr_dpo", "kl_dpo")
    }
    assert not torch.allclose(thetas["dpo"], thetas["dr_dpo"], atol=1e-3)
    assert not torch.allclose(thetas["dpo"], thetas["kl_dpo"], atol=1e-3)
    assert not torch.allclose(thetas["dr_dpo"], thetas["kl_dpo"], atol=1e-3)


def test_pair_weights_are_refused_across_processes():
    from grpo_core.distributed import DataParallel

    two = DataParallel(rank=0, world_size=2, all_reduce=lambda t: 2 * t)
    objective = Objective.for_method("dr_dpo", LossConfig(beta=1.0), GroupWeightsConfig())
    with pytest.raises(ValueError, match="in one process"):
        run(random_pairs(13), objective, parallel=two)


def test_the_callers_random_state_survives_training():
    # given: a seeded caller
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    # when: a run seeds torch's generator with its own seed in between
    run(random_pairs(14), Objective("dpo", "robust", beta=1.0, step_size=0.5))
    # then
    assert torch.equal(torch.rand(3), expected), "train must fork the RNG, not consume the caller's"


def test_checkpoints_every_n_steps_and_the_final_state_once():
    saved = []
    optim = SGD.model_copy(update={"max_steps": 10})
    _, result = run(random_pairs(15), Objective("dpo", "size", beta=1.0), optim,
                    checkpoint=saved.append, checkpoint_every=3)  # fmt: skip
    assert [s.step for s in saved] == [3, 6, 9, 10], "every 3rd step, then the final one"
    saved.clear()
    run(random_pairs(15), Objective("dpo", "size", beta=1.0), optim,
        checkpoint=saved.append, checkpoint_every=5)  # fmt: skip
    assert [s.step for s in saved] == [5, 10], "step 10's checkpoint is the final state: once"
    assert result.state.step == 10 and not result.state.stopped_early


def test_only_rank_zero_writes_checkpoints():
    from grpo_core.distributed import DataParallel

    saved = []
    optim = SGD.model_copy(update={"batch_size": 4, "max_steps": 4})
    for rank in (0, 1):
        two = DataParallel(rank=rank, world_size=2, all_reduce=lambda t: 2 * t)
        run(random_pairs(16), Objective("dpo", "robust", beta=1.0, step_size=0.5), optim,
            parallel=two, checkpoint=lambda s, rank=rank: saved.append((rank, s.step)),
            checkpoint_every=2)  # fmt: skip
    assert saved == [(0, 2), (0, 4)], f"rank 1 must not write, got {saved}"


def test_a_run_the_plateau_stopped_resumes_without_a_step():
    data = random_pairs(8)
    optim = SGD.model_copy(
        update={
            "max_steps": 100,
            "plateau": PlateauConfig(enabled=True, factor=0.5, patience=0, max_cuts=1),
        }
    )
    objective = Objective("dpo", "robust", beta=1.0, step_size=0.8)
    policy, stopped = run(data, objective, optim, evaluate=lambda step: 1.0, eval_every=1)
    assert stopped.stopped_early and stopped.state.step == 2, "one cut, at the second evaluation"
    # when: the stopped run is resumed
    steps = []
    again = train(policy, data, objective, optim, seed=0, resume=stopped.state,
                  callbacks=[steps.append])  # fmt: skip
    # then: nothing trains and the state is handed back as it was
    assert steps == [] and again.stopped_early and again.state.step == 2
    assert torch.equal(again.state.weights.log_alpha, stopped.state.weights.log_alpha)


def test_an_empty_group_or_an_unknown_group_id_is_refused_before_training():
    empty = random_pairs(17, group_counts=(4, 0))
    with pytest.raises(ValueError, match=r"groups \[1\] have no training pairs"):
        run(empty, Objective("dpo", "size", beta=1.0))
    unknown = random_pairs(17, group_counts=(4, 4))
    unknown.group_ids[0, 0] = 2
    with pytest.raises(ValueError, match=r"group ids must lie in \[0, 2\)"):
        run(unknown, Objective("dpo", "size", beta=1.0))
