"""Progress reporting without printing: the caller passes ``progress(stage, done, total)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from grpo_core.policy import PairBatch

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, e.g. ("sft", 3, 50), ("train", 10, 200), ("eval/test", 64, 128)."""


class ReportingDataset:
    """A ``PairDataset`` view that reports the pairs served so far to ``progress`` (scoring loops)."""

    def __init__(self, dataset: Any, stage: str, progress: Progress):
        self._dataset, self._stage, self._progress, self._done = dataset, stage, progress, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def batch(self, indices: torch.Tensor) -> PairBatch:
        batch = self._dataset.batch(indices)
        self._done = min(self._done + len(indices), self._dataset.num_pairs)
        self._progress(self._stage, self._done, self._dataset.num_pairs)
        return batch


def reporting(dataset: Any, stage: str, progress: Progress | None) -> Any:
    """``dataset`` itself, or a :class:`ReportingDataset` over it when ``progress`` is given."""
    return dataset if progress is None else ReportingDataset(dataset, stage, progress)
