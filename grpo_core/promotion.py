"""Promotion on evidence: does a candidate's worst group beat the champion's beyond the noise?

Evidence of one model (or of one method over several seeds) is its evaluation's per-pair values of
one metric with each pair's group, one :class:`PairValues` per seed. The statistic is the worst
group's mean (docs/ALGORITHM.md#evaluation-metrics), averaged over seeds. Its uncertainty is a
bootstrap: resample the seeds with replacement, then within each seed the pairs of every group with
replacement (stratified, so every group keeps its size), and recompute; candidate and champion are
resampled independently (their evaluation data need not be the same pairs). Improvement is signed
so that positive is better.

The rule (:func:`decide`), in order: every candidate value finite; no group of the candidate worse
than the champion's by more than ``group_tolerance`` (point estimates, metric units); the lower end
of the 95% interval of the improvement above ``margin``. With no champion, a finite candidate with a
value for every group is promoted. numpy only: seed passed in, nothing printed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class PairValues:
    """One evaluation of one model: ``values[i]`` is pair i's metric, ``group_ids[i]`` its group
    index into ``slugs``."""

    slugs: tuple[str, ...]
    group_ids: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_ids", np.asarray(self.group_ids, dtype=np.int64))
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float64))
        if self.group_ids.shape != self.values.shape or self.values.ndim != 1:
            raise ValueError("group_ids and values must be 1-D and of the same length")

    def group_means(self) -> dict[str, float]:
        """Mean of every group that has pairs."""
        return {
            slug: float(self.values[self.group_ids == g].mean())
            for g, slug in enumerate(self.slugs)
            if (self.group_ids == g).any()
        }


@dataclass(frozen=True)
class PromotionRule:
    """``margin``: the improvement's interval must lie above it; ``group_tolerance``: the largest
    drop allowed in any group; ``resamples``: bootstrap draws."""

    margin: float = 0.0
    group_tolerance: float = 0.05
    resamples: int = 2000


@dataclass(frozen=True)
class Decision:
    """A promotion decision and the numbers behind it (improvement > 0 means the candidate is better)."""

    promote: bool
    reason: str
    candidate_value: float
    champion_value: float | None = None
    improvement: float | None = None
    interval: tuple[float, float] | None = None
    group_changes: dict[str, float] = field(default_factory=dict)


def worst_group_value(evidence: PairValues, higher_is_better: bool) -> float:
    """The worst group's mean (min for accuracies, max for losses) over the groups present."""
    means = list(evidence.group_means().values())
    return min(means) if higher_is_better else max(means)


def mean_over_seeds(evidence: Sequence[PairValues], higher_is_better: bool) -> float:
    return float(np.mean([worst_group_value(e, higher_is_better) for e in evidence]))


def group_means_over_seeds(evidence: Sequence[PairValues]) -> dict[str, float]:
    """Each group's mean, averaged over the seeds where the group has pairs."""
    per_seed = [e.group_means() for e in evidence]
    slugs = dict.fromkeys(s for means in per_seed for s in means)
    return {s: float(np.mean([m[s] for m in per_seed if s in m])) for s in slugs}


def bootstrap_worst_group(
    evidence: Sequence[PairValues], higher_is_better: bool, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``[resamples]`` draws of :func:`mean_over_seeds` under the seed-then-pair bootstrap."""
    draws = np.empty(resamples)
    members = [
        [e.values[e.group_ids == g] for g in range(len(e.slugs)) if (e.group_ids == g).any()]
        for e in evidence
    ]
    pick = min if higher_is_better else max
    for b in range(resamples):
        seeds = rng.integers(len(members), size=len(members))
        draws[b] = np.mean(
            [
                pick(float(v[rng.integers(len(v), size=len(v))].mean()) for v in members[s])
                for s in seeds
            ]
        )
    return draws


def decide(
    candidate: Sequence[PairValues],
    champion: Sequence[PairValues] | None,
    higher_is_better: bool,
    rule: PromotionRule,
    seed: int = 0,
) -> Decision:
    """Whether ``candidate`` (its seeds' evidence) should replace ``champion`` (None: no champion)."""
    if not candidate:
        return Decision(False, "no evaluation of the candidate", math.nan)
    values = np.concatenate([e.values for e in candidate])
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        return Decision(
            False, f"{bad} of its {values.size} evaluation values are not finite", math.nan
        )
    value = mean_over_seeds(candidate, higher_is_better)
    sign = 1.0 if higher_is_better else -1.0
    mine = group_means_over_seeds(candidate)
    if champion is None:
        missing = [s for s in candidate[0].slugs if s not in mine]
        if missing:
            return Decision(False, f"no evaluation pairs for group(s) {', '.join(missing)}", value)
        return Decision(True, "first champion: every value finite, every group evaluated", value)
    theirs = group_means_over_seeds(champion)
    changes = {s: sign * (mine[s] - theirs[s]) for s in theirs if s in mine}
    missing = [s for s in theirs if s not in mine]
    if missing:
        return Decision(
            False, f"group(s) {', '.join(missing)} not evaluated", value, group_changes=changes
        )
    champion_value = mean_over_seeds(champion, higher_is_better)
    rng = np.random.default_rng(seed)
    draws = sign * (
        bootstrap_worst_group(candidate, higher_is_better, rule.resamples, rng)
        - bootstrap_worst_group(champion, higher_is_better, rule.resamples, rng)
    )
    tail = (1 - LEVEL) / 2
    low, high = (float(q) for q in np.quantile(draws, [tail, 1 - tail]))
    improvement = sign * (value - champion_value)
    numbers = {
        "candidate_value": value,
        "champion_value": champion_value,
        "improvement": improvement,
        "interval": (low, high),
        "group_changes": changes,
    }
    worst_slug = min(changes, key=changes.get)
    if changes[worst_slug] < -rule.group_tolerance:
        return Decision(
            False,
            f"group {worst_slug} falls by {-changes[worst_slug]:.4g} "
            f"(more than the tolerance {rule.group_tolerance:g})",
            **numbers,
        )
    if low <= rule.margin:
        return Decision(
            False,
            f"the worst group's improvement {improvement:+.4g}, 95% interval [{low:.4g}, {high:.4g}], "
            f"does not exclude the margin {rule.margin:g}",
            **numbers,
        )
    return Decision(
        True,
        f"the worst group improves by {improvement:+.4g}, 95% interval [{low:.4g}, {high:.4g}] "
        f"above the margin {rule.margin:g}; no group falls by more than {rule.group_tolerance:g}",
        **numbers,
    )
