"""The built-in opinion survey: deterministic, imbalanced, groups that disagree."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from grpo_core.data import DataConfig, build_dataset, generate_opinion_survey
from grpo_core.data.config import OpinionGeneratorConfig
from grpo_core.data.survey import option_ranking


def test_the_same_seed_gives_the_same_survey_and_another_seed_another():
    config = OpinionGeneratorConfig()
    first = generate_opinion_survey(config, seed=0)
    assert first == generate_opinion_survey(config, seed=0), "expected a deterministic survey"
    other = generate_opinion_survey(config, seed=1)
    assert [r.distribution for r in first.rows] != [r.distribution for r in other.rows]


def test_default_survey_has_a_majority_a_middle_and_a_minority_group():
    survey = generate_opinion_survey(OpinionGeneratorConfig(), seed=0)
    assert survey.groups == ("Northland", "Southland", "Eastland")
    assert Counter(r.group for r in survey.rows) == {
        "Northland": 300,
        "Southland": 150,
        "Eastland": 45,
    }
    answered = {g: {r.question_id for r in survey.rows if r.group == g} for g in survey.groups}
    assert answered["Eastland"] <= answered["Southland"] <= answered["Northland"], (
        "a smaller group's questions should also be answered by the larger groups"
    )
    assert all(
        abs(sum(r.distribution) - 1) < 1e-9 and min(r.distribution) >= 0 for r in survey.rows
    )


def test_each_non_first_group_reverses_the_majority_exactly_on_its_disagreement_topics():
    # Given the default survey (disagreement 0.5: 8 of 16 topics per non-first group, disjoint)
    survey = generate_opinion_survey(OpinionGeneratorConfig(), seed=0)
    southland, eastland = (set(survey.reversed_topics[g]) for g in ("Southland", "Eastland"))
    assert len(southland) == len(eastland) == 8 and not southland & eastland
    # Then each group's most probable option is the majority's best, or its worst on reversed topics
    for row in survey.rows:
        question = survey.questions[row.question_id]
        expected = question.majority_ranking
        if question.topic in survey.reversed_topics[row.group]:
            expected = expected[::-1]
        assert tuple(option_ranking(row.distribution)) == expected, f"{row.group}: {question.text}"


def test_disagreement_zero_makes_all_groups_agree_and_one_makes_them_disagree_everywhere():
    for disagreement, expected in ((0.0, 0.0), (1.0, 1.0)):
        survey = generate_opinion_survey(OpinionGeneratorConfig(disagreement=disagreement), seed=0)
        minority = [r for r in survey.rows if r.group == "Eastland"]
        differs = np.mean(
            [
                np.argmax(r.distribution) != survey.questions[r.question_id].majority_ranking[0]
                for r in minority
            ]
        )
        assert differs == expected, (
            f"disagreement={disagreement}: expected {expected} of the minority to differ"
        )


def test_a_group_blind_answer_serves_the_majority_and_underserves_the_minority():
    # Given the prepared default data, and a group-blind policy: per question, the letter chosen
    # by most groups (ties to the first group), the best any policy ignoring the group can do
    data = build_dataset(DataConfig())
    pairs = [p for split in data.splits.values() for p in split]
    votes: dict[str, Counter] = defaultdict(Counter)
    for pair in pairs:
        votes[pair.question_id][pair.chosen] += 1
    # When it answers every pair of each group
    accuracy = {
        group: np.mean(
            [
                votes[p.question_id].most_common(1)[0][0] == p.chosen
                for p in pairs
                if p.group == group
            ]
        )
        for group in data.groups
    }
    # Then the majority is served almost perfectly, the minority about half the time
    assert accuracy["Northland"] > 0.95, f"expected the majority served, got {accuracy}"
    assert accuracy["Eastland"] < 0.6, f"expected the minority underserved, got {accuracy}"
    assert min(accuracy, key=accuracy.get) == "Eastland", (
        f"expected the minority worst, got {accuracy}"
    )


def test_texts_are_short_with_a_small_vocabulary_and_prompts_name_the_group():
    data = build_dataset(DataConfig())
    pairs = [p for split in data.splits.values() for p in split]
    survey = generate_opinion_survey(OpinionGeneratorConfig(), seed=0)
    questions = {r.question for r in survey.rows}
    assert all(5 <= len(q.split()) <= 15 for q in questions), "questions should have 5-15 words"
    assert all(1 <= len(o.split()) <= 3 for r in survey.rows for o in r.options)
    assert all(2 <= len(r.options) <= 4 for r in survey.rows)
    assert all(p.prompt.startswith(f"Opinion of people in {p.group} on: ") for p in pairs)
    assert all(
        re.fullmatch(r"[A-D]", p.chosen) and re.fullmatch(r"[A-D]", p.rejected) for p in pairs
    )
    vocabulary = {w for p in pairs for w in re.findall(r"[A-Za-z]+|[^\sA-Za-z]", p.prompt)}
    assert len(vocabulary) < 150, f"expected a small vocabulary, got {len(vocabulary)} words"
