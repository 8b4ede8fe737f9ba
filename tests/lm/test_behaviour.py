"""Seeded behaviour of the default demo (examples/tiny_opinions.yaml): GR-IPO versus IPO."""

from __future__ import annotations

from pathlib import Path

import yaml

from grpo_core.data.prepare import prepare_dataset
from grpo_core.lm.training import train_method
from tasks.run_config import RunConfig

DEMO = Path(__file__).resolve().parents[2] / "examples" / "tiny_opinions.yaml"


def test_gr_ipo_serves_the_worst_group_at_least_as_well_as_ipo_on_the_demo(tmp_path):
    # given: the demo config (tiny model, built-in opinion survey), seed 0
    config = RunConfig.model_validate(yaml.safe_load(DEMO.read_text()))
    prepare_dataset(config.data, tmp_path / "data")
    # when
    metrics = {
        method: train_method(
            config.recipe(method),
            method,
            0,
            tmp_path / "data",
            tmp_path / method,
            device="cpu",
            cache_dir=tmp_path / "cache",
        )
        for method in ("ipo", "gr_ipo")
    }
    # then: the worst group's test reward accuracy is not lower and its test loss is lower
    ipo, gr = metrics["ipo"], metrics["gr_ipo"]
    key = "eval/test/worst_group/reward_accuracy"
    assert gr[key] >= ipo[key], (
        f"worst-group reward accuracy: gr_ipo {gr[key]:.3f} < ipo {ipo[key]:.3f}"
    )
    key = "eval/test/worst_group/loss"
    assert gr[key] < ipo[key], f"worst-group loss: gr_ipo {gr[key]:.2f} >= ipo {ipo[key]:.2f}"
    assert gr["eval/test/imbalance/loss"] < ipo["eval/test/imbalance/loss"]
