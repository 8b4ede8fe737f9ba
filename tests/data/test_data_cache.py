"""One prepared-data cache key for `grpo train` and the pipeline: content, config, code, template."""

from __future__ import annotations

from grpo_core.data.cache import data_code_version, prepared_data_dir, prepared_data_key
from grpo_core.data.config import DataConfig
from grpo_core.data.storage import load_split

ROWS = [
    {"prompt": f"Opinion on topic {i}?", "chosen": "A", "rejected": "B", "group": group}
    for i in range(10)
    for group in ("north", "south")
]


def test_the_key_changes_with_the_source_content_the_config_the_code_and_the_template(
    tmp_path, write_jsonl, monkeypatch
):
    path = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    config = DataConfig(format="pairs", path=str(path))
    key = prepared_data_key(config)
    assert prepared_data_key(config) == key, "same inputs, same key"
    assert prepared_data_key(config.model_copy(update={"seed": 7})) != key, "config"
    assert prepared_data_key(config, chat_template="{{ messages }}") != key, "template"
    write_jsonl(path, ROWS[:-1])
    changed = prepared_data_key(config)
    assert changed != key, "the file's content"
    monkeypatch.setattr("grpo_core.data.cache.data_code_version", lambda: "other code")
    assert prepared_data_key(config) != changed, "the data code"


def test_the_data_code_version_covers_the_data_package():
    assert len(data_code_version()) == 64 and data_code_version() == data_code_version()


def test_a_prepared_folder_is_reused_until_its_source_changes(tmp_path, write_jsonl):
    # given: a source prepared once
    path = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    config = DataConfig(format="pairs", path=str(path), split=(0.5, 0.25, 0.25))
    first, fresh = prepared_data_dir(config, tmp_path / "cache")
    assert fresh and len(load_split(first, "train")) == 10
    # when: asked again, then after the file changed
    again, fresh_again = prepared_data_dir(config, tmp_path / "cache")
    write_jsonl(path, ROWS[:12])
    changed, fresh_changed = prepared_data_dir(config, tmp_path / "cache")
    # then: the first answer came from the cache, the second is a new folder with the new data
    assert (again, fresh_again) == (first, False)
    assert fresh_changed and changed != first
    assert len(load_split(changed, "train")) == 6, "12 pairs, half of them in train"
