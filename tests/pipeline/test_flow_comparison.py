"""Two flow runs compare on their parent runs: each method's headline metrics over seeds, the
per-group table over seeds, an experiment that opens on its runs, and Prefect links that open."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
from mlflow import MlflowClient

from grpo_core import names
from tasks.comparison import PER_GROUP_COLUMNS, seed_summary
from tasks.runs import run_link

T_975_1 = 12.706204736174707
"""t_{0.975} with one degree of freedom (two seeds)."""


def test_seed_summary_gives_means_and_interval_bounds_over_seeds():
    # Given two seeds of one method and one seed of another, on one split with one group
    results = [
        {"method": "gr_ipo", "metrics": {"eval/test/worst_group/loss": 1.0,
                                         "eval/test/group/north/reward_accuracy": 0.5}},
        {"method": "gr_ipo", "metrics": {"eval/test/worst_group/loss": 3.0,
                                         "eval/test/group/north/reward_accuracy": 0.75}},
        {"method": "ipo", "metrics": {"eval/test/worst_group/loss": 2.0}},
    ]  # fmt: skip
    # When they are summarised for the parent run
    metrics, rows = seed_summary(results, ["test"], {"north": "Northland"})
    # Then the mean is logged with the 95% interval's bounds: 2 +- t * std(1, 3) / sqrt(2) = 2 +- t
    assert metrics["summary/gr_ipo/test/worst_group/loss/mean"] == 2.0
    assert metrics["summary/gr_ipo/test/worst_group/loss/lo"] == pytest.approx(2.0 - T_975_1)
    assert metrics["summary/gr_ipo/test/worst_group/loss/hi"] == pytest.approx(2.0 + T_975_1)
    # And one seed gives a mean and no bounds (one seed says nothing about the noise)
    assert {k for k in metrics if k.startswith("summary/ipo/")} == {
        "summary/ipo/test/worst_group/loss/mean"
    }
    assert metrics["summary/ipo/test/worst_group/loss/mean"] == 2.0
    # And the per-group table holds the group's name, its metric and the seeds used
    (row,) = rows
    half = T_975_1 * 0.25 / 2**0.5 / 2**0.5  # std(0.5, 0.75) = 0.25 / sqrt(2)
    assert list(row) == list(PER_GROUP_COLUMNS)
    assert row["method"] == "gr_ipo" and row["split"] == "test" and row["group"] == "Northland"
    assert row["metric"] == "reward_accuracy" and row["seeds"] == 2
    assert row["mean"] == 0.625
    assert row["lo"] == pytest.approx(0.625 - half) and row["hi"] == pytest.approx(0.625 + half)


def test_run_links_open_the_mlflow_ui_for_a_server_and_the_real_file_for_a_local_store(tmp_path):
    # Given a server store (its artifact URIs name no place on this disk)
    served = run_link(
        "http://127.0.0.1:5000/", "1", "abc", "mlflow-artifacts:/1/abc/artifacts", "report/r.html"
    )
    # Then the link is the MLflow UI's page of the artifact
    assert served == "http://127.0.0.1:5000/#/experiments/1/runs/abc/artifacts/report/r.html"
    assert run_link("https://m.example", "1", "abc", "mlflow-artifacts:/1/abc/artifacts") == (
        "https://m.example/#/experiments/1/runs/abc"
    )
    # Given a local store whose artifacts are a folder (as a path or a file:// URI)
    report = tmp_path / "mlartifacts" / "1" / "abc" / "artifacts" / "report" / "r.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    folder = report.parents[1]
    for artifact_uri in (str(folder), folder.as_uri()):
        link = run_link(
            f"sqlite:///{tmp_path}/mlflow.db", "1", "abc", artifact_uri, "report/r.html"
        )
        # Then the link is the file:// URI of the file, and the file is there
        assert link == report.as_uri()
        assert Path(url2pathname(urlparse(link).path)).read_text() == "<html></html>"
    # And an object store's URI is its own link
    assert run_link("sqlite:///x.db", "1", "abc", "s3://b/1/abc/artifacts", "report/r.html") == (
        "s3://b/1/abc/artifacts/report/r.html"
    )


def test_grpo_turns_off_mlflow_download_progress_bars_unless_the_user_chose(
    tmp_path, monkeypatch, capfd
):
    from grpo_cli.main import main

    # Given a store with one logged artifact and no choice of the user's
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(
        client.create_experiment("bars", artifact_location=(tmp_path / "artifacts").as_uri())
    )
    (tmp_path / "a.txt").write_text("a")
    client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "")  # restored after the test
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    # When grpo starts (here: with no command) and an artifact is downloaded
    assert main([]) == 0
    capfd.readouterr()
    client.download_artifacts(run.info.run_id, "a.txt", str(tmp_path))
    # Then no progress bar is drawn
    assert "Downloading artifacts" not in capfd.readouterr().err
    # And a user's own setting stays
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    main([])
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"


def check_parent_summary(client: MlflowClient, result: dict, splits: tuple[str, ...]) -> None:
    """What an experiment flow run leaves for comparing flow runs (called by the flow test in
    ``test_experiment_flow.py`` on its run, so that no flow runs twice for it)."""
    parent = client.get_run(result["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{names.PARENT_RUN}` = '{parent.info.run_id}'",
    )
    # The experiment opens on its training runs in MLflow 3's UI
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags[names.EXPERIMENT_KIND] == names.MODEL_TRAINING_KIND
    # The parent run holds each method's headline metrics over its seeds, from the children
    by_method: dict[str, list[dict[str, float]]] = {}
    for child in children:
        by_method.setdefault(child.data.tags[names.METHOD], []).append(child.data.metrics)
    expected = {}
    for method, runs in by_method.items():
        assert len(runs) == 1, "the tiny config trains one seed: the mean is the child's value"
        for split in splits:
            for aggregate in names.HEADLINE:
                child_key = names.eval_key(split, *names.split_aggregate(aggregate))
                expected[names.summary_key(method, split, aggregate, "mean")] = runs[0][child_key]
    summary = {k: v for k, v in parent.data.metrics.items() if names.SummaryKey.parse(k)}
    assert summary == expected, (
        "one mean per method, split and headline metric; no bounds at 1 seed"
    )
    # And the per-group table over seeds, one row per method, split, group and metric
    slugs = json.loads(children[0].data.tags[names.GROUP_SLUGS])
    path = client.download_artifacts(parent.info.run_id, names.PER_GROUP_SUMMARY)
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert rows and list(rows[0]) == list(PER_GROUP_COLUMNS)
    for row in rows:
        (metrics,) = by_method[row["method"]]
        slug = {name: slug for slug, name in slugs.items()}[row["group"]]
        value = metrics[names.eval_key(row["split"], "group", row["metric"], slug)]
        assert float(row["mean"]) == pytest.approx(value, rel=1e-12)
        assert (row["lo"], row["hi"], row["seeds"]) == ("", "", "1")
    assert {(r["method"], r["split"], r["group"]) for r in rows} == {
        (m, s, g) for m in by_method for s in splits for g in slugs.values()
    }


def check_prefect_artifacts(result: dict, champion_split: str) -> None:
    """The flow run's Prefect artifacts: a report link that opens, a summary naming its splits."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as prefect:
        found = {
            a.key: a
            for a in prefect.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["fairness-report", "fairness-summary"]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[result["flow_run_id"]]),
                )
            )
        }
    shown = str(found["fairness-report"].data)  # Prefect keeps a link as [text](link)
    assert shown.startswith("[Group fairness report (HTML)](file:///"), shown
    link = shown.partition("](")[2].removesuffix(")")
    html = Path(url2pathname(urlparse(link).path))
    assert html.is_file() and html.name == "report.html", f"{link} must name the logged report"
    assert "mlartifacts" in html.parts
    summary = str(found["fairness-summary"].data)
    assert f"({link})" in summary
    assert "# Group fairness on the test split" in summary
    assert f"the champion is chosen on the **{champion_split}** split" in summary
    assert "Best worst-group reward accuracy on test: **" in summary
    assert (
        f"Best worst-group reward accuracy on {champion_split} (the champion rule's metric and "
        "split): **"
    ) in summary


