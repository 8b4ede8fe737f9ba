"""The pure parts of the tasks: comparison tables, champion promotion, config files."""

from __future__ import annotations

import math

import pytest

from grpo_cli.config_files import ConfigFileError, apply_overrides, load_run_config
from grpo_core.promotion import Decision
from tasks.comparison import best_method, comparison_rows, describe_gain, robust_gains
from tasks.records import ChildResult
from tasks.registry import best_seed, choose, decision_table, numbers_of


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


def test_of_the_candidates_that_pass_the_best_is_promoted_and_ties_keep_the_first():
    passed = Decision(True, "ok", 0.6)
    decisions = {
        "ipo": Decision(True, "ok", 0.5),
        "gr_ipo": passed,
        "dpo": Decision(False, "no", 0.9),
        "gr_dpo": Decision(True, "ok", 0.6),
    }
    assert choose(decisions, higher_is_better=True) == "gr_ipo"
    assert choose(decisions, higher_is_better=False) == "ipo"
    assert choose({"dpo": Decision(False, "no", 0.9)}, True) is None


def test_the_served_seed_is_the_best_finite_one():
    runs = [
        ChildResult(
            method="dpo",
            seed=seed,
            run_id=f"r{seed}",
            run_dir=f"d{seed}",
            steps=3,
            timing={},
            metrics={},
            value=value,
        )  # fmt: skip
        for seed, value in enumerate([0.4, math.nan, 0.7, None])
    ]
    assert best_seed(runs, higher_is_better=True).seed == 2
    assert best_seed(runs, higher_is_better=False).seed == 0


def test_decision_numbers_are_json_safe_and_the_table_has_a_row_per_method():
    rejected = Decision(False, "1 of its 4 evaluation values are not finite", math.nan)
    promoted = Decision(True, "better", 0.7, 0.5, 0.2, (0.1, 0.3), {"a": 0.0, "b": 0.2})
    assert numbers_of(rejected) == {}
    assert numbers_of(promoted) == {
        "candidate_value": 0.7, "champion_value": 0.5, "improvement": 0.2,
        "interval": [0.1, 0.3], "group_changes": {"a": 0.0, "b": 0.2},
    }  # fmt: skip
    table = decision_table(
        {"ipo": rejected, "gr_ipo": promoted}, {"ipo": "rejected", "gr_ipo": "promoted"}, "m"
    )
    assert "| gr_ipo | promoted | 0.7 | 0.5 | +0.2 | [0.1, 0.3] | better |" in table
    assert "| ipo | rejected | nan |" in table


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


def test_a_group_is_degraded_when_its_metric_got_worse_by_more_than_the_threshold():
    from tasks.alerts import degraded_groups, summary

    drift = {
        "drift/test/group/north/reward_accuracy": -0.05,
        "drift/test/group/south/reward_accuracy": -0.25,
        "drift/validation/group/south/reward_accuracy": -0.3,
        "drift/test/group/east/reward_accuracy": 0.4,  # better: never an alert
        "drift/test/group/north/loss": 2.0,
        "drift/test/worst_group/reward_accuracy": -0.25,  # not a group
    }
    assert degraded_groups(drift, "reward_accuracy", 0.1) == {"south": 0.3}
    assert degraded_groups(drift, "reward_accuracy", 0.04) == {"south": 0.3, "north": 0.05}
    assert degraded_groups(drift, "loss", 1.0) == {"north": 2.0}, "a loss is worse upwards"
    assert degraded_groups(drift, "loss", 2.0) == {}, "the threshold itself is no alert"
    assert (
        summary({"south": 0.3}, {"south": "Southland"}, "reward_accuracy")
        == "1 group(s) worse than at training: Southland reward_accuracy -0.3."
    )


def test_the_automation_in_the_repository_listens_for_the_event_the_evaluation_emits():
    import yaml

    from grpo_core import names
    from tasks.alerts import AUTOMATION_FILE

    spec = yaml.safe_load(AUTOMATION_FILE.read_text())
    assert spec["trigger"]["expect"] == [names.DRIFT_EVENT]
    assert spec["trigger"]["match"]["prefect.resource.id"] == names.DRIFT_RESOURCE_PREFIX + "*"
    assert [a["type"] for a in spec["actions"]] == ["send-notification"]


def test_a_versions_checkpoint_is_its_runs_for_a_logged_model_and_its_source_otherwise(tmp_path):
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from tasks.registry import checkpoint_uri

    # Given a run in a store
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("versions", (tmp_path / "a").as_uri()))
    artifacts = run.info.artifact_uri
    # Then a version whose source is a logged pyfunc model evaluates the run's raw checkpoint
    logged = SimpleNamespace(source="models:/m-123", run_id=run.info.run_id)
    assert checkpoint_uri(client, logged) == f"{artifacts}/checkpoint"
    # And a version registered from a checkpoint folder (earlier versions, or by hand) is that folder
    folder = SimpleNamespace(source=f"{artifacts}/checkpoint-damaged", run_id=run.info.run_id)
    assert checkpoint_uri(client, folder) == f"{artifacts}/checkpoint-damaged"
