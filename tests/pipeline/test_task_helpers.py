"""The pure parts of the tasks: comparison tables, champion choice, config files."""

from __future__ import annotations

import math

import pytest

from grpo_cli.config_files import ConfigFileError, apply_overrides, load_run_config
from tasks.comparison import best_method, comparison_rows, describe_gain, robust_gains
from tasks.registry import choose_champion


def run(method, seed, worst_loss, worst_acc, north_acc):
    return {
        "method": method,
        "seed": seed,
        "metrics": {
            "eval/test/worst_group/loss": worst_loss,
            "eval/test/worst_group/reward_accuracy": worst_acc,
            "eval/test/group/north/reward_accuracy": north_acc,
        },
    }


def test_comparison_rows_average_seeds_per_method():
    rows = comparison_rows(
        [
            run("ipo", 0, 2.0, 0.5, 0.9),
            run("ipo", 1, 4.0, 0.7, 0.7),
            run("gr_ipo", 0, 1.0, 0.8, 0.85),
        ],
        "test",
        {"north": "North"},
    )
    ipo = next(r for r in rows if r["method"] == "ipo")
    assert ipo["seeds"] == 2
    assert ipo["worst_group/loss"] == pytest.approx(3.0)
    assert ipo["worst_group/reward_accuracy"] == pytest.approx(0.6)
    assert ipo["group/north/reward_accuracy"] == pytest.approx(0.8)
    # two seeds 2.0 and 4.0: s = sqrt(2), se = 1, half-width t_{0.975, 1} = 12.7062
    assert ipo["ci95"]["worst_group/loss"] == pytest.approx(12.706204736174694)
    gr = next(r for r in rows if r["method"] == "gr_ipo")
    assert math.isnan(gr["ci95"]["worst_group/loss"]), "one seed: no interval"
    assert best_method(rows, "worst_group/loss") == "gr_ipo", "lower loss is better"
    assert best_method(rows, "worst_group/reward_accuracy") == "gr_ipo", "higher accuracy is better"


def group_run(method, seed, north, south):
    metrics = {
        "eval/test/group/north/reward_accuracy": north,
        "eval/test/group/south/reward_accuracy": south,
        "eval/test/average/reward_accuracy": (north + south) / 2,
    }
    return {"method": method, "seed": seed, "metrics": metrics}


def test_robust_gains_compare_the_group_the_plain_method_serves_worst():
    slugs = {"north": "North", "south": "South"}
    results = [
        group_run("ipo", 0, 0.9, 0.50), group_run("ipo", 1, 0.9, 0.52), group_run("ipo", 2, 0.9, 0.54),
        group_run("gr_ipo", 0, 0.8, 0.70), group_run("gr_ipo", 1, 0.8, 0.72), group_run("gr_ipo", 2, 0.8, 0.74),
    ]  # fmt: skip
    (gain,) = robust_gains(comparison_rows(results, "test", slugs), slugs)
    # South: 0.52 and 0.72, each +- t_{0.975, 2} * 0.02 / sqrt(3) = 0.0497: apart
    assert (gain["method"], gain["baseline"], gain["group"]) == ("gr_ipo", "ipo", "South")
    assert gain["baseline_mean"] == pytest.approx(0.52) and gain["mean"] == pytest.approx(0.72)
    assert gain["ci95"] == pytest.approx(4.302652729749462 * 0.02 / math.sqrt(3))
    assert gain["apart"] and gain["seeds"] == 3
    text = describe_gain(gain, "test")
    assert "South (the group IPO serves worst)" in text and "intervals over 3 seeds apart" in text
    assert "0.710 -> 0.760 (+0.050)" in text, text
    # and: overlapping intervals, or one seed, are said plainly
    close = [*results[:3], *(group_run("gr_ipo", s, 0.8, 0.53 + 0.02 * s) for s in range(3))]
    (overlap,) = robust_gains(comparison_rows(close, "test", slugs), slugs)
    assert not overlap["apart"] and "overlap: no clear difference" in describe_gain(overlap, "test")
    (single,) = robust_gains(comparison_rows([results[0], results[3]], "test", slugs), slugs)
    assert "one seed" in describe_gain(single, "test")


def test_champion_direction_comes_from_the_metric_and_ties_keep_the_older_version():
    versions = [
        {"version": "1", "metric": "eval/validation/worst_group/loss", "value": 0.9},
        {"version": "2", "metric": "eval/validation/worst_group/loss", "value": 0.4},
        {"version": "3", "metric": "eval/validation/worst_group/loss", "value": 0.4},
        {"version": "4", "metric": "eval/validation/worst_group/reward_accuracy", "value": 0.1},
    ]
    assert choose_champion(versions, "eval/validation/worst_group/loss")["version"] == "2"
    assert (
        choose_champion(versions, "eval/validation/worst_group/reward_accuracy")["version"] == "4"
    )
    assert choose_champion(versions, "eval/test/worst_group/loss") is None


def test_config_file_with_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: x\noptim:\n  max_steps: 5\n")
    config = load_run_config(
        path, ["optim.learning_rate=0.001", "seeds=[1, 2]", "methods=[dpo, gr_dpo]"]
    )
    assert (config.name, config.optim.max_steps, config.optim.learning_rate) == ("x", 5, 0.001)
    assert config.seeds == (1, 2) and config.methods == ("dpo", "gr_dpo")


def test_config_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        load_run_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigFileError, match="mapping"):
        load_run_config(listing)
    with pytest.raises(ConfigFileError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_run_config(tmp_path / "missing.yaml")


def test_the_demo_example_file_is_the_embedded_demo_config():
    from tasks.run_config import demo_config
    from tests.pipeline.conftest import REPO_ROOT

    assert load_run_config(REPO_ROOT / "examples" / "tiny_opinions.yaml") == demo_config()
