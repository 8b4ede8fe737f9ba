"""The canonical schema of grouped preference pairs.

A pair is ``(prompt, chosen, rejected, group)`` plus a stable ``pair_id`` and a ``question_id``
(pairs that share a question within a group always land in the same split). The prepared parquet
files hold exactly :data:`PAIR_COLUMNS`, all strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_core.data.validation import Location

PAIR_COLUMNS = ("pair_id", "question_id", "group", "prompt", "chosen", "rejected")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PreferencePair:
    """One preference: for ``prompt``, ``group`` prefers ``chosen`` over ``rejected``.

    ``location`` is where the pair came from; it is used in messages only, never written out.
    """

    pair_id: str
    question_id: str
    group: str
    prompt: str
    chosen: str
    rejected: str
    location: Location

    def as_row(self) -> dict[str, str]:
        """The pair as a row of the prepared tables (:data:`PAIR_COLUMNS`)."""
        return {name: getattr(self, name) for name in PAIR_COLUMNS}
