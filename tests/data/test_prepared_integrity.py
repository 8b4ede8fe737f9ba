"""A prepared folder is checked against its groups.json (row counts, and the sha256 of each split
file written at prepare time) before it is trained or evaluated on: a file cut short, replaced,
missing, or a groups.json edited by hand is named, with what to do, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from grpo_cli.main import EXIT_BAD_INPUT, main
from grpo_core.data.cache import prepared_data_dir
from grpo_core.data.config import DataConfig
from grpo_core.data.prepare import prepare_dataset
from grpo_core.data.storage import PreparedDataError, check_prepared, load_groups, load_split

AGAIN = "prepare the folder again (grpo data prepare, or delete it to let the cache remake it)"


def pairs_config(tmp_path: Path) -> DataConfig:
    source = tmp_path / "prefs.jsonl"
    source.write_text(
        "".join(
            json.dumps({"group": g, "prompt": f"q{i} {g}?", "chosen": f"y{i}", "rejected": f"n{i}"})
            + "\n"
            for g in ("north", "south")
            for i in range(10)
        )
    )
    return DataConfig(format="pairs", path=str(source))


@pytest.fixture
def prepared(tmp_path) -> Path:
    out = tmp_path / "prepared"
    prepare_dataset(pairs_config(tmp_path), out)
    return out


def cut_short(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)


def test_groups_json_records_each_split_files_rows_and_hash(prepared):
    files = json.loads((prepared / "groups.json").read_text())["files"]
    assert {name: entry["rows"] for name, entry in files.items()} == {
        "train.parquet": 16,
        "validation.parquet": 2,
        "test.parquet": 2,
    }
    assert check_prepared(prepared).names == ("north", "south")


def test_a_split_file_cut_short_is_refused_by_train_before_any_work(capsys, prepared):
    cut_short(prepared / "train.parquet")
    code = main(
        ["train", "--config", "examples/tiny_opinions.yaml", "--method", "ipo",
         "--data", str(prepared), "--output", str(prepared.parent / "run")]
    )  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert (code, lines) == (
        EXIT_BAD_INPUT,
        [
            f"grpo train: {prepared / 'train.parquet'}: holds 15 pairs, groups.json counts 16: "
            f"the file changed after it was prepared; {AGAIN}"
        ],
    )
    assert not (prepared.parent / "run").exists()


def test_a_split_file_replaced_with_as_many_rows_is_found_by_its_hash(prepared):
    table = pq.read_table(prepared / "test.parquet")
    pq.write_table(table.take([1, 0]), prepared / "test.parquet")  # same rows, other order
    with pytest.raises(PreparedDataError) as refused:
        load_split(prepared, "test")
    assert str(refused.value) == (
        f"{prepared / 'test.parquet'}: its content differs from what was prepared (sha256 in "
        f"groups.json); {AGAIN}"
    )


def test_a_folder_prepared_before_the_hash_is_checked_by_its_counts(prepared):
    document = json.loads((prepared / "groups.json").read_text())
    del document["files"]
    (prepared / "groups.json").write_text(json.dumps(document))
    table = pq.read_table(prepared / "test.parquet")
    pq.write_table(table.take([1, 0]), prepared / "test.parquet")
    assert len(load_split(prepared, "test")) == 2  # counts agree: accepted
    cut_short(prepared / "test.parquet")
    with pytest.raises(PreparedDataError, match="holds 1 pairs, groups.json counts 2"):
        load_split(prepared, "test")


def test_a_missing_split_file_is_named_with_what_to_do(capsys, prepared):
    (prepared / "validation.parquet").unlink()
    code = main(["evaluate", "--checkpoint", str(prepared / "none"), "--data", str(prepared)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert (code, lines) == (
        EXIT_BAD_INPUT,
        [
            f"grpo evaluate: {prepared / 'validation.parquet'}: missing from the prepared folder; {AGAIN}"
        ],
    )


def test_a_groups_json_edited_by_hand_is_named_with_what_to_do(prepared):
    document = json.loads((prepared / "groups.json").read_text())
    del document["slugs"]
    (prepared / "groups.json").write_text(json.dumps(document))
    with pytest.raises(PreparedDataError) as refused:
        load_groups(prepared)
    assert str(refused.value) == f"{prepared / 'groups.json'}: no 'slugs' entry; {AGAIN}"


def test_the_cache_prepares_a_damaged_folder_again(tmp_path):
    config = pairs_config(tmp_path)
    folder, made = prepared_data_dir(config, tmp_path / "cache")
    assert made
    cut_short(folder / "train.parquet")
    again, made = prepared_data_dir(config, tmp_path / "cache")
    assert (again, made) == (folder, True)
    assert len(load_split(folder, "train")) == 16
