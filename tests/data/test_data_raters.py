"""Per-rater preference data and intersectional groups: a small file of this shape is
built here; nothing is downloaded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydantic import ValidationError

from grpo_core.data import DataConfig, build_dataset, load_pairs
from grpo_core.data.cache import prepared_data_key
from grpo_core.data.validation import DataValidationError

RATERS = [
    {"rater_id": "r1", "party": "Democrat", "race": "Black"},
    {"rater_id": "r2", "party": "Democrat", "race": "Black"},
    {"rater_id": "r3", "party": "Republican", "race": "White"},
    {"rater_id": "r4", "party": "Democrat", "race": "White"},
]
CHOICES = [  # one rater's choice per row
    {"rater_id": "r1", "prompt": "Tax the rich?", "response_a": "Yes", "response_b": "No", "preference": "a"},
    {"rater_id": "r2", "prompt": "Tax the rich?", "response_a": "Yes", "response_b": "No", "preference": "a"},
    {"rater_id": "r3", "prompt": "Tax the rich?", "response_a": "Yes", "response_b": "No", "preference": "b"},
    {"rater_id": "r3", "prompt": "More police?", "response_a": "Yes", "response_b": "No", "preference": "A"},
    {"rater_id": "r1", "prompt": "More police?", "response_a": "Yes", "response_b": "No", "preference": "tie"},
    {"rater_id": "r9", "prompt": "More police?", "response_a": "Yes", "response_b": "No", "preference": "b"},
    {"rater_id": "r4", "prompt": "Raise wages?", "response_a": "Yes", "response_b": "No", "preference": "1"},
]  # fmt: skip


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    return write_csv(tmp_path / "choices.csv", CHOICES), write_csv(tmp_path / "raters.csv", RATERS)


def raters_config(choices: Path, table: Path | None, **updates) -> DataConfig:
    fields = {
        "format": "raters", "path": str(choices), "group_columns": ("party", "race"),
        "raters": {"table": str(table) if table else None}, "on_invalid": "quarantine",
        "allow_single_group": True,
    }  # fmt: skip
    return DataConfig(**(fields | updates))


def test_each_choice_is_a_pair_of_its_raters_intersectional_group(files):
    choices, table = files
    pairs, rejections = load_pairs(raters_config(choices, table))
    got = [(p.group, p.prompt, p.chosen, p.rejected) for p in pairs]
    assert got == [
        ("Democrat x Black", "Tax the rich?", "Yes", "No"),
        ("Democrat x Black", "Tax the rich?", "Yes", "No"),  # a second rater's vote, kept
        ("Republican x White", "Tax the rich?", "No", "Yes"),  # preferred b: chosen is b
        ("Republican x White", "More police?", "Yes", "No"),
        ("Democrat x White", "Raise wages?", "No", "Yes"),
    ]
    assert len({p.pair_id for p in pairs}) == 5, "votes of different raters have their own ids"
    reasons = sorted((r.reason, r.location.index) for r in rejections)
    assert reasons == [("missing_group", 7), ("no_preference", 6)], "a tie; rater r9 is unknown"


def test_attributes_in_the_rows_need_no_table(tmp_path):
    rows = [{**c, **next(r for r in RATERS if r["rater_id"] == c["rater_id"])} for c in CHOICES[:4]]
    path = write_csv(tmp_path / "wide.csv", rows)
    pairs, _ = load_pairs(raters_config(path, None))
    assert [p.group for p in pairs][:3] == ["Democrat x Black"] * 2 + ["Republican x White"]


def test_one_group_column_and_a_column_mapping(tmp_path):
    rows = [{"who": c["rater_id"], "q": c["prompt"], "x": c["response_a"], "y": c["response_b"],
             "pick": c["preference"], "party": "P" if c["rater_id"] in ("r1", "r2") else "Q"}
            for c in CHOICES[:4]]  # fmt: skip
    path = write_csv(tmp_path / "mapped.csv", rows)
    config = DataConfig(
        format="raters", path=str(path), group_columns=("party",), on_invalid="quarantine",
        columns={"rater_id": "who", "prompt": "q", "response_a": "x", "response_b": "y",
                 "preference": "pick"},
    )  # fmt: skip
    pairs, _ = load_pairs(config)
    assert [p.group for p in pairs] == ["P", "P", "Q", "Q"]


def test_small_cells_are_dropped_and_reported_even_when_invalid_rows_are_errors(files):
    choices, table = files
    config = raters_config(
        choices, table, min_group_pairs=2, split=(1.0, 0.0, 0.0),
        on_invalid="error", allow_single_group=False,
    )  # fmt: skip
    valid = [c for c in CHOICES if c["preference"] != "tie" and c["rater_id"] != "r9"]
    write_csv(choices, valid)
    data = build_dataset(config)
    assert data.groups == ("Democrat x Black", "Republican x White")
    assert list(data.dropped_groups) == ["Democrat x White"]
    assert "fewer than min_group_pairs=2" in data.dropped_groups["Democrat x White"]
    assert [r.reason for r in data.rejections] == ["group_too_small"]


def test_a_tie_stops_with_file_line_and_field_unless_quarantined(files):
    choices, table = files
    with pytest.raises(DataValidationError, match=r"line 6.*'preference'.*'tie'"):
        load_pairs(raters_config(choices, table, on_invalid="error"))


def test_a_rater_rating_the_same_pair_twice_is_a_duplicate(tmp_path, files):
    _, table = files
    path = write_csv(tmp_path / "twice.csv", [CHOICES[0], CHOICES[0], CHOICES[2]])
    pairs, rejections = load_pairs(raters_config(path, table))
    assert len(pairs) == 2 and [r.reason for r in rejections] == ["duplicate"]


def test_a_repeated_rater_in_the_table_is_refused(tmp_path, files):
    choices, _ = files
    table = write_csv(tmp_path / "twice-raters.csv", [RATERS[0], RATERS[0]])
    with pytest.raises(DataValidationError, match="rater 'r1' is already at"):
        load_pairs(raters_config(choices, table))


def test_pairs_with_group_columns_make_intersectional_groups(tmp_path):
    rows = [
        {"prompt": "Q1", "chosen": "a", "rejected": "b", "party": "D", "race": "B"},
        {"prompt": "Q1", "chosen": "a", "rejected": "b", "party": "R", "race": "B"},
        {"prompt": "Q2", "chosen": "c", "rejected": "d", "party": "D", "race": ""},
    ]
    path = write_csv(tmp_path / "pairs.csv", rows)
    config = DataConfig(
        format="pairs", path=str(path), group_columns=("party", "race"), on_invalid="quarantine"
    )
    pairs, rejections = load_pairs(config)
    assert [p.group for p in pairs] == ["D x B", "R x B"]
    assert [(r.reason, r.field) for r in rejections] == [("missing_group", "race")]


def test_the_raters_table_is_part_of_the_data_key(files):
    choices, table = files
    config = raters_config(choices, table)
    before = prepared_data_key(config)
    write_csv(table, [{**RATERS[0], "race": "Asian"}, *RATERS[1:]])
    assert prepared_data_key(config) != before


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"format": "survey", "path": "x.jsonl", "group_columns": ("a", "b")}, "group_columns applies"),
        ({"format": "pairs", "path": "x.jsonl", "raters": {"table": "r.csv"}}, "raters.table is set"),
        ({"format": "raters", "path": "x.csv", "raters": {"prefers_a": ("a",), "prefers_b": ("a",)}}, "share"),
        ({"format": "raters", "path": "x.csv", "columns": {"chosen": "c"}}, "does not use"),
    ],
)  # fmt: skip
def test_inconsistent_rater_options_are_refused(updates, message):
    with pytest.raises(ValidationError, match=message):
        DataConfig(**updates)
