"""The small typed values that cross a flow/task boundary: which MLflow run, which prepared data,
which starting model, what a child's training came to, why it failed, what an evaluation found.

Each is a frozen pydantic model: Prefect persists and caches task results (``group-data`` keeps its
result across flow runs), and a pydantic model serialises there as it does to JSON. The flows'
results, the ``--json`` files of ``grpo run`` and ``grpo sweep``, and the MLflow artifacts stay
plain JSON documents: a record becomes one with :meth:`Record.as_json` at that edge only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.worker import StartModelRef

__all__ = [
    "ChildResult",
    "DriftAlert",
    "Failure",
    "ParentRun",
    "PreparedData",
    "Record",
    "ReportFiles",
    "ResolvedModel",
    "StartModelRef",
    "TrainedRun",
]


class Record(BaseModel):
    """Base of the boundary values: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optional_in_json: ClassVar[tuple[str, ...]] = ()
    """Fields left out of :meth:`as_json` while they are None (the documents never had them)."""

    def as_json(self) -> dict[str, Any]:
        """The record as the JSON document the flows return and the CLI writes (NaN stays NaN)."""
        dropped = {name for name in self.optional_in_json if getattr(self, name) is None}
        return self.model_dump(exclude=dropped)


class ParentRun(Record):
    """The MLflow run a flow run logs to: the parent of its child runs."""

    run_id: str
    experiment_id: str
    tracking_uri: str


class PreparedData(Record):
    """A prepared (grouped, split) data folder as :func:`tasks.data.group_data` returns it."""

    data_dir: str = Field(description="The prepared folder: splits, groups.json, summary.json.")
    summary: dict[str, Any] = Field(description="Its summary.json: per-group counts, imbalance.")
    slugs: dict[str, str] = Field(description="Metric-key slug -> group name.")
    groups: tuple[str, ...] = Field(description="The group names, in the data's order.")

    def slug_of(self, group: str) -> str:
        """The slug of group ``group``."""
        return {name: slug for slug, name in self.slugs.items()}[group]


class TrainedRun(Record):
    """One method trained with one seed (:func:`tasks.stages.train_run`), not yet evaluated."""

    method: str
    seed: int
    run_id: str = Field(description="Its MLflow child run.")
    run_dir: str = Field(description="Its folder: checkpoints, metrics, step history.")
    steps: int | None = Field(description="Optimizer steps trained (None: not reported).")
    timing: dict[str, float] = Field(description="Seconds per step, pairs per second, peak memory.")


class ChildResult(TrainedRun):
    """A child of a flow run, trained, evaluated and closed (:func:`tasks.children.train_child`)."""

    optional_in_json = ("held_out_group", "sweep_point")

    metrics: dict[str, float] = Field(description="Its evaluation metrics, every split.")
    value: float | None = Field(description="Its champion metric (None: not evaluated).")
    held_out_group: str | None = Field(None, description="The group its training left out.")
    sweep_point: str | None = Field(None, description="The sweep setting it trained at.")

    def json_fields(self, names: Sequence[str]) -> dict[str, Any]:
        """The fields ``names`` of :meth:`as_json`, in that order (a flow result's ``runs``)."""
        document = self.as_json()
        return {name: document[name] for name in names}


class Failure(Record):
    """A child that failed: its MLflow run (None: the task crashed before it had one) and why, in
    one line. The child tasks and the flows make every failure this one record."""

    optional_in_json = ("held_out_group", "sweep_point")

    method: str
    seed: int
    run_id: str | None
    reason: str
    held_out_group: str | None = None
    sweep_point: str | None = None

    @classmethod
    def of(cls, error: BaseException, method: str, seed: int, run_id: str | None) -> Failure:
        """The failure that ``error`` makes of a child (its reason: the error in one line)."""
        from tasks.tracking import error_line

        return cls(method=method, seed=seed, run_id=run_id, reason=error_line(error))


class ReportFiles(Record):
    """The static report of a flow run: the HTML file here and where MLflow logged it."""

    html: str
    logged: str


class ResolvedModel(Record):
    """The model the evaluate flow evaluates, as a local checkpoint."""

    checkpoint: str = Field(description="The local checkpoint folder.")
    uri: str = Field(description="The models:/ URI, or the folder for a plain checkpoint.")
    label: str = Field(description="A short name for logs and run names.")
    source_run_id: str | None = Field(description="The run that trained it (None: unknown).")


class DriftAlert(Record):
    """What :func:`tasks.alerts.raise_drift_alert` decided for an evaluation run."""

    optional_in_json = ("summary",)

    status: Literal["no-baseline", "ok", "alert"]
    degraded: dict[str, float] = Field(description="Slug -> how much worse than at training.")
    summary: str | None = Field(None, description="The alert in one line (status 'alert').")


class Comparison(Record):
    """The methods compared per group on one split (:func:`tasks.comparison.compare_methods`)."""

    split: str
    rows: list[dict[str, Any]] = Field(
        description="Per method: mean over seeds of every summary and group metric (keys without "
        "their split), ``seeds``, and ``ci95`` (the half-widths of the 95% intervals)."
    )
    gains: list[dict[str, Any]] = Field(
        description="Per group-robust method: what it did for the group its plain counterpart "
        "serves worst (:func:`tasks.comparison.robust_gains`)."
    )
    best_worst_group_loss: str | None
    best_worst_group_reward_accuracy: str | None


class UnseenGroups(Record):
    """Leave-one-group-out: each method's headline metrics on a group seen and never seen."""

    split: str
    tables: dict[str, list[dict[str, Any]]] = Field(description="Metric -> rows (JSON records).")


class Champion(Record):
    """The model version the ``champion`` alias moved to."""

    version: int | str = Field(description="As the MLflow store gives it (an int from SQLite).")
    method: str
    seed: int
    run_id: str
    value: float | None = Field(description="Its champion metric.")


class Promotion(Record):
    """What :func:`tasks.registry.register_champion` registered and decided."""

    optional_in_json = ("uri",)

    model: str = Field(description="The registered model.")
    champion: Champion | None = Field(description="The new champion (None: the alias stays).")
    uri: str | None = Field(None, description="models:/<model>@champion, when it moved.")
    decisions: list[dict[str, Any]] = Field(
        description="Per method: its outcome, the reason and the decision's finite numbers."
    )
