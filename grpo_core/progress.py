"""Progress reporting without printing: long work calls ``progress(stage, done, total)``.

The caller decides where it goes: a bar on a terminal, a line at every tenth in a log or a file
(:class:`Milestones`), or events to a parent process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

    from grpo_core.policy import PairBatch

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, e.g. ("sft", 3, 50), ("train", 10, 200), ("evaluate test", 64, 128)."""


class Milestones:
    """A :data:`Progress` that writes one line each time a stage passes another tenth of its total.

    For destinations that are not terminals (log files, the Prefect log, a redirected stderr), where
    a progress bar would write a line per update. ``write`` receives lines such as
    ``"train: 20/200 (10%)"``, prefixed by ``label`` when given.
    """

    def __init__(self, write: Callable[[str], None], label: str = "", parts: int = 10):
        self.write, self.label, self.parts = write, label, parts
        self.shown: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        total = max(total, 1)
        part = min(self.parts, done * self.parts // total)
        if part > self.shown.get(stage, -1):
            self.shown[stage] = part
            prefix = f"{self.label} " if self.label else ""
            self.write(f"{prefix}{stage}: {done}/{total} ({100 * done // total}%)")


class ReportingDataset:
    """A ``PairDataset`` view that reports the pairs served so far to ``progress`` (scoring loops)."""

    def __init__(self, dataset: Any, stage: str, progress: Progress):
        self._dataset, self._stage, self._progress, self._done = dataset, stage, progress, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def batch(self, indices: Tensor) -> PairBatch:
        batch = self._dataset.batch(indices)
        self._done = min(self._done + len(indices), self._dataset.num_pairs)
        self._progress(self._stage, self._done, self._dataset.num_pairs)
        return batch


def reporting(dataset: Any, stage: str, progress: Progress | None) -> Any:
    """``dataset`` itself, or a :class:`ReportingDataset` over it when ``progress`` is given."""
    return dataset if progress is None else ReportingDataset(dataset, stage, progress)