def test_experiments_open_on_their_training_runs_in_the_mlflow_ui(tmp_path):
    from tasks import tracking

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # Given an experiment the project creates, one made before (no kind), one of another kind
    made = tracking.experiment_id(client, "made")
    older = client.create_experiment("older")
    other = client.create_experiment("other", tags={names.EXPERIMENT_KIND: "genai_development"})
    # When the project uses them
    for name in ("older", "other"):
        tracking.experiment_id(client, name)
    # Then its own and the older one are model-training experiments; another kind is kept
    kinds = {
        e: client.get_experiment(e).tags.get(names.EXPERIMENT_KIND) for e in (made, older, other)
    }
    assert kinds == {
        made: "custom_model_development",
        older: "custom_model_development",
        other: "genai_development",
    }


def test_the_fairness_summary_names_its_split_and_the_champion_rules_best():
    from tasks.records import Comparison
    from tasks.reporting import _markdown

    def rows(ipo: float, gr_ipo: float) -> list[dict]:
        key = "worst_group/reward_accuracy"
        return [
            {"method": m, "seeds": 1, key: v, "ci95": {key: float("nan")}}
            for m, v in (("ipo", ipo), ("gr_ipo", gr_ipo))
        ]

    # Given ipo best on test and gr_ipo best on validation, where the champion is chosen
    test = Comparison(
        split="test",
        rows=rows(0.9, 0.6),
        gains=[],
        best_worst_group_loss=None,
        best_worst_group_reward_accuracy="ipo",
    )
    validation = test.model_copy(update={"split": "validation", "rows": rows(0.5, 0.7)})
    # When the summary is written
    text = _markdown(test, "file:///r.html", validation, names.CHAMPION_METRICS[0])
    # Then it says which split each statement speaks of, and names the champion rule's best
    lines = [line for line in text.splitlines() if line]
    assert lines[0] == "# Group fairness on the test split"
    assert lines[2] == (
        "Every number below is on the **test** split; the champion is chosen on the "
        "**validation** split (worst-group reward accuracy), never on test."
    )
    assert lines[-2:] == [
        "Best worst-group reward accuracy on test: **ipo**.",
        "Best worst-group reward accuracy on validation (the champion rule's metric and split): "
        "**gr_ipo**.",
    ]
