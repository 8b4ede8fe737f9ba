"""``data.min_groups_per_question``: only the questions that several of the groups answered."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grpo_core.data.config import DataConfig
from grpo_core.data.prepare import build_dataset, prepare_dataset
from grpo_core.data.validation import DataValidationError

ANSWERS = {  # question id -> the groups that answered it
    "q1": ("A", "B", "C"),
    "q2": ("A", "B"),
    "q3": ("A",),
    "q4": ("C",),
}


def _survey(tmp_path, write_jsonl):
    rows = [
        {
            "question_id": question,
            "question": f"Question {question}?",
            "options": ["yes", "no"],
            "country": group,
            "distribution": [0.7, 0.3],
        }
        for question, groups in ANSWERS.items()
        for group in groups
    ]
    return str(write_jsonl(tmp_path / "survey.jsonl", rows))


def _questions(data) -> dict[str, list[str]]:
    return {
        group: sorted(p.question_id for p in data.splits["train"] if p.group == group)
        for group in data.groups
    }


def test_default_keeps_every_question(tmp_path, write_jsonl):
    data = build_dataset(
        DataConfig(format="survey", path=_survey(tmp_path, write_jsonl), split=(1, 0, 0))
    )
    assert _questions(data) == {"A": ["q1", "q2", "q3"], "B": ["q1", "q2"], "C": ["q1", "q4"]}
    assert data.pairs_below_min_groups == 0


@pytest.mark.parametrize(
    ("min_groups", "kept", "dropped"),
    [
        (2, {"A": ["q1", "q2"], "B": ["q1", "q2"], "C": ["q1"]}, 2),  # q3 (A) and q4 (C)
        (3, {"A": ["q1"], "B": ["q1"], "C": ["q1"]}, 4),  # also q2 of A and B
    ],
)
def test_questions_of_fewer_groups_are_dropped_and_counted(
    tmp_path, write_jsonl, min_groups, kept, dropped
):
    config = DataConfig(
        format="survey",
        path=_survey(tmp_path, write_jsonl),
        split=(1, 0, 0),
        min_groups_per_question=min_groups,
    )
    data = build_dataset(config)
    assert _questions(data) == kept
    assert data.pairs_below_min_groups == dropped
    prepared = prepare_dataset(config, tmp_path / "prepared")
    assert prepared.summary()["pairs_below_min_groups"] == dropped
    assert prepared.totals["pairs"] == 7 - dropped, "7 answers, one pair each"


def test_a_threshold_no_question_meets_is_refused(tmp_path, write_jsonl):
    config = DataConfig(
        format="survey",
        path=_survey(tmp_path, write_jsonl),
        split=(1, 0, 0),
        min_groups_per_question=4,
    )
    with pytest.raises(DataValidationError, match="no question has pairs of 4 or more groups"):
        build_dataset(config)


def test_zero_is_not_a_threshold():
    with pytest.raises(ValidationError, match="min_groups_per_question"):
        DataConfig(format="synthetic", min_groups_per_question=0)
