"""Group labels mean one group each: spellings that differ only by letter case or surrounding spaces
are refused (both named, with their lines) unless merged on purpose; labels with control characters
are refused naming their line; a read error names the file and the line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from grpo_cli.main import EXIT_BAD_INPUT, main
from grpo_core.data.config import DataConfig
from grpo_core.data.prepare import build_dataset
from grpo_core.data.readers import open_source
from grpo_core.data.validation import DataValidationError


def write_pairs(path: Path, labels: list[str]) -> Path:
    """One pair per label, in order (line i + 1 holds labels[i])."""
    path.write_text(
        "".join(
            json.dumps({"group": g, "prompt": f"q{i}?", "chosen": f"y{i}", "rejected": f"n{i}"})
            + "\n"
            for i, g in enumerate(labels)
        )
    )
    return path


def labels_with(variant: str) -> list[str]:
    """Ten Japan and ten Kenya pairs; line 12 spells Japan as ``variant``."""
    labels = ["Japan"] * 10 + ["Kenya"] * 10
    labels[11] = variant
    return labels


@pytest.mark.parametrize("variant", ["japan", "JAPAN", "Japan ", " Japan", "japan\u00a0"])
def test_labels_that_differ_by_case_or_spaces_are_refused_naming_both(tmp_path, variant):
    source = write_pairs(tmp_path / "prefs.jsonl", labels_with(variant))
    with pytest.raises(DataValidationError) as refused:
        build_dataset(DataConfig(format="pairs", path=str(source)))
    assert str(refused.value) == (
        f"{source}, line 12: group label {variant!r} differs from 'Japan' ({source}, line 1) only "
        "by letter case or surrounding spaces: fix the labels in the source, or set "
        "data.merge_label_variants: true (grpo data prepare --merge-label-variants) to merge them "
        "as 'Japan'"
    )


@pytest.mark.parametrize("variant", ["japan", "Japan "])
def test_merge_label_variants_merges_them_under_the_first_spelling(tmp_path, variant):
    source = write_pairs(tmp_path / "prefs.jsonl", labels_with(variant))
    data = build_dataset(DataConfig(format="pairs", path=str(source), merge_label_variants=True))
    assert data.groups == ("Japan", "Kenya")
    assert {g: sum(c.values()) for g, c in data.counts.items()} == {"Japan": 11, "Kenya": 9}


def test_the_cli_refuses_variants_in_one_line_and_merges_them_with_the_flag(capsys, tmp_path):
    source = write_pairs(tmp_path / "prefs.jsonl", labels_with("japan"))
    argv = ["data", "prepare", str(source), "--format", "pairs", "--out", str(tmp_path / "out")]
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    assert "group label 'japan' differs from 'Japan'" in lines[0] and "line 12" in lines[0]
    assert not (tmp_path / "out").exists()
    assert main([*argv, "--merge-label-variants"]) == 0
    groups = json.loads((tmp_path / "out" / "groups.json").read_text())
    assert groups["groups"] == ["Japan", "Kenya"]
    assert groups["data_config"]["merge_label_variants"] is True


@pytest.mark.parametrize(
    ("bad", "shown"), [("Ja\tpan", "'\\t'"), ("Ja\npan", "'\\n'"), ("Ja\x00pan", "'\\x00'")]
)
def test_a_label_with_a_control_character_is_refused_naming_its_line(tmp_path, bad, shown):
    source = write_pairs(tmp_path / "prefs.jsonl", labels_with(bad))
    with pytest.raises(DataValidationError) as refused:
        build_dataset(DataConfig(format="pairs", path=str(source)))
    assert str(refused.value) == (
        f"{source}, line 12, field 'group': group label {bad!r} holds a control character "
        f"({shown}); fix the label in the source [bad_group_label]"
    )


def test_a_csv_label_with_a_newline_is_refused_naming_the_line_where_its_row_starts(tmp_path):
    source = tmp_path / "prefs.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "prompt", "chosen", "rejected"])
        for i, label in enumerate(labels_with("Ja\npan")):
            writer.writerow([label, f"q{i}?", f"y{i}", f"n{i}"])
    with pytest.raises(DataValidationError) as refused:
        build_dataset(DataConfig(format="pairs", path=str(source)))
    assert str(refused.value).startswith(
        f"{source}, line 13, field 'group': group label 'Ja\\npan'"
    )


def test_a_quarantined_control_character_label_is_counted(tmp_path):
    source = write_pairs(tmp_path / "prefs.jsonl", labels_with("Ja\tpan"))
    data = build_dataset(DataConfig(format="pairs", path=str(source), on_invalid="quarantine"))
    assert data.rejected_rows == {"bad_group_label": 1} and data.groups == ("Japan", "Kenya")


def test_config_group_names_with_control_characters_are_refused():
    with pytest.raises(ValueError, match="groups has names with a control character"):
        DataConfig(format="pairs", path="x.jsonl", groups=("Japan\t", "Kenya"))
    with pytest.raises(ValueError, match="group_map has names with a control character"):
        DataConfig(format="pairs", path="x.jsonl", group_map={"a": "b\n"})


def test_a_json_array_that_is_not_utf8_names_its_line(tmp_path):
    source = tmp_path / "prefs.json"
    source.write_bytes(b'[\n{"group": "Japan"},\n{"group": "K\xffenya"}\n]\n')
    with pytest.raises(DataValidationError) as refused:
        list(open_source(source).records)
    assert str(refused.value).startswith(f"{source}, line 3, field '(file)': not valid UTF-8")
