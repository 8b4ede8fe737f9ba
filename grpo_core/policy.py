"""What the training loop needs from a policy and from a set of preference pairs.

A policy only has to give per-pair sequence log-probs (chosen, rejected): in closed form for a
log-linear policy, by a forward pass for a causal language model. Data is handed to it as an opaque,
policy-specific ``inputs`` payload that the matching :class:`PairDataset` builds for a minibatch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from grpo_core.groups import group_sums


@dataclass(frozen=True)
class PairBatch:
    """A minibatch of preference pairs.

    Attributes:
        indices: ``[B]`` positions of the pairs in their dataset.
        group_ids: ``[..., B]`` integer group of each pair (leading replica dims allowed).
        ref_chosen, ref_rejected: ``[..., B]`` reference log-probs log ref(y_w|x), log ref(y_l|x).
        inputs: what the policy reads to compute its log-probs (features, token ids, ...).
        chosen_lengths, rejected_lengths: ``[B]`` scored tokens of each response (language models;
            None where a response is one action, as for log-linear policies).
    """

    indices: Tensor
    group_ids: Tensor
    ref_chosen: Tensor
    ref_rejected: Tensor
    inputs: Any
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None


@runtime_checkable
class PairDataset(Protocol):
    """An indexable set of N grouped preference pairs with their reference log-probs."""

    @property
    def num_pairs(self) -> int: ...

    @property
    def num_groups(self) -> int: ...

    @property
    def group_ids(self) -> Tensor:
        """``[..., N]`` group of every pair."""
        ...

    def batch(self, indices: Tensor) -> PairBatch:
        """The pairs at ``indices`` (``[B]``), ready for the policy."""
        ...


@runtime_checkable
class Policy(Protocol):
    """Anything that scores (chosen, rejected) responses with sequence log-probs."""

    def pair_logps(self, inputs: Any) -> tuple[Tensor, Tensor]:
        """``(log pi(y_w|x), log pi(y_l|x))``, each ``[..., B]`` float32, differentiable."""
        ...

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """The parameters theta that the optimiser updates."""
        ...

    def train(self, mode: bool = True) -> Any:
        """Switch training behaviour (dropout) on or off, as ``torch.nn.Module.train``."""
        ...


def group_sizes_of(dataset: PairDataset) -> Tensor:
    """N_g counted on ``dataset`` (the counts of :func:`grpo_core.groups.group_sums`): ``[..., K]``
    float; every group must hold at least one pair."""
    ids = dataset.group_ids
    _, counts = group_sums(torch.ones_like(ids, dtype=torch.float64), ids, dataset.num_groups)
    if (counts == 0).any():
        empty = sorted({int(g) for g in (counts == 0).nonzero()[:, -1].tolist()})
        raise ValueError(f"groups {empty} have no training pairs; every group needs at least one")
    return counts.float()
