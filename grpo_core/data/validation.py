"""Validation that loses nothing silently.

Every problem found in the input becomes a :class:`Rejection` that names the file, the place in it
and the field. Places are 1-based line numbers for jsonl and csv files, 0-based row indices for
parquet files and Hugging Face datasets, 0-based item indices for json arrays. A
:class:`RejectionLog` either raises the rejection at once as a :class:`DataValidationError` or keeps
it for the quarantine file, as the ``on_invalid`` policy says. Nothing is ever dropped unreported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

MALFORMED_LINE = "malformed_line"
MISSING_COLUMN = "missing_column"
WRONG_TYPE = "wrong_type"
EMPTY_TEXT = "empty_text"
MISSING_GROUP = "missing_group"
BAD_GROUP_LABEL = "bad_group_label"
CHOSEN_EQUALS_REJECTED = "chosen_equals_rejected"
DUPLICATE = "duplicate"
NEGATIVE_DISTRIBUTION = "negative_distribution"
DISTRIBUTION_NOT_NORMALIZED = "distribution_not_normalized"
LENGTH_MISMATCH = "length_mismatch"
TOO_FEW_OPTIONS = "too_few_options"
TOO_MANY_OPTIONS = "too_many_options"
NO_PREFERENCE = "no_preference"
GROUP_TOO_SMALL = "group_too_small"

REASONS = (
    MALFORMED_LINE,
    MISSING_COLUMN,
    WRONG_TYPE,
    EMPTY_TEXT,
    MISSING_GROUP,
    BAD_GROUP_LABEL,
    CHOSEN_EQUALS_REJECTED,
    DUPLICATE,
    NEGATIVE_DISTRIBUTION,
    DISTRIBUTION_NOT_NORMALIZED,
    LENGTH_MISMATCH,
    TOO_FEW_OPTIONS,
    TOO_MANY_OPTIONS,
    NO_PREFERENCE,
    GROUP_TOO_SMALL,
)
"""Every rejection reason, in the order summaries list them."""

DISTRIBUTION_REASONS = frozenset({NEGATIVE_DISTRIBUTION, DISTRIBUTION_NOT_NORMALIZED})
"""Why the paper drops survey rows (docs/ALGORITHM.md#language-model-experiments);
``on_invalid="auto"`` quarantines them."""

OnInvalid = Literal["auto", "error", "quarantine"]
LocationKind = Literal["line", "row", "item", "generated", "columns"]


class DataValidationError(ValueError):
    """Invalid input data. The message names the file, the line (or row) and the field."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        location: Location | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.location = location
        self.field = field


class RecordProblem(Exception):
    """The first problem of one record; adapters catch it per record and report it to the log."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Location:
    """Where a record came from: ``kind`` says how ``index`` counts (see the module docstring)."""

    file: str
    kind: LocationKind
    index: int

    def __str__(self) -> str:
        if self.kind == "line":
            return f"{self.file}, line {self.index}"
        if self.kind == "row":
            return f"{self.file}, row {self.index} (0-based)"
        if self.kind == "item":
            return f"{self.file}, item {self.index} (0-based) of the JSON array"
        if self.kind == "generated":
            return f"{self.file}, generated row {self.index} (0-based)"
        return f"{self.file}, column list"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, self.kind: self.index}


@dataclass(frozen=True)
class Rejection:
    """One input record that did not become a pair, and why."""

    reason: str
    location: Location
    field: str
    message: str
    record: Any = None

    def describe(self) -> str:
        return f"{self.location}, field '{self.field}': {self.message} [{self.reason}]"

    def as_json(self) -> dict[str, Any]:
        """One line of the quarantine file."""
        return {
            "reason": self.reason,
            **self.location.as_dict(),
            "location": str(self.location),
            "field": self.field,
            "message": self.message,
            "record": self.record,
        }


def quarantine_policy(on_invalid: OnInvalid, data_format: str) -> Callable[[str], bool]:
    """Which reasons are quarantined (the rest raise).

    ``"error"``: none; ``"quarantine"``: all; ``"auto"``: for survey data (``survey`` and
    ``synthetic``) only the distribution checks, which the paper drops rows for,
    and none for ``pairs``.
    """
    if on_invalid == "error":
        return lambda reason: False
    if on_invalid == "quarantine":
        return lambda reason: True
    if data_format in ("survey", "synthetic"):
        return lambda reason: reason in DISTRIBUTION_REASONS
    return lambda reason: False


@dataclass
class RejectionLog:
    """Collects rejections; raises at once for the reasons the policy does not quarantine."""

    quarantines: Callable[[str], bool]
    rejections: list[Rejection] = field(default_factory=list)

    def reject(
        self, reason: str, location: Location, field: str, message: str, record: Any = None
    ) -> None:
        rejection = Rejection(reason, location, field, message, record)
        if not self.quarantines(reason):
            raise DataValidationError(
                rejection.describe(), reason=reason, location=location, field=field
            )
        self.rejections.append(rejection)

    def counts(self) -> dict[str, int]:
        return count_reasons(self.rejections)


def count_reasons(rejections: Iterable[Rejection]) -> dict[str, int]:
    """Rejected records per reason, in :data:`REASONS` order, only reasons that occurred."""
    counter = Counter(r.reason for r in rejections)
    return {reason: counter[reason] for reason in REASONS if counter[reason]}
