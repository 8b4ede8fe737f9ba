"""Seeded train/validation/test splits per group (80/10/10 in Ramesh et al. 2024, arXiv:2405.20304;
docs/ALGORITHM.md#language-model-experiments).

The unit of a split is a question: every pair of a question (within a group, or with
``by_question`` across all groups) lands in the same split, so no prompt leaks from training
into evaluation. Units are sorted, then shuffled by a generator seeded with (seed, group), so the
splits depend neither on the input order nor on which other groups are present. Split sizes
follow the fractions by the largest-remainder rule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from grpo_core.data.ids import stable_rng
from grpo_core.data.schema import SPLITS, PreferencePair


def allocate(total: int, fractions: Sequence[float]) -> list[int]:
    """Split ``total`` units into counts proportional to ``fractions`` that sum to ``total``.

    Largest-remainder rule: floors first, then one more unit to the largest remainders (ties to the
    earlier split). E.g. ``allocate(9, (0.8, 0.1, 0.1)) == [7, 1, 1]``.
    """
    exact = [total * f for f in fractions]
    counts = [math.floor(x + 1e-9) for x in exact]
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(
    pairs: Sequence[PreferencePair],
    fractions: Sequence[float],
    *,
    seed: int,
    by_question: bool = False,
) -> list[str]:
    """The split name (``"train"``, ``"validation"`` or ``"test"``) of each pair.

    Args:
        pairs: the pairs, any order.
        fractions: train, validation and test fractions summing to 1.
        seed: the split seed.
        by_question: split question ids once across all groups (each question in one split)
            instead of each group on its own.
    Returns:
        One split name per pair, aligned with ``pairs``.
    """
    units: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        units["" if by_question else pair.group].add(pair.question_id)
    split_of: dict[tuple[str, str], str] = {}
    for scope, question_ids in units.items():
        ordered = sorted(question_ids)
        rng = stable_rng(seed, "split", "by_question" if by_question else "group", scope)
        shuffled = [ordered[i] for i in rng.permutation(len(ordered))]
        start = 0
        for name, count in zip(SPLITS, allocate(len(shuffled), fractions), strict=True):
            for question_id in shuffled[start : start + count]:
                split_of[(scope, question_id)] = name
            start += count
    return [split_of[("" if by_question else p.group, p.question_id)] for p in pairs]
