"""The Pareto front of (worst-group, average) points, by hand."""

from __future__ import annotations

import pytest

from grpo_core.pareto import non_dominated


def test_the_front_of_hand_made_points():
    # (worst, average), lower is better: (3, 1) and (1, 3) trade off; (2, 2) lies between them;
    # (3, 3) is dominated by (2, 2); (1, 4) by (1, 3)
    worst = [3.0, 1.0, 2.0, 3.0, 1.0]
    average = [1.0, 3.0, 2.0, 3.0, 4.0]
    assert non_dominated(worst, average) == [True, True, True, False, False]


def test_higher_is_better_flips_the_order():
    assert non_dominated([0.6, 0.7, 0.5], [0.8, 0.7, 0.6], lower_is_better=False) == [
        True,
        True,
        False,
    ]


def test_equal_points_do_not_dominate_each_other():
    assert non_dominated([1.0, 1.0], [2.0, 2.0]) == [True, True]


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 worst-group values for 1 averages"):
        non_dominated([1.0, 2.0], [1.0])
