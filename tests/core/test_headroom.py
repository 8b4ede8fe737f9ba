"""The headroom of a group-blind policy: hand-computed cases, and brute force over every policy."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from grpo_core.data.headroom import (
    ConflictRate,
    group_blind_headroom,
    prepared_headroom,
    split_headroom,
)

TOL = 1e-9


def headroom(rows, **options):
    """``rows``: (prompt, chosen, rejected, group) tuples."""
    prompts, chosen, rejected, groups = (list(column) for column in zip(*rows, strict=True))
    return group_blind_headroom(prompts, chosen, rejected, groups, **options)


def accuracies(orderings, rows, groups):
    """Exact group accuracies of a policy given as ``{prompt: responses best first}``."""
    n = Counter(g for *_, g in rows)
    satisfied = Counter()
    for prompt, chosen, rejected, group in rows:
        order = list(orderings[prompt])
        satisfied[group] += order.index(chosen) < order.index(rejected)
    return tuple(Fraction(satisfied[g], n[g]) for g in groups)


def responses_of(rows):
    responses = {}
    for prompt, chosen, rejected, _ in rows:
        responses.setdefault(prompt, set()).update((chosen, rejected))
    return {prompt: sorted(found) for prompt, found in responses.items()}


def every_policy(rows, groups):
    """Group accuracies of every deterministic group-blind policy (one ordering per prompt)."""
    responses = responses_of(rows)
    prompts = sorted(responses)
    for choice in itertools.product(*(itertools.permutations(responses[p]) for p in prompts)):
        yield accuracies(dict(zip(prompts, choice, strict=True)), rows, groups)


def lp_over_whole_orderings(rows, groups):
    """The worst-group linear programme written plainly: a distribution over every ordering of
    every prompt's responses (no components, no Pareto filter)."""
    responses = responses_of(rows)
    n = Counter(g for *_, g in rows)
    columns, block = [], []
    for b, (prompt, found) in enumerate(sorted(responses.items())):
        for order in itertools.permutations(found):
            on_prompt = [r for r in rows if r[0] == prompt]
            gains = Counter(g for _, c, r, g in on_prompt if order.index(c) < order.index(r))
            columns.append([gains[g] / n[g] for g in groups])
            block.append(b)
    v = np.array(columns)
    a_ub = np.hstack([-v.T, np.ones((len(groups), 1))])
    a_eq = np.zeros((len(responses), len(v) + 1))
    a_eq[block, np.arange(len(v))] = 1.0
    result = optimize.linprog(
        np.r_[np.zeros(len(v)), -1.0],
        A_ub=a_ub,
        b_ub=np.zeros(len(groups)),
        A_eq=a_eq,
        b_eq=np.ones(len(responses)),
        bounds=[(0, None)] * len(v) + [(None, None)],
        method="highs",
    )
    return -result.fun


def random_rows(seed, groups=("A", "B", "C"), prompts=4, responses=("x", "y", "z")):
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        for _ in range(rng.randint(1, 4)):
            chosen, rejected = rng.sample(responses, 2)
            rows.append((f"p{p}", chosen, rejected, rng.choice(groups)))
    return rows


def frontier_height(frontier, a):
    """The frontier's second coordinate at first coordinate ``a`` (None past its end)."""
    if a > frontier[-1][0] + TOL:
        return None
    if a <= frontier[0][0]:
        return frontier[0][1]
    for (a0, b0), (a1, b1) in itertools.pairwise(frontier):
        if a0 - TOL <= a <= a1 + TOL:
            return b0 if a1 == a0 else b0 + (b1 - b0) * (a - a0) / (a1 - a0)
    return frontier[-1][1]


# --- hand-computed cases ---------------------------------------------------------------------


def test_prompts_of_one_group_each_leave_no_gap():
    # given: two groups that disagree, but never on the same prompt
    rows = [("p", "x", "y", "A"), ("q", "y", "x", "B")]
    # when
    result = headroom(rows)
    # then
    assert result.shared_prompts == 0 and result.conflicting_prompts == 0
    assert result.worst_group_upper == pytest.approx(1.0)
    assert result.worst_group_lower == 1.0 and result.average_lower == 1.0
    assert result.reason == (
        "no prompt is shared by two groups: a policy can order each prompt for its own group"
    )
    assert result.conflict_rates == {("A", "B"): ConflictRate(shared=0, conflicting=0)}
    assert result.conflict_rates["A", "B"].rate == 0.0


