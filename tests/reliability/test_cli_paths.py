"""Output paths are checked before any work: an existing file is replaced, anything else that cannot
be written is one line naming the option."""

from __future__ import annotations

import pytest

from grpo_cli.paths import writable_file, writable_folder


def test_an_existing_file_or_a_new_one_in_new_folders_can_be_written(tmp_path):
    (tmp_path / "result.json").write_text("{}")
    writable_file(tmp_path / "result.json", "--json")  # written again by a second run
    writable_file(tmp_path / "new" / "deeper" / "result.json", "--json")
    writable_folder(tmp_path, "--out")
    writable_folder(tmp_path / "new" / "out", "--out")


@pytest.mark.parametrize(
    ("check", "target", "message"),
    [
        (writable_file, "folder", "--json {p}/folder: is a folder; give the path of a file"),
        (
            writable_file,
            "file/result.json",
            "--json {p}/file/result.json: {p}/file is a file, not a folder",
        ),
        (writable_folder, "file", "--json {p}/file: is a file; give the path of a folder"),
        (writable_folder, "file/out", "--json {p}/file/out: {p}/file is a file, not a folder"),
    ],
)
def test_what_cannot_be_written_is_named_with_its_option(tmp_path, check, target, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError) as refused:
        check(tmp_path / target, "--json")
    assert str(refused.value) == message.format(p=tmp_path)
