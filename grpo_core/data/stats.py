"""Group statistics and metric-key slugs .

A slug is the group name lowercased, reduced to ``[a-z0-9_-]`` (other runs become ``-``), unique
within the run (repeats get ``-2``, ``-3``, ...): "India (Current national sample)" ->
"india-current-national-sample". Metric keys use slugs; the slug-to-name map is kept with the data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from grpo_core.data.schema import SPLITS

_NOT_SLUG = re.compile(r"[^a-z0-9_]+")


def slugify(name: str) -> str:
    """A ``[a-z0-9_-]`` form of a name (accents dropped); ``"group"`` if nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")
    return slug or "group"


def unique_slugs(names: Iterable[str]) -> dict[str, str]:
    """``{name: slug}`` with distinct slugs, in the order of ``names``."""
    slugs: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = slugify(name)
        slug, n = base, 1
        while slug in used:
            n += 1
            slug = f"{base}-{n}"
        used.add(slug)
        slugs[name] = slug
    return slugs


def split_counts(
    groups: Sequence[str], assignments: Iterable[tuple[str, str]]
) -> dict[str, dict[str, int]]:
    """Pairs per group and split from ``(group, split)`` pairs: ``{group: {split: count}}``."""
    counts = {group: dict.fromkeys(SPLITS, 0) for group in groups}
    for group, split in assignments:
        counts[group][split] += 1
    return counts


def imbalance_ratio(counts: Mapping[str, Mapping[str, int]], split: str = "train") -> float:
    """Largest over smallest group count in ``split`` (1.0 for balanced groups; inf if one is 0)."""
    values = [c[split] for c in counts.values()]
    if not values:
        return 1.0
    smallest = min(values)
    return float("inf") if smallest == 0 else max(values) / smallest
