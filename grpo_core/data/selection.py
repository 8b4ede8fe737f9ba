"""Group selection, renaming and merging.

Group labels are stripped of surrounding whitespace, then renamed through ``group_map`` (several
names mapped to one merge those groups), then kept if they are among the selected ``groups`` (all
groups when none are selected). Group ids follow the selection order, or the sorted names when
every group is kept (the generated survey keeps its own order). Rows of groups that are not
selected are counted, never silently lost.

Labels that differ only by letter case or surrounding spaces ("Japan", "japan", "Japan ") are
refused, both spellings named, unless ``merge_label_variants`` merges them under the first
spelling seen; a label holding a control character (NUL, tab, newline) is refused as a bad record.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from grpo_core.data.validation import (
    BAD_GROUP_LABEL,
    MISSING_COLUMN,
    MISSING_GROUP,
    WRONG_TYPE,
    DataValidationError,
    Location,
    RecordProblem,
)


class GroupSelector:
    """Resolves raw group labels to selected group names and counts what it sees."""

    def __init__(
        self,
        groups: Iterable[str] | None,
        group_map: Mapping[str, str],
        merge_label_variants: bool = False,
    ) -> None:
        self.selected = tuple(groups) if groups is not None else None
        self.group_map = dict(group_map)
        self.merge_label_variants = merge_label_variants
        self.seen: Counter[str] = Counter()
        self.outside = 0
        self.spellings: dict[str, tuple[str, Location | None]] = {}
        """``{folded label: (first raw spelling, where it was seen)}``."""

    def resolve(self, label: str, location: Location | None = None) -> str | None:
        """The group name for a raw label, or None when that group is not selected.

        Raises:
            DataValidationError: ``label`` differs from one seen before only by letter case or
                surrounding spaces, and ``merge_label_variants`` is off.
        """
        label = self._one_spelling(label, location)
        name = self.group_map.get(label.strip(), label.strip())
        self.seen[name] += 1
        if self.selected is not None and name not in self.selected:
            self.outside += 1
            return None
        return name

    def _one_spelling(self, label: str, location: Location | None) -> str:
        """``label``, or the first spelling seen of the same label up to case and spaces."""
        key = label.strip().casefold()
        first, where = self.spellings.setdefault(key, (label, location))
        if first == label or self.merge_label_variants:
            return first
        here = f"{location}: " if location is not None else ""
        raise DataValidationError(
            f"{here}group label {label!r} differs from {first!r}"
            + (f" ({where})" if where is not None else "")
            + " only by letter case or surrounding spaces: fix the labels in the source, or set "
            "data.merge_label_variants: true (grpo data prepare --merge-label-variants) to merge "
            f"them as {first.strip()!r}",
            location=location,
        )

    def order(self, present: Iterable[str], *, first_seen: bool = False) -> tuple[str, ...]:
        """Group names in group-id order: the selection order; else sorted names, or the order
        in which the groups were first seen (``first_seen``, used for the generated survey)."""
        present = set(present)
        if self.selected is not None:
            return tuple(name for name in self.selected if name in present)
        if first_seen:
            return tuple(name for name in self.seen if name in present)
        return tuple(sorted(present))

    def check_found(self, source: str, field: str) -> None:
        """Raise if a selected group never occurs in the source (a typo, usually)."""
        if self.selected is None:
            return
        missing = [name for name in self.selected if name not in self.seen]
        if not missing:
            return
        hints = []
        for name in missing:
            renamed = self.group_map.get(name)
            if renamed is not None:
                hints.append(f"'{name}' is renamed to '{renamed}' by group_map")
                continue
            close = difflib.get_close_matches(name, list(self.seen), n=3)
            hints.append(
                f"'{name}'" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
            )
        raise DataValidationError(
            f"{source}, field '{field}': selected group(s) not found: {'; '.join(hints)}. "
            f"The source has {len(self.seen)} groups",
            field=field,
        )


def check_label(label: str, field: str) -> None:
    """Raise :class:`RecordProblem` if ``label`` holds a control character (NUL, tab, newline...):
    it would pass into reports, metric tables and CSV files."""
    bad = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise RecordProblem(
            BAD_GROUP_LABEL,
            field,
            f"group label {label!r} holds a control character ({bad!r}); fix the label in the source",
        )


def resolve_group(
    values: Mapping[str, Any],
    column: str,
    default: str | None,
    selector: GroupSelector,
    location: Location | None = None,
) -> str | None:
    """The selected group of a record (None when its group is not selected).

    Args:
        values: the record.
        column: the group column.
        default: the group of records without a group column (None: such records are rejected).
        location: where the record is, named when its label collides with another spelling.
    Raises:
        RecordProblem: the group column or label is missing, empty, not a string, or holds a
            control character.
        DataValidationError: see :meth:`GroupSelector.resolve`.
    """
    if column not in values:
        if default is None:
            raise RecordProblem(MISSING_COLUMN, column, "group column missing")
        label: Any = default
    else:
        label = values[column]
    if label is None or (isinstance(label, str) and not label.strip()):
        raise RecordProblem(MISSING_GROUP, column, "group label is empty")
    if not isinstance(label, str):
        raise RecordProblem(
            WRONG_TYPE, column, f"group label must be a string, got {type(label).__name__}"
        )
    check_label(label, column)
    return selector.resolve(label, location)
