"""Step metrics kept in a run's folder as JSON lines: the history of everything its training emitted,
so that a run resumed from the folder's checkpoint into a new MLflow run (a sweep run again) carries
the whole curve, not only the steps it trains again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mlflow.entities import Metric

FIELDS = ("key", "value", "timestamp", "step")


def metric_line(metric: Metric) -> str:
    return json.dumps({k: getattr(metric, k) for k in FIELDS})


def read_metrics(path: Path, strict: bool = False) -> list[Metric]:
    """The metrics of a JSON-lines file. A line that is not one (a last line cut short by a crash)
    is left out; with ``strict``, it raises ``ValueError`` naming the file and line."""
    metrics = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            if set(fields) != set(FIELDS):
                raise TypeError(fields)
            metrics.append(Metric(**fields))
        except (json.JSONDecodeError, TypeError):
            if strict:
                raise ValueError(f"{path}, line {number}: not a kept metric") from None
    return metrics


def write_metrics(path: Path, metrics: Iterable[Metric]) -> None:
    """Replace ``path`` with ``metrics`` in one step (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(metric_line(m) + "\n" for m in metrics))
    tmp.replace(path)


class StepHistory:
    """The step metrics of one run folder, appended as the training emits them. A history found
    when the folder is trained again is replayed up to the first step trained again: those after
    it were trained by a run that stopped before its next checkpoint, and are trained again."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.earlier = read_metrics(self.path) if self.path.exists() else []
        self.replayed = False

    def replay(self, first_new_step: int | None) -> list[Metric]:
        """The earlier metrics of steps before ``first_new_step`` (all of them when ``None``: a
        finished run trains no step again); the file keeps only those."""
        self.replayed = True
        kept = [m for m in self.earlier if first_new_step is None or m.step < first_new_step]
        if self.path.exists():  # also drops a last line cut short, which the next would extend
            write_metrics(self.path, kept)
        self.earlier = []
        return kept

    def append(self, metrics: list[Metric]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write("".join(metric_line(m) + "\n" for m in metrics))