def test_shared_prompts_that_agree_leave_no_gap():
    rows = [("p", "x", "y", "A"), ("p", "y", "z", "B"), ("p", "x", "z", "B")]
    result = headroom(rows)
    assert result.shared_prompts == 1 and result.conflicting_prompts == 0
    assert result.worst_group_upper == pytest.approx(1.0) and result.worst_group_lower == 1.0
    assert "fit one ordering" in result.reason
    assert result.orderings == {"p": ("x", "y", "z")}


def test_two_groups_opposed_on_one_prompt():
    # given: A prefers x, B prefers y, one pair each on the same prompt
    rows = [("p", "x", "y", "A"), ("p", "y", "x", "B")]
    # when
    result = headroom(rows)
    # then: half of each at best in the LP (x>y half the time), one group left out when rounded
    assert result.worst_group_upper == pytest.approx(0.5)
    assert result.group_accuracy_upper == pytest.approx({"A": 0.5, "B": 0.5})
    assert result.worst_group_lower == 0.0, "a deterministic policy satisfies one group only"
    assert result.average_upper == pytest.approx(result.average_lower, abs=TOL)
    assert result.average_lower == pytest.approx(0.5)
    assert result.frontier == ((0.0, 1.0), (1.0, 0.0))
    assert result.conflict_rates == {("A", "B"): ConflictRate(shared=1, conflicting=1)}
    assert result.conflict_rates["A", "B"].rate == 1.0
    assert result.reason.startswith("1 of 1 prompts hold pairs that no single ordering satisfies")


def test_group_sizes_weigh_the_opposed_prompt():
    # given: A has 2 pairs (x>y on p and on q), B has 1 (y>x on p)
    rows = [("p", "x", "y", "A"), ("q", "x", "y", "A"), ("p", "y", "x", "B")]
    # when
    result = headroom(rows)
    # then: with x>y on p with probability s, acc_A = 1/2 + s/2 and acc_B = 1 - s: equal at
    # s = 1/3, both 2/3; deterministic: y>x gives (1/2, 1); average best at y>x: 3/4
    assert result.worst_group_upper == pytest.approx(2 / 3)
    assert result.worst_group_lower == pytest.approx(1 / 2)
    assert result.group_accuracy_lower == pytest.approx({"A": 0.5, "B": 1.0})
    assert result.average_upper == pytest.approx(result.average_lower, abs=TOL)
    assert result.average_lower == pytest.approx(3 / 4)
    assert result.frontier == ((0.5, 1.0), (1.0, 0.0))
    assert result.orderings == {"p": ("y", "x"), "q": ("x", "y")}
    assert result.n_pairs == {"A": 2, "B": 1}


def test_a_three_cycle_within_one_group():
    # given: one group's raters disagree: x > y, y > z, z > x on the same prompt
    rows = [("p", "x", "y", "A"), ("p", "y", "z", "A"), ("p", "z", "x", "A")]
    # when
    result = headroom(rows)
    # then: every ordering breaks exactly one of the three
    assert result.worst_group_upper == pytest.approx(2 / 3)
    assert result.worst_group_lower == pytest.approx(2 / 3)
    assert result.average_upper == pytest.approx(result.average_lower, abs=TOL)
    assert result.average_lower == pytest.approx(2 / 3)
    assert result.cyclic_within_group == {"A": 1}
    assert result.conflicting_prompts == 1 and result.shared_prompts == 0
    assert "1 where a group's own pairs form a cycle" in result.reason
    assert result.frontier == (), "the frontier is for two groups only"


def test_a_groups_own_cycle_counts_as_a_conflict_with_every_group_sharing_the_prompt():
    rows = [
        ("p", "x", "y", "A"),
        ("p", "y", "z", "A"),
        ("p", "z", "x", "A"),
        ("p", "x", "z", "B"),
        ("q", "x", "y", "B"),
    ]
    result = headroom(rows)
    assert result.conflict_rates == {("A", "B"): ConflictRate(shared=1, conflicting=1)}
    assert result.cyclic_within_group == {"A": 1, "B": 0}
    assert "0 where groups disagree, 1 where a group's own pairs form a cycle" in result.reason


