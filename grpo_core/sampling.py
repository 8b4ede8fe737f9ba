"""Seeded minibatch order that can be resumed from two integers (epoch, offset).

Each epoch's order is a permutation drawn from a generator seeded by (seed, epoch), so a resumed run
needs no random-generator state to continue with exactly the same minibatches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplerPosition:
    """Where the sampler is: the epoch and the number of pairs of it already served."""

    epoch: int = 0
    offset: int = 0


class EpochSampler:
    """Uniform minibatches without replacement within an epoch; full batch when ``batch_size`` is None.

    Every minibatch has exactly ``batch_size`` pairs, as the group-loss estimator assumes: the last
    ``N mod B`` pairs of an epoch's permutation are skipped in that epoch (they differ every epoch).
    """

    def __init__(
        self, num_pairs: int, batch_size: int | None, seed: int, position=SamplerPosition()
    ):
        if num_pairs < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.num_pairs = num_pairs
        self.batch_size = num_pairs if batch_size is None else min(batch_size, num_pairs)
        self.seed = seed
        self.position = position

    def _order(self, epoch: int) -> Tensor:
        if self.batch_size == self.num_pairs:
            return torch.arange(self.num_pairs)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_pairs, generator=generator)

    def next_indices(self) -> Tensor:
        """The next minibatch's ``[B]`` indices; advances :attr:`position`."""
        epoch, offset = self.position.epoch, self.position.offset
        if offset + self.batch_size > self.num_pairs:
            epoch, offset = epoch + 1, 0
        indices = self._order(epoch)[offset : offset + self.batch_size]
        self.position = SamplerPosition(epoch, offset + self.batch_size)
        return indices
