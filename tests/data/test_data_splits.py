"""Seeded per-group splits, group statistics and slugs."""

from __future__ import annotations

import random

import pytest

from grpo_core.data import (
    DataConfig,
    allocate,
    assign_splits,
    build_dataset,
    imbalance_ratio,
    slugify,
    unique_slugs,
)
from grpo_core.data.schema import PreferencePair
from grpo_core.data.validation import Location


def _pairs(groups: dict[str, int], pairs_per_question: int = 1) -> list[PreferencePair]:
    pairs = []
    for group, questions in groups.items():
        for q in range(questions):
            for k in range(pairs_per_question):
                pairs.append(
                    PreferencePair(
                        f"{group}-{q}-{k}",
                        f"q{q}",
                        group,
                        f"prompt {q}",
                        "a",
                        f"b{k}",
                        Location("t", "line", len(pairs) + 1),
                    )
                )
    return pairs


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (10, [8, 1, 1]),
        (9, [7, 1, 1]),
        (234, [187, 24, 23]),
        (5, [4, 1, 0]),
        (0, [0, 0, 0]),
        (3, [3, 0, 0]),
    ],
)
def test_allocate_follows_the_largest_remainder_rule(total, expected):
    assert allocate(total, (0.8, 0.1, 0.1)) == expected


def test_splits_are_80_10_10_per_group_deterministic_and_seed_dependent():
    # Given two groups of 50 and 20 questions
    pairs = _pairs({"big": 50, "small": 20})
    # When split twice with one seed and once with another
    first = assign_splits(pairs, (0.8, 0.1, 0.1), seed=3)
    again = assign_splits(pairs, (0.8, 0.1, 0.1), seed=3)
    other = assign_splits(pairs, (0.8, 0.1, 0.1), seed=4)
    # Then each group is split 80/10/10, the same seed repeats, another seed differs
    for group, sizes in (("big", (40, 5, 5)), ("small", (16, 2, 2))):
        got = [s for p, s in zip(pairs, first, strict=True) if p.group == group]
        assert tuple(got.count(s) for s in ("train", "validation", "test")) == sizes, group
    assert first == again, "the same seed must give the same split"
    assert first != other, "another seed should give another split"


def test_splits_do_not_depend_on_input_order_or_on_other_groups():
    pairs = _pairs({"big": 50, "small": 20})
    split_of = dict(
        zip((p.pair_id for p in pairs), assign_splits(pairs, (0.8, 0.1, 0.1), seed=0), strict=True)
    )
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    shuffled_split = assign_splits(shuffled, (0.8, 0.1, 0.1), seed=0)
    assert all(split_of[p.pair_id] == s for p, s in zip(shuffled, shuffled_split, strict=True))
    small_only = [p for p in pairs if p.group == "small"]
    alone = assign_splits(small_only, (0.8, 0.1, 0.1), seed=0)
    assert all(split_of[p.pair_id] == s for p, s in zip(small_only, alone, strict=True)), (
        "adding a group must not change another group's split"
    )


def test_all_pairs_of_a_question_stay_in_one_split_within_a_group():
    pairs = _pairs({"g": 30}, pairs_per_question=3)
    splits = assign_splits(pairs, (0.8, 0.1, 0.1), seed=0)
    by_question: dict[str, set[str]] = {}
    for pair, split in zip(pairs, splits, strict=True):
        by_question.setdefault(pair.question_id, set()).add(split)
    assert all(len(s) == 1 for s in by_question.values()), "a question's pairs were split apart"


def test_split_by_question_keeps_each_question_in_one_split_across_groups():
    pairs = _pairs({"a": 40, "b": 40, "c": 25})
    splits = assign_splits(pairs, (0.8, 0.1, 0.1), seed=0, by_question=True)
    by_question: dict[str, set[str]] = {}
    for pair, split in zip(pairs, splits, strict=True):
        by_question.setdefault(pair.question_id, set()).add(split)
    assert all(len(s) == 1 for s in by_question.values()), "a question landed in two splits"
    per_group = [s for p, s in zip(pairs, splits, strict=True) if p.group == "a"]
    assert per_group.count("train") == 32, "40 questions split 80/10/10 give 32 train questions"


def test_prepared_splits_are_disjoint_and_cover_every_pair():
    data = build_dataset(DataConfig(seed=5))
    ids = {split: {p.pair_id for p in pairs} for split, pairs in data.splits.items()}
    assert (
        not ids["train"] & ids["validation"]
        and not ids["train"] & ids["test"]
        and not ids["validation"] & ids["test"]
    )
    assert sum(len(v) for v in ids.values()) == 495, "every generated pair should be in one split"
    questions = {
        split: {(p.group, p.question_id) for p in pairs} for split, pairs in data.splits.items()
    }
    assert not questions["train"] & questions["test"], (
        "a group's question must not be in train and test"
    )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("India (Current national sample)", "india-current-national-sample"),
        ("S. Korea", "s-korea"),
        ("Côte d'Ivoire", "cote-d-ivoire"),
        ("group_1", "group_1"),
        ("!!!", "group"),
    ],
)
def test_slugs_use_only_lowercase_letters_digits_underscores_and_dashes(name, slug):
    assert slugify(name) == slug


def test_slugs_are_made_unique_with_numbered_suffixes():
    assert unique_slugs(["A b", "a-b", "A  B", "a-b-2"]) == {
        "A b": "a-b",
        "a-b": "a-b-2",
        "A  B": "a-b-3",
        "a-b-2": "a-b-2-2",
    }


def test_imbalance_ratio_is_largest_over_smallest_train_count():
    counts = {"a": {"train": 192}, "b": {"train": 96}, "c": {"train": 32}}
    assert imbalance_ratio(counts) == 6.0


def test_group_map_merges_and_renames_groups_and_groups_select_them_in_order(tmp_path, write_jsonl):
    rows = [
        {"prompt": f"p{i}", "chosen": "a", "rejected": "b", "group": g}
        for i, g in enumerate(["N", "S", "E", "W"] * 10)
    ]
    path = str(write_jsonl(tmp_path / "p.jsonl", rows))
    config = DataConfig(
        format="pairs",
        path=path,
        group_map={"N": "North", "S": "South", "E": "South"},
        groups=("South", "North"),
    )
    data = build_dataset(config)
    assert data.groups == ("South", "North"), "group ids follow the selection order"
    assert {g: sum(c.values()) for g, c in data.counts.items()} == {"South": 20, "North": 10}
    assert data.rows_outside_groups == 10, "the 10 rows of W are counted as outside the selection"
