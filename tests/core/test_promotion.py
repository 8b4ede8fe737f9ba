"""Promotion on evidence: hand-built evaluations, each rule of grpo_core.promotion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grpo_core.promotion import (
    PairValues,
    PromotionRule,
    bootstrap_worst_group,
    decide,
    group_means_over_seeds,
    mean_over_seeds,
    worst_group_value,
)

SLUGS = ("a", "b")


def accuracy(a: float, b: float, n: int = 200) -> PairValues:
    """n pairs per group with exactly the given fraction of ones."""
    values = [1.0] * round(a * n) + [0.0] * (n - round(a * n))
    values += [1.0] * round(b * n) + [0.0] * (n - round(b * n))
    return PairValues(SLUGS, [0] * n + [1] * n, values)


RULE = PromotionRule(margin=0.0, group_tolerance=0.05, resamples=500)


def test_worst_group_and_means_by_hand():
    # Given group a = [1, 0, 1] (mean 2/3) and group b = [0, 1] (mean 1/2)
    e = PairValues(SLUGS, [0, 1, 0, 0, 1], [1.0, 0.0, 0.0, 1.0, 1.0])
    assert e.group_means() == {"a": pytest.approx(2 / 3), "b": 0.5}
    assert worst_group_value(e, higher_is_better=True) == 0.5
    assert worst_group_value(e, higher_is_better=False) == pytest.approx(2 / 3)
    # Over two seeds: worst groups 0.5 and 0.25 average to 0.375; group means average per group
    other = PairValues(SLUGS, [0, 1, 1, 1, 1], [1.0, 0.0, 1.0, 0.0, 0.0])
    assert mean_over_seeds([e, other], True) == 0.375
    assert group_means_over_seeds([e, other]) == {"a": pytest.approx(5 / 6), "b": 0.375}


def test_a_constant_evaluation_has_a_bootstrap_of_one_value():
    e = PairValues(SLUGS, [0, 0, 1, 1], [0.5, 0.5, 0.25, 0.25])
    draws = bootstrap_worst_group([e, e], False, 50, np.random.default_rng(0))
    assert np.all(draws == 0.5)


def test_a_clearly_better_worst_group_is_promoted():
    # Given a champion whose worst group b is at 0.50 and a candidate at 0.70, a unchanged
    decision = decide([accuracy(0.8, 0.7)], [accuracy(0.8, 0.5)], True, RULE)
    # Then it is promoted, with the improvement and an interval above the margin
    assert decision.promote, decision.reason
    assert decision.improvement == pytest.approx(0.2)
    assert 0.0 < decision.interval[0] < 0.2 < decision.interval[1]
    assert decision.group_changes == {"a": pytest.approx(0.0), "b": pytest.approx(0.2)}


def test_a_gain_inside_the_noise_is_rejected():
    # Given 20 pairs a group and a one-pair gain in the worst group
    decision = decide([accuracy(0.8, 0.55, n=20)], [accuracy(0.8, 0.5, n=20)], True, RULE)
    assert not decision.promote
    assert decision.interval[0] <= 0.0 < decision.interval[1]
    assert "does not exclude the margin" in decision.reason


def test_the_margin_is_a_bar_the_interval_must_clear():
    rule = PromotionRule(margin=0.3, group_tolerance=0.05, resamples=500)
    decision = decide([accuracy(0.8, 0.7)], [accuracy(0.8, 0.5)], True, rule)
    assert not decision.promote and "margin 0.3" in decision.reason


def test_a_group_that_falls_past_the_tolerance_blocks_promotion():
    # Given a candidate whose worst group rises 0.2 but whose group a falls 0.1
    decision = decide([accuracy(0.7, 0.7)], [accuracy(0.8, 0.5)], True, RULE)
    assert not decision.promote
    assert decision.reason.startswith("group a falls by 0.1 ")


def test_losses_improve_downwards():
    # Given per-pair losses: the champion's worst group b at 2.0, the candidate's at 1.0
    champion = PairValues(SLUGS, [0] * 50 + [1] * 50, [1.0] * 50 + [2.0] * 50)
    candidate = PairValues(SLUGS, [0] * 50 + [1] * 50, [1.0] * 50 + [1.0] * 50)
    decision = decide([candidate], [champion], False, RULE)
    assert decision.promote and decision.improvement == 1.0
    assert decision.interval == (1.0, 1.0)


def test_anything_not_finite_is_never_promoted():
    values = [1.0, math.nan, 0.0, 1.0]
    broken = PairValues(SLUGS, [0, 0, 1, 1], values)
    for champion in (None, [accuracy(0.5, 0.5)]):
        decision = decide([broken], champion, True, RULE)
        assert not decision.promote
        assert decision.reason == "1 of its 4 evaluation values are not finite"


def test_the_first_finite_candidate_with_every_group_becomes_champion():
    assert decide([accuracy(0.6, 0.2)], None, True, RULE).promote
    # but not one that has no pairs of a group
    partial = PairValues(SLUGS, [0, 0], [1.0, 0.0])
    decision = decide([partial], None, True, RULE)
    assert not decision.promote and "group(s) b" in decision.reason


def test_several_seeds_widen_the_interval():
    # Given a method whose seeds disagree (worst group 0.5 or 0.9) against a steady champion at 0.5
    seeds = [accuracy(0.9, 0.5), accuracy(0.9, 0.9)]
    one = decide([accuracy(0.9, 0.7)], [accuracy(0.9, 0.5)], True, RULE)
    two = decide(seeds, [accuracy(0.9, 0.5)], True, RULE)
    # Then the point improvement is the same (0.2) but the seed spread widens the interval
    assert one.improvement == pytest.approx(two.improvement)
    assert two.interval[1] - two.interval[0] > one.interval[1] - one.interval[0]


def test_the_decision_is_reproducible_for_a_seed():
    args = ([accuracy(0.8, 0.6, n=30)], [accuracy(0.8, 0.5, n=30)], True, RULE)
    assert decide(*args, seed=3) == decide(*args, seed=3)
