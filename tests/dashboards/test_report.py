"""The static report: from hand-made tables (no MLflow) and from a flow run in a real store."""

import base64
import json
import re

import pandas as pd
import pytest

from dashboards import shaping
from dashboards.report import REPORT_FILE, build_report, build_report_from_tables
from tests.dashboards import store as layout

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _hand_made_tables() -> shaping.RunTables:
    groups = {"a": "Group A", "b": "Group B"}
    runs, latest, history = [], {}, {}
    for method, worst in (("ipo", 0.9), ("gr_ipo", 0.7)):
        for seed in (0, 1):
            run_id = f"{method}{seed}"
            runs.append(
                {
                    "run_id": run_id,
                    "run_type": "train",
                    "method": method,
                    "seed": seed,
                    "status": "FINISHED",
                    "group_slugs": json.dumps(groups),
                }
            )
            losses = {"a": worst + 0.01 * seed, "b": 0.5}
            latest[run_id] = {f"eval/test/group/{g}/loss": v for g, v in losses.items()} | {
                "eval/test/worst_group/loss": max(losses.values()),
                "eval/test/average/loss": sum(losses.values()) / 2,
            }
            history[run_id] = {
                f"train/group_loss/{g}": [(0, 1.0), (1, v)] for g, v in losses.items()
            }
            history[run_id] |= {
                f"train/group_weight/{g}": [(0, 0.5), (1, 0.6 if g == "a" else 0.4)] for g in groups
            }
    return shaping.make_tables(runs, latest, history, groups)


def _embedded_pngs(page: str) -> list[bytes]:
    return [
        base64.b64decode(data)
        for data in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    ]


def test_report_from_tables_is_one_self_contained_html_plus_pngs(tmp_path):
    path = build_report_from_tables(
        _hand_made_tables(), tmp_path / "report", {"flow_run_name": "brave-otter", "run_id": "p1"}
    )
    assert path == tmp_path / "report" / REPORT_FILE
    page = path.read_text()
    pngs = _embedded_pngs(page)
    files = sorted(p.name for p in path.parent.glob("*.png"))
    assert files == ["curves_loss.png", "gaps_test.png", "group_loss_test.png", "group_weights.png"]
    assert len(pngs) == len(files) and all(png.startswith(PNG_MAGIC) for png in pngs), (
        "every figure embedded"
    )
    assert not re.search(r"(src|href)=['\"]?https?://", page), (
        "nothing to fetch: no external scripts, styles or images"
    )
    assert "GRPO report: brave-otter" in page
    assert "training batches" in page, "the fallback curves are said to be from training batches"
    assert (path.parent / "gaps_test.csv").exists() and (path.parent / "summary_test.csv").exists()


def test_report_of_nothing_says_so(tmp_path):
    path = build_report_from_tables(shaping.empty_tables(), tmp_path)
    assert "no training or synthetic runs" in path.read_text()


def test_report_of_an_experiment_flow_run(store, tmp_path):
    path = build_report(store["uri"], store["parent"], tmp_path)
    page = path.read_text()
    assert len(_embedded_pngs(page)) == 5, "loss and accuracy bars, gaps, curves, weights"
    assert "India (Current national sample)" in page, "group names, not slugs"
    assert "http://127.0.0.1:4200/runs/flow-run/0000-1111" in page, "the Prefect flow run is linked"
    assert layout.EXPERIMENT in page and "gr_ipo better" in page
    # each method's worst group beside what a group-blind policy can reach on the same split
    assert (
        "worst group: ipo 0.24, gr_ipo 0.43 of a possible 0.81 (a group-blind policy can reach "
        "0.81..0.82 on the test split)" in page
    )
    assert "the bound is 1 because no prompt is shared by two groups" in page
    assert (tmp_path / "headroom_test.csv").read_text().splitlines()[1] == (
        "worst group,0.237,0.430,0.812..0.817"
    )


def test_report_of_a_synthetic_flow_run(store, tmp_path):
    path = build_report(store["uri"], store["synthetic_parent"], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "pareto_uneven-imbalanced_gr_dpo.png",
        "synthetic.png",
    ]
    sweep = pd.read_csv(tmp_path / "synthetic_pareto.csv")
    assert list(sweep["setting"]) == [f"robust_mix={c}" for c in ("0", "0.5", "0.75", "1")]
    assert list(sweep["pareto"]) == [True, True, False, True]
    assert "uneven-imbalanced" in path.read_text()


def test_report_of_a_sweep_flow_run(store, tmp_path):
    path = build_report(store["uri"], store["sweep_parent"], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "pareto_test_loss_gr_ipo.png",
        "pareto_test_reward_accuracy_gr_ipo.png",
    ]
    table = pd.read_csv(tmp_path / "sweep_test_loss.csv")
    assert list(table["setting"]) == [f"group_weights.robust_mix={c}" for c in ("0", "0.5", "1")]
    assert list(table["worst"]) == pytest.approx([0.92, 0.81, 0.72])
    assert list(table["average"]) == pytest.approx([0.505, 0.605, 0.705])
    assert list(table["pareto"]) == [True, True, True]
    assert "Per-group metrics" not in path.read_text(), "a sweep is shown by setting, not by method"


def test_report_on_two_groups_draws_the_group_blind_frontier_with_each_method(tmp_path):
    tables = _hand_made_tables()
    accuracy = {"ipo": (0.9, 0.3), "gr_ipo": (0.7, 0.6)}  # (group a, group b), both seeds
    extra = [
        (run_id, f"eval/test/group/{g}/reward_accuracy", accuracy[method][i])
        for run_id, method in zip(tables.runs["run_id"], tables.runs["method"], strict=True)
        for i, g in enumerate(("a", "b"))
    ]
    tables = shaping.RunTables(
        tables.runs,
        pd.concat([tables.latest, pd.DataFrame(extra, columns=["run_id", "key", "value"])]),
        tables.history,
        tables.groups,
    )
    final = shaping.final_metrics(tables)
    assert shaping.group_points(final, "test", "a", "b") == {
        "ipo": (0.9, 0.3),
        "gr_ipo": (0.7, 0.6),
    }
    headroom = {
        "test": {"groups": ["Group A", "Group B"], "frontier": [[0.5, 0.9], [0.8, 0.8], [1.0, 0.4]]}
    }
    path = build_report_from_tables(tables, tmp_path, None, headroom)
    assert (tmp_path / "headroom_frontier_test.png").read_bytes().startswith(PNG_MAGIC)
    assert "alt='headroom_frontier_test'" in path.read_text()
    # without the parent's headroom.json (an older flow run) the report has no such figure
    build_report_from_tables(tables, tmp_path / "older")
    assert not (tmp_path / "older" / "headroom_frontier_test.png").exists()
