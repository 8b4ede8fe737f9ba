"""The demo's claim (examples/tiny_opinions.yaml), checked on three of its five seeds: plain IPO
underserves the minority, and GR-IPO raises that group's test reward accuracy with 95% intervals
over seeds that do not overlap (the verdict `grpo demo` prints, from the same function)."""

from __future__ import annotations

import pytest

from grpo_core.data.prepare import prepare_dataset
from grpo_core.data.storage import load_groups
from grpo_core.lm.training import train_method
from tasks.comparison import comparison_rows, robust_gains
from tasks.run_config import demo_config

pytestmark = pytest.mark.slow  # the demo's model, two methods x three seeds: over a minute


def test_gr_ipo_lifts_the_group_ipo_serves_worst_with_intervals_apart(tmp_path):
    # given: the demo config (tiny model, built-in opinion survey), seeds 0-2
    config = demo_config()
    prepare_dataset(config.data, tmp_path / "data")
    slugs = load_groups(tmp_path / "data").slugs
    # when
    results = [
        {
            "method": method,
            "seed": seed,
            "metrics": train_method(
                config.recipe(method),
                method,
                seed,
                tmp_path / "data",
                tmp_path / f"{method}-{seed}",
                device="cpu",
                cache_dir=tmp_path / "cache",
                final_splits=("test",),
            ),  # fmt: skip
        }
        for method in config.methods
        for seed in (0, 1, 2)
    ]
    (gain,) = robust_gains(comparison_rows(results, "test", slugs), slugs)
    # then: the minority is the group IPO serves worst, and GR-IPO lifts it beyond the noise
    assert gain["group"] == "Southland", f"IPO served {gain['group']} worst"
    assert gain["mean"] - gain["baseline_mean"] > 0.05, gain
    assert gain["apart"], f"95% intervals overlap: {gain}"
