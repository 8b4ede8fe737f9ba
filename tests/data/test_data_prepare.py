"""prepare_dataset: atomic output, the files the training code reads, and purity."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from grpo_core.data import DataConfig, DataValidationError, load_groups, load_split, prepare_dataset
from grpo_core.data.schema import PAIR_COLUMNS
from grpo_core.data.storage import PREPARED_FILES


def test_prepare_writes_string_tables_groups_and_summary(tmp_path, capsys):
    # Given the default config (the built-in survey)
    out = tmp_path / "prepared"
    # When it is prepared
    prepared = prepare_dataset(DataConfig(), out)
    # Then the three splits hold the six string columns, and the group files describe them
    assert sorted(p.name for p in out.iterdir()) == sorted(PREPARED_FILES)
    for split in ("train", "validation", "test"):
        schema = pq.read_schema(out / f"{split}.parquet")
        assert schema.names == list(PAIR_COLUMNS)
        assert all(str(schema.field(n).type) == "string" for n in PAIR_COLUMNS), (
            f"{split}: all strings"
        )
    groups = json.loads((out / "groups.json").read_text())
    assert groups["groups"] == ["Northland", "Southland", "Eastland"], (
        "group ids follow generator order"
    )
    assert groups["slugs"] == {
        "northland": "Northland",
        "southland": "Southland",
        "eastland": "Eastland",
    }
    assert groups["counts"]["Eastland"] == {"train": 36, "validation": 5, "test": 4}
    assert groups["imbalance_ratio"] == pytest.approx(240 / 36)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == prepared.summary()
    assert summary["total"] == {"train": 396, "validation": 50, "test": 49, "pairs": 495}
    assert summary["groups"]["Eastland"] == {
        "slug": "eastland",
        "train": 36,
        "validation": 5,
        "test": 4,
    }
    assert (out / "quarantine.jsonl").read_text() == "", "nothing rejected, empty quarantine file"
    assert capsys.readouterr().out == "", "grpo_core must not print"


def test_load_split_adds_group_ids_from_groups_json(tmp_path):
    prepare_dataset(DataConfig(), tmp_path / "d")
    groups = load_groups(tmp_path / "d")
    frame = load_split(tmp_path / "d", "validation")
    assert list(frame.columns) == [*PAIR_COLUMNS, "group_id"]
    assert len(frame) == 50 and str(frame["group_id"].dtype) == "int64"
    assert all(groups.names[i] == g for i, g in zip(frame["group_id"], frame["group"], strict=True))
    assert groups.slug_list == ("northland", "southland", "eastland")
    assert groups.group_id("Eastland") == 2 and groups.num_groups == 3
    with pytest.raises(ValueError, match="unknown split"):
        load_split(tmp_path / "d", "dev")


def test_a_failed_prepare_writes_nothing(tmp_path, write_jsonl):
    # Given a file whose second line is malformed
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"prompt": "p", "chosen": "a", "rejected": "b", "group": "g"}, "{oops"],
    )
    # When it is prepared
    with pytest.raises(DataValidationError, match="line 2"):
        prepare_dataset(DataConfig(format="pairs", path=str(path)), tmp_path / "out")
    # Then nothing was written, not even a temporary folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_an_error_while_writing_leaves_the_previous_output_intact(tmp_path, monkeypatch):
    out = tmp_path / "out"
    prepare_dataset(DataConfig(seed=1), out)
    before = (out / "summary.json").read_text()

    def broken(path, pairs):
        raise OSError("disk full")

    monkeypatch.setattr("grpo_core.data.prepare.write_pairs_table", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(DataConfig(seed=2), out)
    assert (out / "summary.json").read_text() == before, "the previous dataset must survive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary folder may remain"


def test_a_previous_dataset_is_replaced_but_a_foreign_folder_is_not(tmp_path):
    out = tmp_path / "out"
    prepare_dataset(DataConfig(seed=1), out)
    prepare_dataset(DataConfig(seed=2), out)
    assert json.loads((out / "groups.json").read_text())["seed"] == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a prepared dataset"):
        prepare_dataset(DataConfig(), foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_grpo_core_data_imports_neither_prefect_nor_mlflow(tmp_path):
    code = (
        "import sys; from grpo_core.data import DataConfig, prepare_dataset; "
        f"prepare_dataset(DataConfig(), {str(tmp_path / 'o')!r}); "
        "bad = [m for m in ('prefect', 'mlflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "grpo_core must not print"
