"""A prepared dataset with one group left out (leave-one-group-out training)."""

from __future__ import annotations

import json

import pytest

from grpo_core.data import DataConfig
from grpo_core.data.config import OpinionGeneratorConfig
from grpo_core.data.holdout import without_group
from grpo_core.data.prepare import prepare_dataset
from grpo_core.data.storage import load_groups, load_split


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "full"
    prepare_dataset(DataConfig(synthetic=OpinionGeneratorConfig(num_questions=60)), out)
    return out


def test_every_split_loses_the_group_and_the_rest_is_unchanged(prepared, tmp_path):
    full = load_groups(prepared)
    left = without_group(prepared, tmp_path / "without", full.names[1])
    groups = load_groups(left)
    assert groups.names == (full.names[0], full.names[2])
    assert full.names[1] not in groups.slugs.values()
    for split in ("train", "validation", "test"):
        before, after = load_split(prepared, split), load_split(left, split)
        kept = before[before["group"] != full.names[1]]
        assert list(after["pair_id"]) == list(kept["pair_id"])
        assert groups.counts[full.names[2]][split] == full.counts[full.names[2]][split]
    summary = json.loads((left / "summary.json").read_text())
    assert summary["held_out_group"] == full.names[1]
    assert list(summary["groups"]) == list(groups.names)
    assert without_group(prepared, left, full.names[1]) == left, "written once, then kept"


def test_an_unknown_group_or_too_few_groups_are_refused(prepared, tmp_path):
    with pytest.raises(ValueError, match="no group 'Atlantis'"):
        without_group(prepared, tmp_path / "x", "Atlantis")
    two = tmp_path / "two"
    config = DataConfig(
        synthetic=OpinionGeneratorConfig(num_groups=2, group_sizes=(1.0, 0.5), num_questions=60)
    )
    prepare_dataset(config, two)
    with pytest.raises(ValueError, match="three or more groups"):
        without_group(two, tmp_path / "y", load_groups(two).names[0])
