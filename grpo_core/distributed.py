"""Data-parallel training of one run over several processes.

The step is Algorithm 1 of Ramesh et al. 2024 (arXiv:2405.20304) with the estimator of
docs/ALGORITHM.md#the-group-loss-estimator, computed on a global minibatch split over ranks.

Every rank draws the same global minibatch (same sampler seed) and scores its shard. The group-loss
sums, the group counts and the batch size are summed over ranks before the estimator, so every rank
holds the same Lhat_g and the same alpha after the mirror-ascent step; the gradients are summed
before clipping and the optimizer step, so every rank takes the step a single process would take
with the global batch. The reduction is passed in (``torch.distributed`` in practice), so the loop
itself knows no launcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class DataParallel:
    """This process's place among ``world_size`` ranks and the sum over ranks."""

    rank: int
    world_size: int
    all_reduce: Callable[[Tensor], Tensor]
    """Returns the elementwise sum of a tensor over all ranks (not in place, no gradient)."""

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in [0, {self.world_size})")

    def shard(self, indices: Tensor) -> Tensor:
        """This rank's part of the global minibatch ``indices``: every ``world_size``-th pair."""
        return indices[self.rank :: self.world_size]

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and logs."""
        return self.rank == 0


def from_process_group() -> DataParallel:
    """The :class:`DataParallel` of an initialised ``torch.distributed`` process group (e.g. under
    ``torchrun``), summing with ``all_reduce``."""
    import torch.distributed as dist

    def all_reduce(tensor: Tensor) -> Tensor:
        summed = tensor.detach().clone()
        dist.all_reduce(summed)
        return summed

    return DataParallel(dist.get_rank(), dist.get_world_size(), all_reduce)
