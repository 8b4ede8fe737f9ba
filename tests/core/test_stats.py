"""The one interval helper, on numbers worked out by hand (Student t quantiles from any table)."""

import math

import numpy as np
import pytest

from grpo_core import stats

T_975 = {1: 12.706204736174694, 2: 4.302652729749462}


def test_t_interval_uses_student_t_with_n_minus_1_degrees_of_freedom():
    mean, half, n = stats.t_interval([1.0, 2.0, 3.0])
    # s = 1, so the half-width is t_{0.975, 2} / sqrt(3)
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(T_975[2] / math.sqrt(3), rel=1e-9)
    mean, half, n = stats.t_interval([1.0, 3.0])
    assert (mean, n) == (2.0, 2) and half == pytest.approx(T_975[1], rel=1e-9), (
        "s = sqrt(2), se = 1"
    )


def test_t_interval_of_one_seed_has_no_width_and_ignores_nan():
    mean, half, n = stats.t_interval([0.5, float("nan"), None])
    assert (mean, n) == (0.5, 1) and math.isnan(half)
    assert stats.t_interval([])[2] == 0


def test_t_half_width_is_elementwise_and_nan_below_two_values():
    half = stats.t_half_width(np.array([1.0, math.sqrt(2), 1.0]), np.array([3, 2, 1]))
    assert half[0] == pytest.approx(T_975[2] / math.sqrt(3), rel=1e-9)
    assert half[1] == pytest.approx(T_975[1], rel=1e-9)
    assert math.isnan(half[2])
    assert stats.t_half_width(1.0, 3) == pytest.approx(T_975[2] / math.sqrt(3), rel=1e-9)


def test_welch_interval_on_unpaired_seeds():
    diff, half = stats.welch_interval([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    # variances 4 and 1 over 3 seeds each: se = sqrt(5/3), Welch dof = 50/17, t_{0.975, 50/17} = 3.2187586
    assert diff == 2.0
    assert half == pytest.approx(3.218758614532882 * math.sqrt(5 / 3), rel=1e-9)


def test_welch_interval_degenerate_cases():
    assert stats.welch_interval([1.0, 1.0], [0.0, 0.0]) == (1.0, 0.0), "no variance: no width"
    diff, half = stats.welch_interval([1.0], [0.0, 2.0])
    assert diff == 0.0 and math.isnan(half), "one seed on a side says nothing about its noise"
