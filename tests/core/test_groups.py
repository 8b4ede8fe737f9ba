"""Group statistics and group weights: exact numbers and properties (the estimator and Algorithm 1
of Ramesh et al. 2024; docs/ALGORITHM.md#the-group-loss-estimator and
docs/ALGORITHM.md#the-group-weight-update-mirror-ascent)."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_core.groups import (
    GroupWeights,
    estimate_group_losses,
    group_means,
    mirror_ascent_step,
    robust_mix_weights,
    theta_group_coefficients,
)


def test_group_means_with_an_absent_group_gives_zero_and_no_nan():
    means, counts = group_means(
        torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), num_groups=3
    )
    assert means.tolist() == [2.0, 0.0, 5.0]
    assert counts.tolist() == [2.0, 0.0, 1.0]
    assert not torch.isnan(means).any()


def test_group_means_with_replica_dims():
    values = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    means, _ = group_means(values, torch.tensor([0, 1]), num_groups=2)
    assert means.tolist() == [[1.0, 2.0], [3.0, 5.0]]


def test_out_of_range_group_ids_are_refused():
    with pytest.raises(ValueError, match="group ids"):
        group_means(torch.ones(2), torch.tensor([0, 2]), num_groups=2)


def test_two_groups_losses_1_0_with_step_ln2_give_two_thirds():
    weights = mirror_ascent_step(GroupWeights.uniform(2), torch.tensor([1.0, 0.0]), math.log(2))
    assert weights.alpha.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_update_returns_a_new_value_and_leaves_the_old_one_alone():
    before = GroupWeights.uniform(3)
    snapshot = before.log_alpha.clone()
    after = mirror_ascent_step(before, torch.tensor([1.0, 2.0, 3.0]), 0.5)
    assert after is not before
    assert torch.equal(before.log_alpha, snapshot), "the update must not mutate its input"
    with pytest.raises(AttributeError):
        before.log_alpha = torch.zeros(3)


def test_unbiased_estimator_hand_computed():
    # N = 4 (N_0 = 1, N_1 = 3), batch of B = 2 with one pair of each group, losses 1 and 2:
    # Lhat_0 = 4 / (2 * 1) * 1 = 2, Lhat_1 = 4 / (2 * 3) * 2 = 4/3
    estimate = estimate_group_losses(
        torch.tensor([1.0, 2.0]), torch.tensor([0, 1]), torch.tensor([1.0, 3.0])
    )
    assert estimate.tolist() == pytest.approx([2.0, 4 / 3])


def test_unbiased_estimator_at_full_batch_is_the_group_mean():
    losses = torch.tensor([1.0, 2.0, 4.0, 8.0])
    ids = torch.tensor([0, 1, 1, 0])
    estimate = estimate_group_losses(losses, ids, torch.tensor([2.0, 2.0]))
    assert estimate.tolist() == pytest.approx([4.5, 3.0])


def test_unbiased_estimator_averaged_over_all_minibatches_is_exact():
    # Uniform minibatches without replacement: E[Lhat_g] = L_g.
    losses = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    ids = torch.tensor([0, 1, 1, 1, 0])
    sizes = torch.tensor([2.0, 3.0])
    subsets = list(itertools.combinations(range(5), 2))
    total = sum(estimate_group_losses(losses[list(s)], ids[list(s)], sizes) for s in subsets)
    assert (total / len(subsets)).tolist() == pytest.approx([8.5, 14 / 3])


def test_batch_mean_estimator_leaves_absent_groups_at_zero():
    estimate = estimate_group_losses(
        torch.tensor([1.0, 3.0]), torch.tensor([1, 1]), torch.tensor([5.0, 5.0]), "batch_mean"
    )
    assert estimate.tolist() == [0.0, 2.0]


def test_theta_coefficients_per_family():
    sizes = torch.tensor([1.0, 3.0])
    weights = GroupWeights(torch.log(torch.tensor([2 / 3, 1 / 3])))
    assert theta_group_coefficients("size", sizes, weights).tolist() == pytest.approx([0.25, 0.75])
    assert theta_group_coefficients("uniform", sizes, weights).tolist() == pytest.approx([0.5, 0.5])
    assert theta_group_coefficients("robust", sizes, weights).tolist() == pytest.approx(
        [2 / 3, 1 / 3]
    )
    # chi = 0.5: 0.25 + 0.5 * alpha
    assert theta_group_coefficients("robust", sizes, weights, 0.5).tolist() == pytest.approx(
        [7 / 12, 5 / 12]
    )


def test_robust_mix_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="robust_mix"):
        robust_mix_weights(torch.tensor([0.5, 0.5]), 1.5)


losses_strategy = st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(losses=losses_strategy, step=st.floats(0.0, 10.0))
def test_update_stays_on_the_simplex_without_overflow(losses, step):
    weights = mirror_ascent_step(GroupWeights.uniform(len(losses)), torch.tensor(losses), step)
    alpha = weights.alpha
    assert torch.isfinite(weights.log_alpha).all(), "log-space weights must not overflow"
    assert (alpha >= 0).all() and not torch.isnan(alpha).any()
    assert alpha.sum().item() == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(losses=losses_strategy)
def test_step_zero_is_identity(losses):
    start = GroupWeights(torch.log_softmax(torch.arange(len(losses), dtype=torch.float32), -1))
    after = mirror_ascent_step(start, torch.tensor(losses), 0.0)
    assert torch.allclose(after.alpha, start.alpha, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(losses=losses_strategy, shift=st.floats(-100, 100), step=st.floats(0.0, 1.0))
def test_adding_a_constant_to_every_loss_changes_nothing(losses, shift, step):
    base = torch.tensor(losses, dtype=torch.float64)
    weights = GroupWeights.uniform(len(losses))
    weights = GroupWeights(weights.log_alpha.double())
    a = mirror_ascent_step(weights, base, step).alpha
    b = mirror_ascent_step(weights, base + shift, step).alpha
    assert torch.allclose(a, b, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(losses=losses_strategy, step=st.floats(0.0, 1.0), data=st.data())
def test_permuting_groups_permutes_weights(losses, step, data):
    perm = torch.tensor(data.draw(st.permutations(range(len(losses)))))
    start = GroupWeights(torch.log_softmax(torch.linspace(0, 1, len(losses)), -1))
    moved = mirror_ascent_step(start, torch.tensor(losses), step).alpha
    permuted = mirror_ascent_step(
        GroupWeights(start.log_alpha[perm]), torch.tensor(losses)[perm], step
    ).alpha
    assert torch.allclose(permuted, moved[perm], atol=1e-6)


def test_no_overflow_at_ipo_sized_losses():
    weights = GroupWeights.uniform(2)
    for _ in range(100):
        weights = mirror_ascent_step(weights, torch.tensor([1e4, 2e4]), 1.0)
    assert weights.alpha.tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert torch.isfinite(weights.alpha).all()
