"""The synthetic group linear bandit of Ramesh et al. 2024.

The paper's synthetic experiments (arXiv:2405.20304, https://arxiv.org/abs/2405.20304); see
docs/ALGORITHM.md#log-linear-policies.

K = 2 groups, 8 actions, states x ~ U[0,1]^2, features of dimension 4 with c(a) = a/8 + 1. Group 1's
features are group 0's "swapped" or "flipped"; true rewards r*(x, a, g) = phi . theta*_g with
theta*_0 = [1,3,1,3] and theta*_1 = [3,1,3,1], so one shared theta must trade the groups off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from grpo_core.loglinear import ActionPairs

FeatureType = Literal["swapped", "flipped"]
ResponseType = Literal["even", "uneven"]
NUM_ACTIONS = 8
FEATURE_DIM = 4
TRUE_THETA = torch.tensor([[1.0, 3.0, 1.0, 3.0], [3.0, 1.0, 3.0, 1.0]])


def features(states: Tensor, groups: Tensor, feature_type: FeatureType) -> Tensor:
    """phi(x, a, g) for every action: states ``[..., 2]``, groups ``[...]`` -> ``[..., 8, 4]``."""
    c = torch.arange(NUM_ACTIONS, dtype=states.dtype, device=states.device) / NUM_ACTIONS + 1.0
    c = c.expand(*states.shape[:-1], NUM_ACTIONS)
    cos1, sin1 = (torch.cos(math.pi * states[..., 0:1]), torch.sin(math.pi * states[..., 0:1]))
    cos2, sin2 = (torch.cos(math.pi * states[..., 1:2]), torch.sin(math.pi * states[..., 1:2]))
    group0 = torch.stack([c * cos1, sin1 / c, c * cos2, sin2 / c], dim=-1)
    if feature_type == "swapped":
        group1 = torch.stack([sin1 / c, c * cos1, sin2 / c, c * cos2], dim=-1)
    elif feature_type == "flipped":
        group1 = torch.stack([c * sin1, cos1 / c, c * sin2, cos2 / c], dim=-1)
    else:
        raise ValueError(f"unknown feature_type {feature_type!r}; choose 'swapped' or 'flipped'")
    is_group1 = (groups == 1)[..., None, None]
    return torch.where(is_group1, group1, group0)


def true_rewards(phi: Tensor, groups: Tensor) -> Tensor:
    """r*(x, a, g) = phi(x, a, g) . theta*_g: ``[..., 8, 4], [...] -> [..., 8]``."""
    theta = TRUE_THETA.to(phi)[groups]
    return torch.einsum("...ad,...d->...a", phi, theta)


def _action_pairs(
    groups: Tensor, response_type: ResponseType, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Two actions per row: "even" = two distinct uniform actions; "uneven" = group 0 adjacent
    actions (a, a +- 1 reflected at the edges), group 1 a and (a + 4) mod 8."""
    shape = groups.shape
    first = torch.randint(0, NUM_ACTIONS, shape, generator=generator)
    if response_type == "even":
        second = (first + torch.randint(1, NUM_ACTIONS, shape, generator=generator)) % NUM_ACTIONS
        return first, second
    if response_type != "uneven":
        raise ValueError(f"unknown response_type {response_type!r}; choose 'even' or 'uneven'")
    step = torch.randint(0, 2, shape, generator=generator) * 2 - 1
    neighbour = first + step
    neighbour = torch.where((neighbour < 0) | (neighbour >= NUM_ACTIONS), first - step, neighbour)
    far = (first + NUM_ACTIONS // 2) % NUM_ACTIONS
    return first, torch.where(groups == 0, neighbour, far)


def sample_pairs(
    group_counts: tuple[int, int],
    *,
    replicas: int,
    feature_type: FeatureType,
    response_type: ResponseType,
    generator: torch.Generator,
) -> ActionPairs:
    """Labelled pairs: the action with the higher true reward of its group wins (deterministic).

    Returns :class:`ActionPairs` with ``[replicas, sum(group_counts)]`` pairs, group 0 first.
    """
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(group_counts)]).expand(
        replicas, -1
    )
    states = torch.rand((*groups.shape, 2), generator=generator)
    phi = features(states, groups, feature_type)
    first, second = _action_pairs(groups, response_type, generator)
    rewards = true_rewards(phi, groups)
    first_wins = rewards.gather(-1, first[..., None]) >= rewards.gather(-1, second[..., None])
    first_wins = first_wins.squeeze(-1)
    chosen = torch.where(first_wins, first, second)
    rejected = torch.where(first_wins, second, first)
    return ActionPairs(phi, chosen, rejected, groups.contiguous(), num_groups=2)


@dataclass(frozen=True)
class EvalStates:
    """States shared by both groups for the reward-error and KL metrics: ``[R, M, 2]``."""

    states: Tensor


def reward_errors(theta: Tensor, test: EvalStates, feature_type: FeatureType) -> Tensor:
    """err_g = (r*_g - r_g) / r*_g per group (the paper's reward error), ``[R, d] -> [R, 2]``.

    r_g: mean true reward of the greedy action argmax_a theta . phi over the test states;
    r*_g: mean true reward of the optimal action.
    """
    errors = []
    for g in (0, 1):
        groups = torch.full(test.states.shape[:-1], g)
        phi = features(test.states, groups, feature_type)
        rewards = true_rewards(phi, groups)
        greedy = torch.einsum("rmad,rd->rma", phi, theta).argmax(-1)
        achieved = rewards.gather(-1, greedy[..., None]).squeeze(-1).mean(-1)
        optimal = rewards.max(-1).values.mean(-1)
        errors.append((optimal - achieved) / optimal)
    return torch.stack(errors, dim=-1)


def kl_to_optimal(theta: Tensor, test: EvalStates, feature_type: FeatureType) -> Tensor:
    """KL(softmax(r*) || pi_theta) per group, averaged over the test states: ``[R, d] -> [R, 2]``."""
    kls = []
    for g in (0, 1):
        groups = torch.full(test.states.shape[:-1], g)
        phi = features(test.states, groups, feature_type)
        target = torch.log_softmax(true_rewards(phi, groups), dim=-1)
        policy = torch.log_softmax(torch.einsum("rmad,rd->rma", phi, theta), dim=-1)
        kls.append((target.exp() * (target - policy)).sum(-1).mean(-1))
    return torch.stack(kls, dim=-1)
