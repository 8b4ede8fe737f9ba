"""Progress output that suits where it goes: a bar on a terminal, a line per tenth otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from grpo_core.progress import Milestones, Progress


class TqdmProgress:
    """One tqdm bar per stage ("sft", "train", "evaluate test", ...) fed by ``progress(stage, done, total)``."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self.bars.get(stage)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            unit = "step" if stage in ("sft", "train") else "pair"
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=self.stream)
        bar.update(done - bar.n)  # tqdm redraws at most every mininterval
        if done >= total:
            bar.close()
            del self.bars[stage]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


class CliProgress:
    """``progress(stage, done, total)`` for a command: tqdm bars when ``stream`` is a terminal,
    otherwise one line per tenth of each stage (a log or a file gets no bar redraws), or nothing."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        stream = sys.stderr if stream is None else stream
        self._bars: TqdmProgress | None = None
        self._target: Progress | None = None
        if not enabled:
            return
        if stream.isatty():
            self._bars = TqdmProgress(stream)
            self._target = self._bars
        else:
            self._target = Milestones(lambda line: print(line, file=stream, flush=True))

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._target is not None:
            self._target(stage, done, total)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.close()

    def __enter__(self) -> CliProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
