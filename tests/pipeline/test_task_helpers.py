"""The pure parts of the tasks: comparison tables, champion choice, config files."""

from __future__ import annotations

import pytest

from grpo_cli.config_files import ConfigFileError, apply_overrides, load_run_config
from tasks.comparison import best_method, comparison_rows
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
    assert ipo["worst_group/loss"] == 3.0
    assert ipo["worst_group/reward_accuracy"] == 0.6
    assert ipo["group/north/reward_accuracy"] == 0.8
    assert best_method(rows, "worst_group/loss") == "gr_ipo", "lower loss is better"
    assert best_method(rows, "worst_group/reward_accuracy") == "gr_ipo", "higher accuracy is better"


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
