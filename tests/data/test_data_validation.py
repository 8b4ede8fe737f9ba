"""Validation loses nothing silently: one test per bad input.

Each bad record is an error naming the file, the line (or row) and the field, or, with
``on_invalid="quarantine"``, a quarantined record counted under its reason.
"""

from __future__ import annotations

import json

import pytest

from grpo_core.data import (
    DataConfig,
    DataValidationError,
    build_dataset,
    load_pairs,
    prepare_dataset,
)

GOOD = {"prompt": "p1", "chosen": "a", "rejected": "b", "group": "g"}
SURVEY = {
    "question": "Q?",
    "options": ["Yes", "No"],
    "country": "Kenya",
    "distribution": [0.7, 0.3],
}


def _fails(config: DataConfig, reason: str, where: str, field: str) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load_pairs(config)
    message = str(info.value)
    assert info.value.reason == reason, f"expected reason {reason}, got: {message}"
    assert where in message, f"expected the message to name '{where}': {message}"
    assert f"field '{field}'" in message, f"expected the message to name field '{field}': {message}"
    assert config.path in message, f"expected the message to name the file: {message}"
    return info.value


def _pairs_file(tmp_path, write_jsonl, second_row):
    return str(write_jsonl(tmp_path / "pairs.jsonl", [GOOD, second_row]))


def test_missing_column_in_a_csv_header_names_line_1_and_the_column(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,group\np,a,g\n")
    _fails(DataConfig(format="pairs", path=str(path)), "missing_column", "line 1", "rejected")


def test_missing_key_in_a_jsonl_record_names_its_line(tmp_path, write_jsonl):
    path = _pairs_file(tmp_path, write_jsonl, {"prompt": "p2", "chosen": "a", "group": "g"})
    _fails(DataConfig(format="pairs", path=path), "missing_column", "line 2", "rejected")


def test_wrong_type_names_line_and_field(tmp_path, write_jsonl):
    path = _pairs_file(tmp_path, write_jsonl, {**GOOD, "prompt": "p2", "chosen": 5})
    _fails(DataConfig(format="pairs", path=path), "wrong_type", "line 2", "chosen")


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_or_whitespace_only_text_names_line_and_field(tmp_path, write_jsonl, text):
    path = _pairs_file(tmp_path, write_jsonl, {**GOOD, "prompt": text})
    _fails(DataConfig(format="pairs", path=path), "empty_text", "line 2", "prompt")


@pytest.mark.parametrize("label", [None, "", "  "])
def test_missing_group_label_names_line_and_group_column(tmp_path, write_jsonl, label):
    path = _pairs_file(tmp_path, write_jsonl, {**GOOD, "prompt": "p2", "country": label})
    config = DataConfig(format="pairs", path=path, group_columns=("country",))
    with pytest.raises(DataValidationError, match="line 1, field 'country'"):
        load_pairs(config)  # line 1 has no 'country' key at all: a missing column
    path = str(write_jsonl(tmp_path / "g.jsonl", [{**GOOD, "group": label}]))
    _fails(DataConfig(format="pairs", path=path), "missing_group", "line 1", "group")


def test_chosen_identical_to_rejected_names_line_and_field(tmp_path, write_jsonl):
    path = _pairs_file(
        tmp_path, write_jsonl, {**GOOD, "prompt": "p2", "chosen": " same", "rejected": "same "}
    )
    _fails(DataConfig(format="pairs", path=path), "chosen_equals_rejected", "line 2", "rejected")


def test_duplicate_pair_names_both_lines(tmp_path, write_jsonl):
    path = _pairs_file(tmp_path, write_jsonl, GOOD)
    error = _fails(DataConfig(format="pairs", path=path), "duplicate", "line 2", "(record)")
    assert "line 1" in str(error), "expected the first occurrence to be named"


def test_duplicate_pair_id_names_line_and_field(tmp_path, write_jsonl):
    path = str(
        write_jsonl(
            tmp_path / "p.jsonl",
            [{**GOOD, "pair_id": "x"}, {**GOOD, "prompt": "p2", "pair_id": "x"}],
        )
    )
    _fails(DataConfig(format="pairs", path=path), "duplicate", "line 2", "pair_id")


def test_negative_distribution_names_line_and_entry(tmp_path, write_jsonl):
    path = str(
        write_jsonl(
            tmp_path / "s.jsonl",
            [SURVEY, {**SURVEY, "country": "Peru", "distribution": [1.2, -0.2]}],
        )
    )
    config = DataConfig(format="survey", path=path, on_invalid="error")
    _fails(config, "negative_distribution", "line 2", "distribution[1]")


def test_distribution_not_summing_to_one_names_line_and_field(tmp_path, write_jsonl):
    path = str(
        write_jsonl(
            tmp_path / "s.jsonl",
            [SURVEY, {**SURVEY, "country": "Peru", "distribution": [0.5, 0.3]}],
        )
    )
    config = DataConfig(format="survey", path=path, on_invalid="error")
    error = _fails(config, "distribution_not_normalized", "line 2", "distribution")
    assert "sums to 0.8" in str(error)


def test_distribution_with_wrong_length_or_type_names_line_and_field(tmp_path, write_jsonl):
    path = str(write_jsonl(tmp_path / "s.jsonl", [{**SURVEY, "distribution": [0.5, 0.3, 0.2]}]))
    _fails(DataConfig(format="survey", path=path), "length_mismatch", "line 1", "distribution")
    path = str(write_jsonl(tmp_path / "t.jsonl", [{**SURVEY, "distribution": [0.5, "half"]}]))
    _fails(DataConfig(format="survey", path=path), "wrong_type", "line 1", "distribution[1]")


def test_too_few_options_names_line_and_field(tmp_path, write_jsonl):
    path = str(
        write_jsonl(tmp_path / "s.jsonl", [{**SURVEY, "options": ["Yes"], "distribution": [1.0]}])
    )
    _fails(DataConfig(format="survey", path=path), "too_few_options", "line 1", "options")


def test_malformed_jsonl_line_names_its_line(tmp_path, write_jsonl):
    path = str(write_jsonl(tmp_path / "p.jsonl", [GOOD, '{"prompt": "p2", oops']))
    _fails(DataConfig(format="pairs", path=path), "malformed_line", "line 2", "(line)")


def test_malformed_csv_row_names_its_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,chosen,rejected,group\np1,a,b,g\n"multi\nline",a,b,g\np3,a,b\n')
    _fails(DataConfig(format="pairs", path=str(path)), "malformed_line", "line 5", "(line)")


def test_broken_json_array_names_its_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        '[\n{"prompt": "p", "chosen": "a", "rejected": "b", "group": "g"},\n{"prompt": }\n]'
    )
    _fails(DataConfig(format="pairs", path=str(path)), "malformed_line", "line 3", "(file)")