def test_a_large_cycle_is_relaxed_and_the_bounds_stay_sound():
    # given: one group, a cycle x0 > x1 > ... > x7 > x0 (8 responses)
    names = [f"x{i}" for i in range(8)]
    rows = [("p", names[i], names[(i + 1) % 8], "A") for i in range(8)]
    # when: enumerated (8! orderings) or relaxed (each pair of responses oriented on its own)
    exact = headroom(rows, max_exact_responses=8)
    relaxed = headroom(rows, max_exact_responses=7)
    # then: every ordering breaks one edge of the cycle; the tournament breaks none
    assert exact.exact and exact.worst_group_upper == pytest.approx(7 / 8)
    assert exact.average_upper == pytest.approx(7 / 8)
    assert exact.average_lower == pytest.approx(7 / 8)
    assert not relaxed.exact and relaxed.relaxed_prompts == 1
    assert relaxed.worst_group_upper == pytest.approx(1.0), "the relaxation bounds from above"
    assert relaxed.average_upper == pytest.approx(1.0)
    assert relaxed.worst_group_lower == pytest.approx(7 / 8), "the rounded ordering is real"
    assert accuracies(relaxed.orderings, rows, ["A"]) == (Fraction(7, 8),)


def test_pairs_from_a_prepared_split():
    # given: a split as the prepared parquet files hold it, with a group of no pair in it
    frame = pd.DataFrame(
        {
            "pair_id": ["1", "2", "3"],
            "question_id": ["q1", "q1", "q2"],
            "group": ["B", "A", "A"],
            "prompt": ["p", "p", "q"],
            "chosen": ["y", "x", "x"],
            "rejected": ["x", "y", "y"],
            "group_id": [1, 0, 0],
        }
    )
    # when
    result = split_headroom(frame, groups=("A", "B", "C"))
    # then
    assert result.groups == ("A", "B"), "groups keep the given order; a group without pairs is out"
    assert result.worst_group_upper == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"groups \['B'\] are not in the group order"):
        split_headroom(frame, groups=("A",))
    with pytest.raises(ValueError, match="no column"):
        split_headroom(frame.drop(columns="chosen"))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="no pairs"):
        group_blind_headroom([], [], [], [])
    with pytest.raises(ValueError, match="differ in length"):
        group_blind_headroom(["p"], ["x"], ["y"], [])
    with pytest.raises(ValueError, match="2 or more"):
        headroom([("p", "x", "y", "A")], max_exact_responses=1)


def test_the_summary_is_plain_json():
    import json

    result = headroom([("p", "x", "y", "A"), ("p", "y", "x", "B")])
    document = json.loads(json.dumps(result.summary()))
    assert document["worst_group"] == {"lower": 0.0, "upper": pytest.approx(0.5)}
    assert document["conflict_rates"] == [
        {"groups": ["A", "B"], "shared": 1, "conflicting": 1, "rate": 1.0}
    ]
    assert "orderings" not in document


# --- brute force over every deterministic policy -----------------------------------------------


def check_against_brute_force(rows, result):
    groups = result.groups
    outcomes = list(every_policy(rows, groups))
    best_worst = max(min(o) for o in outcomes)
    best_average = max(sum(o) / len(o) for o in outcomes)
    assert result.worst_group_lower <= best_worst + TOL, "the lower bound is above the best policy"
    assert best_worst <= result.worst_group_upper + TOL, "a policy beats the upper bound"
    # the lower bound is reached by the returned orderings, each a whole ordering of its prompt
    responses = responses_of(rows)
    assert {p: sorted(o) for p, o in result.orderings.items()} == responses
    reached = accuracies(result.orderings, rows, groups)
    assert float(min(reached)) == pytest.approx(result.worst_group_lower, abs=TOL)
    assert [float(a) for a in reached] == pytest.approx(
        [result.group_accuracy_lower[g] for g in groups], abs=TOL
    )
    return outcomes, best_worst, best_average


@pytest.mark.parametrize("seed", range(40))
def test_three_groups_against_brute_force(seed):
    rows = random_rows(seed)
    result = headroom(rows)
    _, _, best_average = check_against_brute_force(rows, result)
    assert result.exact
    assert result.average_upper == pytest.approx(result.average_lower, abs=TOL), "integral"
    assert result.average_lower == pytest.approx(float(best_average), abs=TOL)
    assert result.worst_group_upper == pytest.approx(lp_over_whole_orderings(rows, result.groups))


