"""Fixtures of the data tests: the shared real data (read in place, never copied), a writer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").exists():
            return parent
    raise RuntimeError("repository root (pyproject.toml) not found")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = _repo_root().parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def goqa_union_path(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "globalopinionqa_partial" / "goqa_partial_union.jsonl"
    if not path.exists():
        pytest.skip(f"GlobalOpinionQA union file {path} is absent")
    return path


@pytest.fixture(scope="session")
def hh_test_path(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "hh_rlhf_harmless_base_test" / "test.jsonl.gz"
    if not path.exists():
        pytest.skip(f"HH-RLHF harmless-base test file {path} is absent")
    return path


def _write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def write_jsonl():
    """``write_jsonl(path, rows)``: one JSON value per line; a str row is written as it is
    (for malformed lines). Returns the path."""
    return _write_jsonl