def test_group_too_small_for_the_splits_names_the_group_lines_and_field(tmp_path, write_jsonl):
    # Given 10 pairs for group "big" and 2 for group "tiny" (80/10/10 needs at least 7)
    rows = [{**GOOD, "prompt": f"p{i}"} for i in range(10)]
    rows += [{**GOOD, "prompt": f"t{i}", "group": "tiny"} for i in range(2)]
    path = str(write_jsonl(tmp_path / "p.jsonl", rows))
    # When the dataset is built
    with pytest.raises(DataValidationError) as info:
        build_dataset(DataConfig(format="pairs", path=path))
    # Then the error names the group, its lines and the group field
    message = str(info.value)
    assert info.value.reason == "group_too_small"
    assert "'tiny'" in message and "lines 11, 12" in message and "field 'group'" in message, message


def test_unknown_selected_group_is_an_error_with_a_suggestion(tmp_path, write_jsonl):
    path = str(write_jsonl(tmp_path / "s.jsonl", [SURVEY]))
    with pytest.raises(DataValidationError, match=r"'Kenia' \(did you mean 'Kenya'\?\)"):
        load_pairs(DataConfig(format="survey", path=path, groups=("Kenia",)))


def test_quarantine_keeps_every_bad_record_with_counts_per_reason(tmp_path, write_jsonl):
    # Given 10 good pairs and one record per bad case, plus a tiny group
    rows = [{**GOOD, "prompt": f"p{i}"} for i in range(10)]
    bad = [
        '{"prompt": oops',
        {"prompt": "x1", "chosen": "a", "group": "g"},
        {**GOOD, "prompt": "x2", "chosen": 5},
        {**GOOD, "prompt": " "},
        {**GOOD, "prompt": "x3", "group": None},
        {**GOOD, "prompt": "x4", "rejected": "a"},
        {**GOOD, "prompt": "p0"},
        {**GOOD, "prompt": "t1", "group": "tiny"},
    ]
    path = str(write_jsonl(tmp_path / "p.jsonl", rows + bad))
    config = DataConfig(format="pairs", path=path, on_invalid="quarantine", allow_single_group=True)
    # When the dataset is prepared
    prepared = prepare_dataset(config, tmp_path / "out")
    # Then each bad record is counted once under its reason and written to the quarantine file
    assert prepared.rejected_rows == {
        "malformed_line": 1,
        "missing_column": 1,
        "wrong_type": 1,
        "empty_text": 1,
        "missing_group": 1,
        "chosen_equals_rejected": 1,
        "duplicate": 1,
        "group_too_small": 1,
    }
    assert prepared.totals["pairs"] == 10 and prepared.groups == ("g",)
    assert "tiny" in prepared.dropped_groups
    lines = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").open()]
    assert sorted(entry["line"] for entry in lines) == list(range(11, 19)), "one entry per bad line"
    assert all({"reason", "file", "line", "field", "message", "record"} <= set(e) for e in lines)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rejected_rows"] == prepared.rejected_rows


def test_an_empty_file_and_a_single_group_are_refused_with_what_to_do(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="empty.jsonl: the source holds no records"):
        prepare_dataset(DataConfig(format="pairs", path=str(empty)), tmp_path / "a")
    one = tmp_path / "one.jsonl"
    one.write_text(
        "".join(
            json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b", "group": "A"}) + "\n"
            for i in range(30)
        )
    )
    with pytest.raises(DataValidationError, match=r"only one group \(A\).*allow_single_group"):
        prepare_dataset(DataConfig(format="pairs", path=str(one)), tmp_path / "b")
    assert not (tmp_path / "b").exists(), "nothing written"
    prepared = prepare_dataset(
        DataConfig(format="pairs", path=str(one), allow_single_group=True), tmp_path / "c"
    )
    assert list(prepared.groups) == ["A"]
