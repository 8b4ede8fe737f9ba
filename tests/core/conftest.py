"""Small seeded log-linear problems shared by the core tests."""

import pytest
import torch

from grpo_core.loglinear import ActionPairs


def random_pairs(
    seed: int, group_counts=(3, 9), replicas: int = 1, actions: int = 5, dim: int = 3
) -> ActionPairs:
    """A random log-linear pair set: features ``[R, N, A, d]`` and random distinct action pairs."""
    g = torch.Generator().manual_seed(seed)
    n = sum(group_counts)
    features = torch.randn((replicas, n, actions, dim), generator=g)
    chosen = torch.randint(0, actions, (replicas, n), generator=g)
    rejected = (chosen + torch.randint(1, actions, (replicas, n), generator=g)) % actions
    groups = (
        torch.cat([torch.full((c,), k) for k, c in enumerate(group_counts)])
        .expand(replicas, n)
        .contiguous()
    )
    return ActionPairs(features, chosen, rejected, groups, num_groups=len(group_counts))


@pytest.fixture
def pairs() -> ActionPairs:
    return random_pairs(0)
