"""Group selection, renaming and merging.

Group labels are stripped of surrounding whitespace, then renamed through ``group_map`` (several
names mapped to one merge those groups), then kept if they are among the selected ``groups`` (all
groups when none are selected). Group ids follow the selection order, or the sorted names when
every group is kept (the generated survey keeps its own order). Rows of groups that are not
selected are counted, never silently lost.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from grpo_core.data.validation import (
    MISSING_COLUMN,
    MISSING_GROUP,
    WRONG_TYPE,
    DataValidationError,
    RecordProblem,
)


class GroupSelector:
    """Resolves raw group labels to selected group names and counts what it sees."""

    def __init__(self, groups: Iterable[str] | None, group_map: Mapping[str, str]) -> None:
        self.selected = tuple(groups) if groups is not None else None
        self.group_map = dict(group_map)
        self.seen: Counter[str] = Counter()
        self.outside = 0

    def resolve(self, label: str) -> str | None:
        """The group name for a raw label, or None when that group is not selected."""
        name = self.group_map.get(label.strip(), label.strip())
        self.seen[name] += 1
        if self.selected is not None and name not in self.selected:
            self.outside += 1
            return None
        return name

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


def resolve_group(
    values: Mapping[str, Any], column: str, default: str | None, selector: GroupSelector
) -> str | None:
    """The selected group of a record (None when its group is not selected).

    Args:
        values: the record.
        column: the group column.
        default: the group of records without a group column (None: such records are rejected).
    Raises:
        RecordProblem: the group column or label is missing, empty or not a string.
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
    return selector.resolve(label)
