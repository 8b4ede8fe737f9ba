"""Reading the pipeline's MLflow layout into run tables, with the real client on a SQLite store."""

import pytest

from dashboards import mlflow_source as source
from dashboards import shaping
from tests.dashboards import store as layout


def test_experiments_latest_first_and_only_with_runs(store):
    experiments = source.list_experiments(source.open_client(store["uri"]))
    assert experiments["name"].iloc[0] == layout.EXPERIMENT
    assert "Default" not in set(experiments["name"]), "an experiment without runs is not offered"


def test_read_runs_turns_tags_into_columns(store):
    runs, latest = source.read_runs(source.open_client(store["uri"]), [store["experiment_id"]])
    child = runs.set_index("run_id").loc[store["children"][("gr_ipo", 1)]]
    assert (child["run_type"], child["method"], child["seed"], child["parent_run_id"]) == (
        "train",
        "gr_ipo",
        1,
        store["parent"],
    )
    parent = runs.set_index("run_id").loc[store["parent"]]
    assert (parent["flow_run_name"], parent["git_commit"]) == ("brave-otter", "0123456789abcdef")
    keys = set(latest.loc[latest["run_id"] == store["children"][("ipo", 0)], "key"])
    assert {
        "eval/test/worst_group/loss",
        "train/group_weight/nigeria",
        "eval/validation/group/egypt/count",
    } <= keys


def test_load_flow_run_reads_children_histories_and_group_order(store):
    tables, parent = source.load_flow_run(store["uri"], store["parent"])
    assert set(tables.runs["run_id"]) == {store["parent"], *store["children"].values()}
    assert list(tables.groups.values()) == list(layout.GROUPS.values()), "groups.json order"
    assert (
        parent["experiment_name"] == layout.EXPERIMENT
        and parent["params"]["methods"] == "ipo,gr_ipo"
    )
    history = tables.history[tables.history["run_id"] == store["children"][("ipo", 0)]]
    weights = history[history["key"] == "train/group_weight/nigeria"]
    assert list(weights["step"]) == list(range(layout.STEPS + 1))
    assert weights["value"].iloc[0] == pytest.approx(layout.SIZES["nigeria"])
    assert not history["key"].str.startswith("eval/test/").any(), (
        "only the plotted metrics' histories are read"
    )
    bars = shaping.group_bars(shaping.final_metrics(tables), "test", "loss", tables.groups)
    expected = (
        layout.group_loss("ipo", 0, "nigeria", layout.STEPS)
        + layout.group_loss("ipo", 1, "nigeria", layout.STEPS)
    ) / 2 + 0.05
    ipo_nigeria = bars[(bars["method"] == "ipo") & (bars["group"] == "nigeria")].iloc[0]
    assert ipo_nigeria["mean"] == pytest.approx(expected) and ipo_nigeria["is_worst"]


def test_missing_sqlite_store_raises_without_creating_it(tmp_path):
    path = tmp_path / "mlflow.db"
    with pytest.raises(source.StoreNotFound):
        source.open_client(f"sqlite:///{path}")
    assert not path.exists()


def test_the_parent_runs_headroom_is_shaped_beside_each_method(store):
    tables, _ = source.load_flow_run(store["uri"], store["parent"])
    bounds = shaping.headroom_metrics(tables)
    assert len(bounds) == len(layout.HEADROOM)
    final = shaping.final_metrics(tables)
    table = shaping.headroom_table(bounds, final, "test", tables.groups)
    # a method's test reward accuracy on a group is 1.2 - (f + (1 - f) e^(-20/6) + 0.05) with f its
    # final loss plus 0.02 x seed (tests/dashboards/store.py), mean over seeds 0 and 1: ipo's worst
    # group (Nigeria, 0.90) 0.237, gr_ipo's (Nigeria, 0.70) 0.430
    assert table.to_dict("records") == [
        {
            "": "worst group",
            "ipo": "0.237",
            "gr_ipo": "0.430",
            "group-blind policy": "0.812..0.817",
        },
        {"": "Nigeria", "ipo": "0.237", "gr_ipo": "0.430", "group-blind policy": "0.812"},
        {"": "Egypt", "ipo": "0.526", "gr_ipo": "0.468", "group-blind policy": "0.850"},
        {
            "": "India (Current national sample)",
            "ipo": "0.623",
            "gr_ipo": "0.507",
            "group-blind policy": "0.900",
        },
    ]
    assert shaping.headroom_sentence(bounds, final, "test") == (
        "worst group: ipo 0.24, gr_ipo 0.43 of a possible 0.81 (a group-blind policy can reach "
        "0.81..0.82 on the test split); below 1 because 9 of 40 prompts hold pairs that no single "
        "ordering satisfies."
    )
    assert shaping.headroom_sentence(bounds, final, "validation").endswith(
        "; the bound is 1 because no prompt is shared by two groups: a policy can order each "
        "prompt for its own group."
    )
    assert shaping.headroom_sentence(bounds, final, "train") is None
    # a flow run whose parent holds no headroom (an older run) shows none
    older, _ = source.load_flow_run(store["uri"], store["partial_parent"])
    assert shaping.headroom_metrics(older).empty
