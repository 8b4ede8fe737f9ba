"""Survey adapter: the paper's pairs from answer distributions (docs/ALGORITHM.md#language-model-experiments)."""

from __future__ import annotations

import builtins
import csv
import hashlib
import json
from collections import Counter

import pytest

from grpo_core.data import DataConfig, load_pairs, safe_literal
from grpo_core.data.config import PAPER_GROUPS, SurveyOptions
from grpo_core.data.literals import parse_selections
from grpo_core.data.survey import SurveyRow, render_survey_prompt, survey_pairs
from grpo_core.data.validation import Location

TEA_PROMPT = (
    "Opinion of people in Kenya on: Is tea good?\nPlease select the best response:"
    "\nA. Yes\nB. No\nC. Maybe"
)


def _row(distribution, options=("Yes", "No", "Maybe"), group="Kenya") -> SurveyRow:
    return SurveyRow(
        "q1", "Is tea good?", tuple(options), group, tuple(distribution), Location("t", "line", 1)
    )


def test_prompt_is_the_papers_template_then_one_lettered_line_per_option():
    prompt = render_survey_prompt("Is tea good?", ["Yes", "No", "Maybe"], "Kenya", SurveyOptions())
    assert prompt == TEA_PROMPT


def test_best_vs_random_chooses_the_most_probable_letter_and_a_uniform_other_letter():
    # Given Kenya prefers "No" (B) with 0.5
    row = _row([0.2, 0.5, 0.3])
    # When pairs are drawn under 400 seeds
    draws = [survey_pairs(row, SurveyOptions(), seed=s) for s in range(400)]
    # Then each seed gives one pair, chosen B, rejected A or C about equally often
    assert all(len(d) == 1 and d[0].chosen == "B" and d[0].prompt == TEA_PROMPT for d in draws)
    rejected = Counter(d[0].rejected for d in draws)
    assert set(rejected) == {"A", "C"}, f"expected A and C as rejected letters, got {rejected}"
    assert 0.4 < rejected["A"] / 400 < 0.6, f"expected a uniform draw, got {rejected}"
    assert survey_pairs(row, SurveyOptions(), seed=7) == survey_pairs(row, SurveyOptions(), seed=7)


def test_ranking_variant_samples_better_worse_pairs_from_the_full_ranking():
    # Given the ranking B > C > A and three pairs per row
    options = SurveyOptions(pairing="ranking", pairs_per_row=3)
    # When pairs are drawn
    pairs = survey_pairs(_row([0.2, 0.5, 0.3]), options, seed=0)
    # Then they are exactly the three ordered pairs of the ranking
    assert {(p.chosen, p.rejected) for p in pairs} == {("B", "C"), ("B", "A"), ("C", "A")}
    assert len({p.pair_id for p in pairs}) == 3, "pair ids must be distinct"


def test_ties_first_follows_argmax_and_strict_only_pairs_strictly_better_options():
    row = _row([0.4, 0.4, 0.2])
    first = {survey_pairs(row, SurveyOptions(), seed=s)[0].rejected for s in range(50)}
    strict = {
        survey_pairs(row, SurveyOptions(ties="strict"), seed=s)[0].rejected for s in range(50)
    }
    assert first == {"B", "C"}, "ties='first': chosen A (argmax), any other option rejected"
    assert strict == {"C"}, "ties='strict': only the strictly less probable option is rejected"


def test_strict_ties_reject_a_flat_distribution_as_no_preference(tmp_path, write_jsonl):
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "question": "Q?",
                "options": ["Yes", "No"],
                "country": "Kenya",
                "distribution": [0.5, 0.5],
            }
        ],
    )
    config = DataConfig(
        format="survey", path=str(path), survey={"ties": "strict"}, on_invalid="quarantine"
    )
    pairs, rejections = load_pairs(config)
    assert pairs == [] and [(r.reason, r.location.index) for r in rejections] == [
        ("no_preference", 1)
    ]


def test_flat_layout_rows_become_the_expected_pairs(tmp_path, write_jsonl):
    # Given two groups' answers to one question, with an id
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {
                "question_id": "tea",
                "question": "Is tea good?",
                "options": ["Yes", "No", "Maybe"],
                "country": "Kenya",
                "distribution": [0.2, 0.5, 0.3],
            },
            {
                "question_id": "tea",
                "question": "Is tea good?",
                "options": ["Yes", "No", "Maybe"],
                "country": "Peru",
                "distribution": [0.6, 0.3, 0.1],
            },
        ],
    )
    # When loaded
    pairs, _ = load_pairs(DataConfig(format="survey", path=str(path)))
    # Then each group gets its own prompt and its own most probable letter
    assert [(p.group, p.question_id, p.chosen) for p in pairs] == [
        ("Kenya", "tea", "B"),
        ("Peru", "tea", "A"),
    ]
    assert pairs[0].prompt == TEA_PROMPT
    assert pairs[1].prompt == TEA_PROMPT.replace("Kenya", "Peru")


