"""The worst-group vs average trade-off: which settings are not dominated.

The trade-off is that of chi in w_g = (1 - chi) / K + chi * alpha_g (Ramesh et al. 2024,
arXiv:2405.20304; docs/ALGORITHM.md#the-objective).

A setting dominates another when it is at least as good on both the worst-group and the average
metric and strictly better on one; the Pareto front is the set of settings nothing dominates.
"""

from __future__ import annotations

from collections.abc import Sequence


def non_dominated(
    worst: Sequence[float], average: Sequence[float], lower_is_better: bool = True
) -> list[bool]:
    """For each setting ``i``, whether no other setting dominates it on (worst[i], average[i])."""
    if len(worst) != len(average):
        raise ValueError(f"{len(worst)} worst-group values for {len(average)} averages")
    sign = 1.0 if lower_is_better else -1.0
    points = [(sign * w, sign * a) for w, a in zip(worst, average, strict=True)]

    def dominates(p: tuple[float, float], q: tuple[float, float]) -> bool:
        return p[0] <= q[0] and p[1] <= q[1] and (p[0] < q[0] or p[1] < q[1])

    return [not any(dominates(p, q) for p in points) for q in points]
