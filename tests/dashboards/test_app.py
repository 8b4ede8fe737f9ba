"""The Streamlit page run headless (streamlit's AppTest) against real MLflow stores, missing pieces included."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from tests.dashboards import store as layout

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


def run_app(monkeypatch, uri: str, **query: str) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.query_params.update(query)
    return app.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_page_shows_every_view_of_a_complete_experiment(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"])
    assert not app.exception, f"expected no exception, got {[e.message for e in app.exception]}"
    assert [s.value for s in app.subheader] == [
        "Per group",
        "Over training",
        "Group weights",
        "Across seeds",
    ]
    assert len(app.get("plotly_chart")) == 5, "group bars, curves, weights, gaps, evaluation bars"
    assert app.sidebar.selectbox[0].value == layout.EXPERIMENT, (
        "the experiment with the latest run is preselected"
    )
    assert app.sidebar.multiselect[0].value == [store["parent"]], (
        "the latest flow run is preselected"
    )
    assert "gr_ipo better" in texts(app.markdown)
    assert not app.info, f"no friendly notes expected, got {texts(app.info)}"
    # beside the per-group bars: each method's worst group against what a group-blind policy can reach
    assert (
        "worst group: ipo 0.24, gr_ipo 0.43 of a possible 0.81 (a group-blind policy can reach "
        "0.81..0.82 on the test split)" in texts(app.caption)
    )
    headroom = [d.value for d in app.dataframe if "group-blind policy" in d.value.columns]
    assert [list(t.iloc[0]) for t in headroom] == [
        ["worst group", "0.237", "0.430", "0.812..0.817"]
    ]


def test_filters_narrow_the_runs(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"])
    app.sidebar.multiselect[1].set_value(["gr_ipo"]).run()
    assert not app.exception
    assert "No pair of comparable methods" in texts(app.info), "a single method has no gap to show"


def test_synthetic_experiment_shows_the_paper_layout(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"], experiment=layout.SYNTHETIC_EXPERIMENT)
    assert not app.exception
    assert [h.value for h in app.header] == ["Synthetic benchmark"]
    assert len(app.get("plotly_chart")) == 2, "the benchmark, and the one chi sweep"
    assert len(app.dataframe[0].value) == 12, "two settings x six methods (the sweep apart)"
    assert list(app.dataframe[1].value["pareto"]) == [True, True, False, True]


def test_sweep_experiment_shows_worst_group_against_average(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"], experiment=layout.SWEEP_EXPERIMENT)
    assert not app.exception, [e.message for e in app.exception]
    assert [h.value for h in app.header] == ["Sweeps: worst group against average"]
    assert "evaluated on validation yet" in texts(app.info), "the store has test metrics only"
    app.radio[0].set_value("test").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 1, "one Pareto figure for the one method"
    table = app.dataframe[0].value
    assert list(table["worst"].round(3)) == [0.92, 0.81, 0.72]
    assert list(table["pareto"]) == [True, True, True]


def test_leave_one_group_out_runs_are_a_table_of_their_own(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"], experiment=layout.UNSEEN_EXPERIMENT)
    assert not app.exception, [e.message for e in app.exception]
    headers = [h.value for h in app.header]  # the sidebar's "Training runs" among them
    assert "Groups never seen in training" in headers and "Training runs" in headers
    table = app.dataframe[-1].value
    assert len(table) == 3, "one row per group left out"
    assert list(table["worse_unseen"].round(6)) == [0.2, 0.2, 0.2]


def test_a_flow_run_without_runs_yet(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"], experiment=layout.PARTIAL_EXPERIMENT)
    assert not app.exception
    assert app.sidebar.multiselect[0].value == [store["just_started"]], "the latest flow run"
    assert "may still be starting" in texts(app.info)
    app.sidebar.multiselect[0].set_value([store["partial_parent"]]).run()
    assert not app.exception
    assert "still in progress" in texts(app.info), "the other flow run's runs are shown"


def test_missing_pieces_give_friendly_notes(monkeypatch, store):
    app = run_app(
        monkeypatch, store["uri"], experiment=layout.PARTIAL_EXPERIMENT, run=store["partial_parent"]
    )
    assert not app.exception, f"expected no exception, got {[e.message for e in app.exception]}"
    notes = texts(app.info)
    assert "1 of 2 training runs is still in progress" in notes
    assert "has no evaluation metrics yet: gr_ipo seed 0" in notes
    assert "no method runs yet" in notes
    assert "training batches' group losses" in texts(app.caption), (
        "no periodic validation: the fallback is said"
    )
    assert not app.error


def test_experiment_without_pipeline_runs(monkeypatch, store):
    app = run_app(monkeypatch, store["uri"], experiment=layout.UNTAGGED_EXPERIMENT)
    assert not app.exception
    assert "no runs made by the pipeline" in texts(app.info)


def test_missing_store_is_not_created(monkeypatch, tmp_path):
    path = tmp_path / "nothing" / "mlflow.db"
    app = run_app(monkeypatch, f"sqlite:///{path}")
    assert not app.exception
    assert "No MLflow store" in texts(app.info)
    assert not path.exists(), "the dashboard never writes, not even an empty store"


def test_store_without_runs(monkeypatch, store, tmp_path):
    # A copy of the store with every run deleted (a new store would cost seconds of migrations).
    shutil.copy(store["uri"].removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        client.delete_run(run.info.run_id)
    app = run_app(monkeypatch, uri)
    assert not app.exception
    assert "no runs yet" in texts(app.info)