@pytest.mark.parametrize("seed", range(40))
def test_two_groups_frontier_against_brute_force(seed):
    rows = random_rows(1000 + seed, groups=("A", "B"))
    result = headroom(rows)
    outcomes, _, _ = check_against_brute_force(rows, result)
    if len(result.groups) < 2:
        return
    frontier = result.frontier
    assert all(a0 < a1 and b0 > b1 for (a0, b0), (a1, b1) in itertools.pairwise(frontier))
    # every policy lies on or under the frontier ...
    for a, b in outcomes:
        height = frontier_height(frontier, float(a))
        assert height is not None and float(b) <= height + TOL, f"policy {(a, b)} over {frontier}"
    # ... and every vertex is a policy
    reached = {(float(a), float(b)) for a, b in outcomes}
    for vertex in frontier:
        assert any(np.allclose(vertex, point) for point in reached), f"{vertex} is no policy"
    # the worst-group value is the frontier's best min(a, b)
    best_on_frontier = max(
        max(min(a0, b0), min(a1, b1), _crossing(a0, b0, a1, b1))
        for (a0, b0), (a1, b1) in itertools.pairwise(frontier + frontier[-1:])
    )
    assert result.worst_group_upper == pytest.approx(best_on_frontier)


def _crossing(a0, b0, a1, b1):
    """Where the segment crosses a == b, or -1."""
    denominator = (a1 - a0) - (b1 - b0)
    if denominator == 0:
        return -1.0
    s = (b0 - a0) / denominator
    return a0 + s * (a1 - a0) if 0 <= s <= 1 else -1.0


@pytest.mark.parametrize("seed", range(20))
def test_relaxed_components_keep_sound_bounds(seed):
    # given: components of 3 responses relaxed (each pair of responses oriented on its own)
    rows = random_rows(2000 + seed, prompts=3)
    result = headroom(rows, max_exact_responses=2)
    # then
    _, _, best_average = check_against_brute_force(rows, result)
    assert result.average_lower <= best_average + TOL <= result.average_upper + 2 * TOL
    exact = headroom(rows)
    assert exact.worst_group_upper <= result.worst_group_upper + TOL
    assert result.exact == (result.relaxed_prompts == 0)


def test_some_random_cases_are_relaxed():
    relaxed = [headroom(random_rows(2000 + s, prompts=3), max_exact_responses=2) for s in range(20)]
    assert sum(not r.exact for r in relaxed) >= 3, "the relaxation is hardly exercised"


def survey_config(prompt_template):
    """The demo's built-in survey (two groups, two options, the minority reversing the majority on
    three topics in four) with ``prompt_template``."""
    from tasks.run_config import demo_config

    data = demo_config().data
    return data.model_copy(
        update={"survey": data.survey.model_copy(update={"prompt_template": prompt_template})}
    )


def test_a_survey_where_groups_share_prompts():
    # given: the built-in survey with a prompt that does not name the group
    from grpo_core.data.prepare import build_dataset

    data = build_dataset(survey_config("Opinion on: {question}\nSelect the best:"))
    frame = pd.DataFrame([pair.as_row() for pair in data.splits["test"]])
    # when
    result = split_headroom(frame, groups=data.groups)
    # then
    assert 0 < result.conflicting_prompts <= result.shared_prompts
    assert result.worst_group_lower <= result.worst_group_upper < 1.0
    assert result.average_upper == pytest.approx(result.average_lower, abs=TOL)
    rows = list(frame[["prompt", "chosen", "rejected", "group"]].itertuples(index=False))
    reached = accuracies(result.orderings, rows, result.groups)
    assert float(min(reached)) == pytest.approx(result.worst_group_lower)


def test_every_split_of_a_prepared_folder(tmp_path):
    # given: the survey prepared on disk twice, with and without the group in the prompt
    from grpo_core.data.prepare import prepare_dataset

    blind = prepare_dataset(survey_config("Opinion on: {question}"), tmp_path / "blind")
    named = prepare_dataset(survey_config("{group} on: {question}"), tmp_path / "named")
    # when
    headroom_blind = prepared_headroom(blind.out_dir)
    headroom_named = prepared_headroom(named.out_dir)
    # then
    assert set(headroom_blind) == {"train", "validation", "test"}
    for split, result in headroom_blind.items():
        assert result.groups == blind.groups
        assert result.n_pairs == {g: blind.counts[g][split] for g in blind.groups}
        assert result.worst_group_upper < 1.0, f"{split}: the groups disagree on shared prompts"
    for result in headroom_named.values():
        assert result.shared_prompts == 0 and result.worst_group_lower == 1.0
        assert result.reason.startswith("no prompt is shared by two groups")