def test_hub_layout_is_read_from_defaultdict_and_python_literal_strings_without_eval(
    tmp_path, monkeypatch
):
    # Given the original GlobalOpinionQA hub layout in a CSV file
    path = tmp_path / "global_opinions.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "selections", "options", "source"])
        writer.writerow(
            [
                "Is tea good?",
                "defaultdict(<class 'list'>, {'Kenya': [0.2, 0.5, 0.3], 'Peru': [0.6, 0.3, 0.1]})",
                "['Yes', 'No', 'Maybe']",
                "GAS",
            ]
        )
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval must never be called"))
    # When loaded
    pairs, _ = load_pairs(DataConfig(format="survey", path=str(path)))
    # Then it gives the same pairs as the flat layout, with the union file's question id
    expected_id = "goqa_" + hashlib.sha1(b"Is tea good?").hexdigest()[:10]
    assert [(p.group, p.question_id, p.chosen, p.prompt) for p in pairs] == [
        ("Kenya", expected_id, "B", TEA_PROMPT),
        ("Peru", expected_id, "A", TEA_PROMPT.replace("Kenya", "Peru")),
    ]


def test_hub_layout_rejects_each_bad_group_entry_with_its_own_field(tmp_path, write_jsonl):
    row = {
        "question": "Q?",
        "options": "['Yes', 'No']",
        "selections": "defaultdict(<class 'list'>, {'Kenya': [0.0, 0.0], 'Peru': [0.7, 0.3]})",
    }
    path = write_jsonl(tmp_path / "hub.jsonl", [row])
    pairs, rejections = load_pairs(DataConfig(format="survey", path=str(path)))
    assert [p.group for p in pairs] == ["Peru"]
    assert [(r.reason, r.field, r.location.index) for r in rejections] == [
        ("distribution_not_normalized", "selections['Kenya']", 1)
    ], "on_invalid='auto' quarantines the paper's dropped rows, naming the group's entry"


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "open('x')",
        "[1, 2] + [3]",
        "lambda: 1",
        "{1: [x for x in y]}",
    ],
)
def test_safe_literal_refuses_anything_but_literals(text):
    with pytest.raises(ValueError):
        safe_literal(text)


def test_safe_literal_and_selections_parse_the_hub_forms():
    assert safe_literal("['a', \"b\", -1.5, nan]")[:3] == ["a", "b", -1.5]
    assert parse_selections("defaultdict(<class 'list'>, {'A (x)': [0.25, 0.75]})") == {
        "A (x)": [0.25, 0.75]
    }
    assert parse_selections("{'A': [1.0]}") == {"A": [1.0]}


def test_globalopinionqa_union_gives_one_pair_per_row_with_a_valid_distribution(goqa_union_path):
    # Given the union file and the paper's five countries
    rows = [json.loads(line) for line in goqa_union_path.open(encoding="utf-8")]
    valid = Counter(
        r["country"]
        for r in rows
        if r["country"] in PAPER_GROUPS
        and min(r["distribution"]) >= 0
        and abs(sum(r["distribution"]) - 1) <= 0.05
    )
    invalid = sum(1 for r in rows if r["country"] in PAPER_GROUPS) - sum(valid.values())
    # When it is loaded as a survey (on_invalid='auto')
    pairs, rejections = load_pairs(
        DataConfig(format="survey", path=str(goqa_union_path), groups=PAPER_GROUPS)
    )
    # Then every valid row gives exactly one pair and every invalid row is a counted rejection
    assert Counter(p.group for p in pairs) == valid, "expected one pair per valid row and group"
    assert len(rejections) == invalid == 1, "China has one all-zero distribution"
    assert (rejections[0].reason, rejections[0].field) == (
        "distribution_not_normalized",
        "distribution",
    )
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert all(
        p.chosen in letters and p.rejected in letters and p.chosen != p.rejected for p in pairs
    )
    assert all(p.prompt.startswith(f"Opinion of people in {p.group} on: ") for p in pairs)


def test_best_vs_random_with_several_pairs_per_row_draws_distinct_rejected_options():
    row = _row([0.1, 0.6, 0.2, 0.1], options=("Yes", "No", "Maybe", "Never"))
    pairs = survey_pairs(row, SurveyOptions(pairs_per_row=2), seed=0)
    assert [p.chosen for p in pairs] == ["B", "B"]
    assert len({p.rejected for p in pairs}) == 2 and {p.rejected for p in pairs} <= {"A", "C", "D"}
    many = survey_pairs(row, SurveyOptions(pairs_per_row=9), seed=0)
    assert sorted(p.rejected for p in many) == ["A", "C", "D"], "at most every other option once"
