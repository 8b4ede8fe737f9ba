"""95% intervals over seeds: the one interval helper of the project (numpy and scipy, torch-free).

A two-sided 95% Student-t interval of a mean over n seeds is mean +- t_{0.975, n-1} * s / sqrt(n),
with s the sample standard deviation; it needs n >= 2 (one seed says nothing about the noise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


def t_half_width(std, count):
    """Half-width of the 95% Student-t interval of a mean from its sample std and count.

    Works on numbers and on arrays (elementwise); NaN where ``count < 2``.
    """
    std, count = np.asarray(std, dtype=float), np.asarray(count, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(count >= 2, count - 1, np.nan)
        half = stats.t.ppf(0.5 + LEVEL / 2, dof) * std / np.sqrt(count)
    half = np.where(count >= 2, half, np.nan)
    return float(half) if half.ndim == 0 else half


def t_interval(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, half-width of its 95% Student-t interval, and the number of finite values used."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    std = x.std(ddof=1) if len(x) > 1 else math.nan
    return float(x.mean()), t_half_width(std, len(x)), len(x)


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the half-width of its 95% Welch interval (unequal variances);
    NaN half-width with fewer than two values on a side, 0 when both sides are constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    if a.var(ddof=1) + b.var(ddof=1) == 0:
        return diff, 0.0
    low, high = stats.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    return diff, float(high - low) / 2
