"""End to end: the real experiment flow on a tiny config, asserting on what landed in MLflow."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from grpo_core.config import flatten
from grpo_core.methods import METHODS
from tests.pipeline.conftest import tiny_config

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def test_experiment_flow_logs_parent_children_metrics_and_champion(tmp_path, mlflow_store):
    from flows.experiment import experiment

    # Given a tiny config with two methods
    config = tiny_config(tmp_path / "outputs")
    # When the experiment flow runs
    result = experiment(config)
    client = MlflowClient(mlflow_store)
    experiment_id = client.get_experiment_by_name("pipeline-test").experiment_id
    runs = client.search_runs([experiment_id])
    parent = client.get_run(result["parent_run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]

    # Then the parent run holds the flattened config, the Prefect flow run and the report
    assert parent.data.params == flatten(config), "params must equal the flattened config"
    assert parent.data.tags["grpo.run_type"] == "experiment"
    assert parent.data.tags["prefect.flow_run_id"] == result["flow_run_id"]
    assert parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.json", "groups.json", "report"} <= artifacts
    report_files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/report.html" in report_files
    assert parent.inputs.dataset_inputs, "the dataset is logged as an MLflow input"
    profile = json.loads(parent.inputs.dataset_inputs[0].dataset.profile)
    assert set(profile["groups"]) == {"Northland", "Southland", "Eastland"}
    check_parent_headroom(client, parent, tmp_path / "outputs" / "data")

    # And one child per method, with per-step training metrics and per-group evaluation
    assert sorted(c.data.tags["grpo.method"] for c in children) == ["gr_ipo", "ipo"]
    slugs = json.loads(children[0].data.tags["grpo.group_slugs"])
    for child in children:
        metrics = child.data.metrics
        method = child.data.tags["grpo.method"]
        expected = {
            **flatten(config),
            "method": method,
            "seed": "0",
            "effective_learning_rate": str(config.learning_rate_for(method)),
        }
        assert child.data.params == expected
        history = client.get_metric_history(child.info.run_id, "train/loss")
        assert [m.step for m in history] == [1, 2, 3], "one train/loss per optimizer step"
        assert metrics["train/steps"] == 3.0 and metrics["train/stopped_early"] == 0.0
        for split in ("validation", "test"):
            for slug in slugs:
                assert f"eval/{split}/group/{slug}/loss" in metrics
                assert f"eval/{split}/group/{slug}/reward_accuracy" in metrics
                assert f"train/group_weight/{slug}" in metrics
            for key in (
                "worst_group/loss",
                "worst_group/reward_accuracy",
                "average/loss",
                "imbalance/loss",
            ):
                assert f"eval/{split}/{key}" in metrics, f"missing eval/{split}/{key}"
        assert "checkpoint" in {a.path for a in client.list_artifacts(child.info.run_id)}

    # And the parent run compares with other flow runs; its Prefect artifacts' links open
    from tests.pipeline.test_flow_comparison import check_parent_summary, check_prefect_artifacts

    check_parent_summary(client, result, config.eval.splits)
    check_prefect_artifacts(result, "validation")

    # And 'champion' points at the version with the best worst-group validation reward accuracy
    metric = config.tracking.champion_metric
    versions = client.search_model_versions("name='pipeline-test-policy'")
    assert len(versions) == 2
    values = {v.version: client.get_run(v.run_id).data.metrics[metric] for v in versions}
    best = max(values.values())
    champion = client.get_model_version_by_alias("pipeline-test-policy", "champion")
    assert values[champion.version] == best
    assert champion.version == min(v for v, value in values.items() if value == best), (
        "ties keep the older version"
    )

    # And the evaluate flow (the nightly job) evaluates models:/pipeline-test-policy@champion per group
    from flows.evaluate import EvaluationConfig, evaluate

    fresh = config.data.model_copy(update={"seed": 1})
    evaluation = evaluate(
        EvaluationConfig(name="pipeline-test", data=fresh, output_dir=str(tmp_path / "outputs"))
    )
    run = client.get_run(evaluation["run_id"])
    assert run.data.tags["grpo.run_type"] == "evaluation"
    assert run.data.tags["grpo.model_uri"] == "models:/pipeline-test-policy@champion"
    assert run.data.tags["grpo.source_run_id"] == champion.run_id
    for slug in slugs:
        assert f"eval/test/group/{slug}/reward_accuracy" in run.data.metrics
        assert f"drift/test/group/{slug}/reward_accuracy" in run.data.metrics, (
            "change since training, per group"
        )


def test_a_failing_flow_marks_its_mlflow_runs_failed(tmp_path, mlflow_store):
    from flows.experiment import experiment
    from grpo_core.data.config import DataConfig

    # Given a config whose data file does not exist
    config = tiny_config(
        tmp_path / "outputs",
        name="failing-test",
        data=DataConfig(format="pairs", path=str(tmp_path / "missing.jsonl")),
    )
    # When the flow runs, it fails
    with pytest.raises(Exception, match="missing.jsonl"):
        experiment(config)
    # Then its parent run is FAILED, not left RUNNING
    client = MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("failing-test").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_run_that_fails_is_marked_with_its_reason_and_the_others_go_on(tmp_path, mlflow_store):
    from flows.experiment import experiment

    # Given a config where ipo's learning rate overflows and gr_ipo's does not
    config = tiny_config(
        tmp_path / "outputs", name="partly-failing", method_learning_rates={"ipo": 1e30}
    )
    # When the flow runs
    result = experiment(config)
    # Then it completes with gr_ipo, and says which run failed and why
    (failure,) = result["failed"]
    assert (failure["method"], failure["seed"]) == ("ipo", 0)
    assert "is not finite" in failure["reason"] and "step" in failure["reason"]
    assert [row["method"] for row in result["comparison"]["rows"]] == ["gr_ipo"]
    client = MlflowClient(mlflow_store)
    failed = client.get_run(failure["run_id"])
    assert failed.info.status == "FAILED" and failed.data.tags["grpo.failure"] == failure["reason"]
    assert client.get_run(result["parent_run_id"]).info.status == "FINISHED"
    versions = client.search_model_versions("name='partly-failing-policy'")
    assert [v.tags["grpo.method"] for v in versions] == ["gr_ipo"], "nothing of the failed run"
    (first,) = versions
    assert first.tags["grpo.promotion"] == "promoted", "the first finite candidate"
    assert first.tags["grpo.promotion_reason"].startswith("first champion")

    # When the experiment runs again, healthy, against that champion
    again = experiment(config.model_copy(update={"method_learning_rates": {}}))
    # Then every new version carries its decision against the champion, promoted or not
    decisions = {d["method"]: d for d in again["champion"]["decisions"]}
    assert set(decisions) == {"ipo", "gr_ipo"}
    for decision in decisions.values():
        assert decision["outcome"] in ("promoted", "passed", "rejected")
        assert decision["champion_value"] == float(first.tags["grpo.champion_metric_value"])
        assert len(decision["interval"]) == 2 and set(decision["group_changes"]) == set(
            json.loads(client.get_run(first.run_id).data.tags["grpo.group_slugs"])
        )
    alias = client.get_model_version_by_alias("partly-failing-policy", "champion")
    for version in client.search_model_versions("name='partly-failing-policy'"):
        if version.version == first.version:
            continue
        decision = decisions[version.tags["grpo.method"]]
        assert decision["reason"] in version.tags["grpo.promotion_reason"]
        assert version.description.startswith(f"{version.tags['grpo.method']}: ")
        assert (version.tags["grpo.promotion"] == "promoted") == (version.version == alias.version)
    if all(d["outcome"] != "promoted" for d in decisions.values()):
        assert alias.version == first.version, "no evidence, no new champion"

    # And the decisions are a Prefect artifact of the flow run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["champion-promotion"]))
        )
    assert any("| gr_ipo |" in str(a.data) for a in artifacts)


def test_synthetic_flow_logs_one_child_per_method_with_its_curve(tmp_path, mlflow_store):
    from flows.synthetic import SyntheticBenchmark, synthetic

    result = synthetic(
        SyntheticBenchmark(
            name="synthetic-test", settings=("uneven-imbalanced",), seeds=2, iterations=40
        )
    )
    client = MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("synthetic-test").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result["parent_run_id"]]
    assert sorted(c.data.tags["grpo.method"] for c in children) == sorted(METHODS), (
        "the six methods and the four pair-robust baselines"
    )
    for child in children:
        assert child.info.status == "FINISHED"
        curve = client.get_metric_history(child.info.run_id, "synthetic/worst_val_group_loss")
        assert [m.step for m in curve] == [40]
        assert {"synthetic/max_val_group_loss/mean", "synthetic/max_reward_error/ci95"} <= set(
            child.data.metrics
        )
    assert result["results"]["uneven-imbalanced"]["gr_dpo"]["final_group_weights"][0] > 0.5


def test_synthetic_flow_with_a_chi_sweep_logs_one_child_per_chi_and_its_front(
    tmp_path, mlflow_store
):
    from flows.synthetic import SyntheticBenchmark, synthetic

    result = synthetic(
        SyntheticBenchmark(
            name="synthetic-pareto-test", settings=("uneven-imbalanced",), seeds=2,
            iterations=40, methods=("gr_dpo",), pareto_chis=(0.0, 1.0),
        )
    )  # fmt: skip
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("synthetic-pareto-test").experiment_id
    swept = client.search_runs([experiment], "tags.`grpo.sweep_point` LIKE 'group_weights%'")
    assert sorted(r.data.tags["grpo.sweep_point"] for r in swept) == [
        "group_weights.robust_mix=0",
        "group_weights.robust_mix=1",
    ]
    rows = result["pareto"]["uneven-imbalanced"]["rows"]
    for run in swept:
        chi = float(run.data.tags["grpo.sweep_point"].rsplit("=", 1)[1])
        (row,) = [r for r in rows if r["chi"] == chi]
        assert run.data.metrics["synthetic/average_val_group_loss/mean"] == pytest.approx(
            row["average_val_group_loss"]["mean"]
        )
    # chi = 1 is the plain group-robust run of the benchmark: the same seeds give the same numbers
    plain = result["results"]["uneven-imbalanced"]["gr_dpo"]["max_val_group_loss"]["mean"]
    assert [r["worst_val_group_loss"]["mean"] for r in rows if r["chi"] == 1.0] == [
        pytest.approx(plain)
    ]


def test_leave_one_group_out_trains_without_each_group_and_reports_the_unseen_table(
    tmp_path, mlflow_store
):
    from flows.experiment import experiment

    config = tiny_config(
        tmp_path / "outputs", methods=("gr_ipo",), leave_one_group_out=True,
        tracking=tiny_config(tmp_path).tracking.model_copy(update={"register_models": False}),
    )  # fmt: skip
    result = experiment(config)
    client = MlflowClient(mlflow_store)
    kids = client.search_runs(
        [result["experiment_id"]], f"tags.`mlflow.parentRunId` = '{result['parent_run_id']}'"
    )
    held = sorted(k.data.tags.get("grpo.held_out_group", "") for k in kids)
    groups = list(result["data"]["groups"])
    assert held == sorted(["", *groups]), "one run on every group, one without each group"
    for kid in kids:  # every run is evaluated on every group, the one it never saw included
        assert kid.info.status == "FINISHED"
        assert (
            len(
                [
                    k
                    for k in kid.data.metrics
                    if k.startswith("eval/test/group/") and k.endswith("/loss")
                ]
            )
            == 3
        )
    table = result["unseen_groups"]["tables"]["reward_accuracy"]
    assert sorted(row["group"] for row in table) == sorted(groups)
    assert all(row["seeds"] == 1 and row["seen"] is not None for row in table)
    assert [r["method"] for r in result["comparison"]["rows"]] == ["gr_ipo"]
    page = Path(result["report"]["html"]).read_text(encoding="utf-8")
    assert "Groups never seen in training" in page


def check_parent_headroom(client, parent, data_root):
    """The parent run holds the headroom of the data it trained on: ``headroom/<split>/...``
    metrics and ``headroom.json``, equal to what the prepared folder gives."""
    from grpo_core.data.headroom import prepared_headroom
    from grpo_core.data.storage import load_groups

    (folder,) = [p for p in data_root.iterdir() if p.is_dir()]
    expected = prepared_headroom(folder)
    slugs = load_groups(folder).slugs
    logged = {k: v for k, v in parent.data.metrics.items() if k.startswith("headroom/")}
    assert set(expected) == {"train", "validation", "test"}
    for split in ("train", "validation", "test"):
        bound = expected[split]
        key = f"headroom/{split}/worst_group/reward_accuracy_"
        assert logged[key + "upper"] == pytest.approx(bound.worst_group_upper)
        assert logged[key + "lower"] == pytest.approx(bound.worst_group_lower)
        assert logged[f"headroom/{split}/average/reward_accuracy_upper"] == pytest.approx(
            bound.average_upper
        )
        assert logged[f"headroom/{split}/data/shared_prompts"] == bound.shared_prompts
        for slug, name in slugs.items():
            assert logged[f"headroom/{split}/group/{slug}/reward_accuracy"] == pytest.approx(
                bound.group_accuracy_lower[name]
            )
    with tempfile.TemporaryDirectory() as out:
        document = json.loads(
            Path(client.download_artifacts(parent.info.run_id, "headroom.json", out)).read_text()
        )
    assert document == json.loads(json.dumps({s: b.summary() for s, b in expected.items()}))
