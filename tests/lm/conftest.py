"""Fixtures of the language-model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lm.helpers import opinion_frames, write_data_dir


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_data_dir(tmp_path / "data", opinion_frames({"Northland": 48, "Southland": 16}))
