"""Data shaping on hand-made run tables, with numbers worked out by hand."""

import json
import math

import pandas as pd
import pytest

from dashboards import shaping

T_975 = {1: 12.706204736174694, 2: 4.302652729749462}  # Student t quantiles, as in any table
GROUPS = {"gamma": "Gamma", "alpha": "Alpha", "beta": "Beta"}  # id order differs from alphabetical


def _train(run_id, method, seed, parent="p1", status="FINISHED"):
    return {
        "run_id": run_id, "parent_run_id": parent, "run_type": "train", "method": method, "seed": seed,
        "status": status, "dataset": "d", "run_name": f"{method}-{seed}", "group_slugs": json.dumps(GROUPS),
    }  # fmt: skip


def _evaluation(split, losses, accuracies=None):
    """Group losses (and accuracies) -> the eval keys of one run, aggregates included."""
    out = {f"eval/{split}/group/{g}/loss": v for g, v in losses.items()}
    out[f"eval/{split}/worst_group/loss"] = max(losses.values())
    out[f"eval/{split}/average/loss"] = sum(losses.values()) / len(losses)
    out[f"eval/{split}/imbalance/loss"] = max(losses.values()) - min(losses.values())
    for g, v in (accuracies or {}).items():
        out[f"eval/{split}/group/{g}/reward_accuracy"] = v
    if accuracies:
        out[f"eval/{split}/worst_group/reward_accuracy"] = min(accuracies.values())
    return out


@pytest.fixture
def tables():
    """ipo and gr_ipo, seeds 0 and 1, three groups; the worst test group is alpha for ipo, beta for gr_ipo."""
    runs = [
        _train("i0", "ipo", 0),
        _train("i1", "ipo", 1),
        _train("g0", "gr_ipo", 0),
        _train("g1", "gr_ipo", 1),
    ]
    latest = {
        "i0": _evaluation(
            "test",
            {"gamma": 0.5, "alpha": 0.9, "beta": 0.6},
            {"gamma": 0.8, "alpha": 0.4, "beta": 0.7},
        ),
        "i1": _evaluation(
            "test",
            {"gamma": 0.7, "alpha": 1.1, "beta": 0.6},
            {"gamma": 0.8, "alpha": 0.2, "beta": 0.7},
        ),
        "g0": _evaluation(
            "test",
            {"gamma": 0.6, "alpha": 0.7, "beta": 0.8},
            {"gamma": 0.7, "alpha": 0.6, "beta": 0.5},
        ),
        "g1": _evaluation(
            "test",
            {"gamma": 0.6, "alpha": 0.7, "beta": 0.7},
            {"gamma": 0.7, "alpha": 0.6, "beta": 0.6},
        ),
    }
    return shaping.make_tables(runs, latest)


# Final evaluation --------------------------------------------------------------------------------


def test_group_bars_mark_the_worst_group_per_method_by_the_metric_direction(tables):
    final = shaping.final_metrics(tables)
    bars = shaping.group_bars(final, "test", "loss", tables.groups)
    assert list(bars["method"]) == ["ipo"] * 3 + ["gr_ipo"] * 3, "canonical method order"
    assert list(bars["group_name"][:3]) == ["Gamma", "Alpha", "Beta"], "groups in id order, by name"
    ipo = bars[bars["method"] == "ipo"].set_index("group")
    assert ipo.loc["alpha", "mean"] == pytest.approx(1.0)
    assert ipo.loc["alpha", "ci95"] == pytest.approx(0.1 * T_975[1], rel=1e-9), (
        "values 0.9, 1.1: s = 0.1414, se = 0.1"
    )
    assert ipo.loc["beta", "ci95"] == pytest.approx(0.0)
    worst = bars[bars["is_worst"]].set_index("method")["group"].to_dict()
    assert worst == {"ipo": "alpha", "gr_ipo": "beta"}, (
        "highest mean loss (gr_ipo: beta 0.75 > alpha 0.7)"
    )
    accuracy = shaping.group_bars(final, "test", "reward_accuracy", tables.groups)
    worst = accuracy[accuracy["is_worst"]].set_index("method")["group"].to_dict()
    assert worst == {"ipo": "alpha", "gr_ipo": "beta"}, (
        "lowest mean accuracy (ipo alpha 0.3, gr_ipo beta 0.55)"
    )


def test_group_bars_of_a_metric_without_direction_mark_nothing(tables):
    final = shaping.final_metrics(tables)
    final = pd.concat([final, final.assign(metric="chosen_reward")])
    bars = shaping.group_bars(final, "test", "chosen_reward", tables.groups)
    assert len(bars) == 6 and not bars["is_worst"].any()
    assert shaping.group_bars(final, "validation", "loss", tables.groups).empty


def test_seed_summary_means_and_intervals(tables):
    summary = shaping.seed_summary(shaping.final_metrics(tables), "test").set_index(
        ["method", "key"]
    )
    row = summary.loc[("ipo", "worst_group/loss")]
    assert (row["mean"], row["n"]) == (pytest.approx(1.0), 2)
    assert row["ci95"] == pytest.approx(0.1 * T_975[1], rel=1e-9)
    assert row["low"] == pytest.approx(1.0 - 0.1 * T_975[1])
    assert summary.loc[("gr_ipo", "worst_group/loss"), "mean"] == pytest.approx(0.75)
    assert summary.loc[("gr_ipo", "worst_group/loss"), "label"] == "worst-group loss"
    table = shaping.summary_table(shaping.seed_summary(shaping.final_metrics(tables), "test"))
    assert list(table["method"]) == ["ipo", "gr_ipo"]
    assert table.loc[0, "worst-group loss"] == f"1.000 ± {0.1 * T_975[1]:.3f}"
    assert table.loc[0, "seeds"] == 2


def test_method_gap_is_paired_over_shared_seeds(tables):
    gaps = shaping.method_gaps(shaping.final_metrics(tables), "test", "worst_group/loss")
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    # per-seed differences gr_ipo - ipo: 0.8 - 0.9 = -0.1 and 0.7 - 1.1 = -0.4: mean -0.25, s = 0.2121
    assert (gap["method"], gap["baseline"], gap["paired"], gap["n"]) == ("gr_ipo", "ipo", True, "2")
    assert gap["difference"] == pytest.approx(-0.25)
    assert gap["ci95"] == pytest.approx(T_975[1] * math.sqrt(0.045) / math.sqrt(2), rel=1e-9)
    assert gap["verdict"] == "no clear difference", "two seeds give a wide interval"


def test_method_gap_verdict_reads_the_direction():
    runs = [_train(f"{m}{s}", m, s) for m in ("ipo", "gr_ipo") for s in (0, 1, 2)]
    ipo_worst = [1.0, 1.2, 1.4]
    gr_worst = [0.8, 0.95, 1.1]  # differences -0.2, -0.25, -0.3: mean -0.25, s = 0.05
    latest = {
        f"ipo{s}": {"eval/test/worst_group/loss": v, "eval/test/worst_group/reward_accuracy": 1 - v}
        for s, v in enumerate(ipo_worst)
    }
    latest |= {
        f"gr_ipo{s}": {
            "eval/test/worst_group/loss": v,
            "eval/test/worst_group/reward_accuracy": 1 - v,
        }
        for s, v in enumerate(gr_worst)
    }
    final = shaping.final_metrics(shaping.make_tables(runs, latest))
    loss = shaping.method_gaps(final, "test", "worst_group/loss").iloc[0]
    assert loss["difference"] == pytest.approx(-0.25)
    assert loss["ci95"] == pytest.approx(T_975[2] * 0.05 / math.sqrt(3), rel=1e-6)
    assert loss["verdict"] == "gr_ipo better", "lower loss is better"
    accuracy = shaping.method_gaps(final, "test", "worst_group/reward_accuracy").iloc[0]
    assert accuracy["difference"] == pytest.approx(0.25) and accuracy["verdict"] == "gr_ipo better"
    reverse = shaping.method_gaps(
        final, "test", "worst_group/loss", pairs=[("ipo", "gr_ipo")]
    ).iloc[0]
    assert reverse["verdict"] == "gr_ipo better" and reverse["difference"] == pytest.approx(0.25)


def test_method_gap_falls_back_to_welch_without_shared_seeds():
    runs = [_train("i0", "ipo", 0), _train("i1", "ipo", 1), _train("i2", "ipo", 2)]
    runs += [_train("g3", "gr_ipo", 3), _train("g4", "gr_ipo", 4), _train("g5", "gr_ipo", 5)]
    values = {"i0": 1.0, "i1": 2.0, "i2": 3.0, "g3": 2.0, "g4": 4.0, "g5": 6.0}
    final = shaping.final_metrics(
        shaping.make_tables(runs, {r: {"eval/test/worst_group/loss": v} for r, v in values.items()})
    )
    gap = shaping.method_gaps(final, "test", "worst_group/loss").iloc[0]
    assert (gap["paired"], gap["n"], gap["difference"]) == (False, "3/3", 2.0)
    assert gap["ci95"] == pytest.approx(3.218758614532882 * math.sqrt(5 / 3), rel=1e-9)


def test_default_pairs_compare_within_a_family():
    assert shaping.default_pairs(["ipo", "gr_ipo", "is_ipo", "dpo"]) == [
        ("gr_ipo", "ipo"),
        ("gr_ipo", "is_ipo"),
        ("is_ipo", "ipo"),
    ]
    assert shaping.default_pairs(["gr_dpo", "ipo"]) == []


# Over training -----------------------------------------------------------------------------------


def _history_tables(periodic: bool):
    runs = [_train("i0", "ipo", 0), _train("g0", "gr_ipo", 0), _train("g1", "gr_ipo", 1)]
    history = {}
    for run_id, shift in (("i0", 0.0), ("g0", 0.0), ("g1", 0.2)):
        series = {
            "train/group_loss/alpha": [(0, 1.0 + shift), (1, 0.8 + shift)],
            "train/group_loss/beta": [(0, 0.6 + shift), (1, 0.4 + shift)],
            "train/group_weight/alpha": [(0, 0.5), (1, 0.6 + shift)],
            "train/group_weight/beta": [(0, 0.5), (1, 0.4 - shift)],
        }
        if periodic:
            series["eval/validation/worst_group/loss"] = [
                (0, 1.1 + shift),
                (5, 0.9 + shift),
                (10, 0.7),
                (10, 0.75),
            ]
            series["eval/validation/average/loss"] = [(0, 0.9), (5, 0.7), (10, 0.6)]
        else:
            series["eval/validation/worst_group/loss"] = [(10, 0.7)]
        history[run_id] = series
    return shaping.make_tables(runs, {}, history, groups={"alpha": "Alpha", "beta": "Beta"})


def test_training_curves_use_periodic_validation_and_keep_the_last_value_per_step():
    curves, source = shaping.training_curves(_history_tables(periodic=True))
    assert source == "validation"
    worst = curves[(curves["run_id"] == "i0") & (curves["series"] == "worst group")]
    assert list(worst["step"]) == [0, 5, 10]
    assert list(worst["value"]) == pytest.approx([1.1, 0.9, 0.75]), (
        "the final evaluation's value at step 10"
    )
    summary = shaping.curve_summary(curves).set_index(["method", "series", "step"])
    row = summary.loc[("gr_ipo", "worst group", 0)]
    assert (row["mean"], row["n"]) == (pytest.approx(1.2), 2)
    assert row["high"] - row["mean"] == pytest.approx(T_975[1] * 0.1, rel=1e-9), "values 1.1, 1.3"
    assert math.isnan(summary.loc[("ipo", "worst group", 0), "low"]), "one seed: no interval"


def test_training_curves_fall_back_to_training_group_losses():
    curves, source = shaping.training_curves(_history_tables(periodic=False))
    assert source == "training batches"
    run = curves[curves["run_id"] == "g1"].set_index(["series", "step"])["value"]
    assert run[("worst group", 1)] == pytest.approx(1.0), "max of 1.0 and 0.6"
    assert run[("average", 0)] == pytest.approx(1.0), "mean of 1.2 and 0.8"
    empty, source = shaping.training_curves(_history_tables(periodic=False), "reward_accuracy")
    assert empty.empty and source == ""


def test_group_weights_of_the_robust_runs_only_averaged_over_seeds():
    weights = shaping.group_weights(_history_tables(periodic=False))
    assert set(weights["method"]) == {"gr_ipo"}
    row = weights.set_index(["group", "step"]).loc[("alpha", 1)]
    assert (row["mean"], row["n"], row["group_name"]) == (pytest.approx(0.7), 2, "Alpha")
    everyone = shaping.group_weights(_history_tables(periodic=False), robust_only=False)
    assert set(everyone["method"]) == {"ipo", "gr_ipo"}


def test_thin_keeps_first_and_last_and_at_most_about_max_points():
    frame = pd.DataFrame(
        {"line": ["a"] * 1001 + ["b"] * 3, "step": list(range(1001)) + [0, 1, 2], "value": 0.0}
    )
    thinned = shaping.thin(frame, ["line"], max_points=100)
    a = thinned[thinned["line"] == "a"]["step"]
    assert a.iloc[0] == 0 and a.iloc[-1] == 1000 and len(a) <= 102
    assert list(thinned[thinned["line"] == "b"]["step"]) == [0, 1, 2]


# Selection, synthetic, notes ---------------------------------------------------------------------


def test_flow_runs_latest_first_and_children_filtered():
    runs = shaping.make_runs(
        [
            {
                "run_id": "old",
                "run_type": "experiment",
                "run_name": "old",
                "start_time": pd.Timestamp("2024-01-01", tz="UTC"),
                "status": "FINISHED",
            },
            {
                "run_id": "new",
                "run_type": "experiment",
                "flow_run_name": "brave-otter",
                "start_time": pd.Timestamp("2024-02-01", tz="UTC"),
                "status": "RUNNING",
            },
            _train("a", "ipo", 0, parent="new"),
            _train("b", "gr_ipo", 0, parent="new"),
            _train("c", "ipo", 1, parent="old"),
            _train("d", "ipo", 2, parent=None),
        ]
    )
    parents = shaping.flow_runs(runs)
    assert list(parents["run_id"]) == ["new", "old"]
    assert parents.loc[0, "label"] == "brave-otter · 2024-02-01 00:00 (running)"
    assert list(shaping.children(runs, ["new"])["run_id"]) == ["a", "b"]
    assert list(shaping.children(runs, ["old", None])["run_id"]) == ["c", "d"]
    picked = shaping.filter_runs(shaping.children(runs, ["new", "old"]), methods=["ipo"], seeds=[1])
    assert list(picked["run_id"]) == ["c"]


def test_group_names_follow_the_groups_json_order():
    runs = shaping.make_runs(
        [
            {"run_id": "r", "group_slugs": json.dumps({"b": "Bee", "a": "Ay"})},
            {"run_id": "s", "group_slugs": "not json"},
        ]
    )
    assert list(shaping.group_names(runs)) == ["b", "a"]
    assert list(shaping.group_names(runs, ["Ay", "Bee"])) == ["a", "b"]


def test_synthetic_summary_and_curves_by_setting_and_family():
    runs, latest, history = [], {}, {}
    for setting in ("uneven-imbalanced", "even-imbalanced"):
        for method in ("gr_ipo", "dpo"):
            run_id = f"{setting}-{method}"
            runs.append(
                {
                    "run_id": run_id,
                    "run_type": "synthetic_method",
                    "setting": setting,
                    "method": method,
                    "seeds": "5",
                }
            )
            latest[run_id] = {
                "synthetic/max_reward_error/mean": 0.05,
                "synthetic/max_reward_error/ci95": 0.01,
                "synthetic/group_weight/group-0": 0.7,
            }
            history[run_id] = {"synthetic/worst_val_group_loss": [(0, 1.0), (10, 0.5)]}
    tables = shaping.make_tables(runs, latest, history)
    summary = shaping.synthetic_summary(tables)
    assert list(zip(summary["setting"], summary["method"], strict=True)) == [
        ("even-imbalanced", "dpo"),
        ("even-imbalanced", "gr_ipo"),
        ("uneven-imbalanced", "dpo"),
        ("uneven-imbalanced", "gr_ipo"),
    ], "settings in the paper's order, methods in canonical order"
    assert (
        summary["max_reward_error_ci95"].tolist() == [0.01] * 4
        and summary["weight_group_1"].isna().all()
    )
    curves = shaping.synthetic_curves(tables)
    assert set(zip(curves["method"], curves["family"], strict=True)) == {
        ("dpo", "DPO family"),
        ("gr_ipo", "IPO family"),
    }
    assert shaping.synthetic_table(summary).loc[0, "max reward error"] == "0.050 ± 0.010"


def test_status_notes_name_unfinished_and_unevaluated_runs():
    runs = [_train("a", "ipo", 0), _train("b", "gr_ipo", 1, status="RUNNING")]
    tables = shaping.make_tables(
        runs, {"a": {"eval/test/worst_group/loss": 1.0}, "b": {"train/loss": 1.0}}
    )
    notes = shaping.status_notes(tables)
    assert notes == [
        "1 of 2 training runs is still in progress: their values are the latest logged.",
        "1 of 2 training runs has no evaluation metrics yet: gr_ipo seed 1.",
    ]


def test_status_notes_name_the_runs_with_warnings():
    runs = [_train("a", "ipo", 0) | {"warnings": "the run collapsed"}, _train("b", "gr_ipo", 0)]
    latest = {r: {"eval/test/worst_group/loss": 1.0} for r in ("a", "b")}
    notes = shaping.status_notes(shaping.make_tables(runs, latest))
    assert notes == ["1 of 2 training runs has warnings: ipo seed 0 (the run collapsed)."]


def test_long_training_batch_curves_are_smoothed():
    steps = range(50)
    history = {
        "r": {
            "train/group_loss/a": [(s, float(s % 2)) for s in steps],
            "train/group_loss/b": [(s, 0.0) for s in steps],
        }
    }
    tables = shaping.make_tables([_train("r", "gr_ipo", 0)], {}, history)
    curves, source = shaping.training_curves(tables)
    assert source == "training batches, rolling mean of 2 steps", "50 steps / 25 windows"
    worst = curves[curves["series"] == "worst group"]["value"].to_list()
    assert worst[:4] == [0.0, 0.5, 0.5, 0.5], (
        "worst group per step 0, 1, 0, 1 ... averaged over 2 steps"
    )


def _sweep_values(rows):
    """(run_id, setting, worst, average) -> the long table of a sweep's children (test split)."""
    out = []
    for run_id, setting, worst, average in rows:
        for metric in ("loss", "reward_accuracy"):
            out.append((run_id, "gr_dpo", setting, f"eval/test/worst_group/{metric}", worst))
            if average is not None:
                out.append((run_id, "gr_dpo", setting, f"eval/test/average/{metric}", average))
    return pd.DataFrame(out, columns=["run_id", "method", "setting", "key", "value"])


SWEEP = [
    ("a0", "chi=0", 1.0, 1.0), ("a1", "chi=0", 3.0, 1.0),
    ("b0", "chi=0.5", 2.5, 0.5), ("b1", "chi=0.5", 2.5, 0.5),
    ("c0", "chi=1", 3.0, 1.5), ("c1", "chi=1", 3.0, 1.5),
    ("c2", "chi=1", 9.0, None),  # a child without an average (failed midway): left out
]  # fmt: skip


def test_sweep_points_mean_interval_and_front_by_the_metric_direction():
    table = shaping.sweep_points(_sweep_values(SWEEP), "test", "loss")
    assert list(table["setting"]) == ["chi=0", "chi=0.5", "chi=1"]
    assert list(table["seeds"]) == [2, 2, 2]
    assert list(table["worst"]) == [2.0, 2.5, 3.0]
    assert list(table["average"]) == [1.0, 0.5, 1.5]
    # chi=0: worst 1 and 3, sd sqrt(2), half-width t(1) * sqrt(2) / sqrt(2)
    assert table["worst_ci95"][0] == pytest.approx(T_975[1])
    assert table["average_ci95"][0] == 0.0
    # losses: chi=1 is worse than chi=0 on both; chi=0 and chi=0.5 trade one for the other
    assert list(table["pareto"]) == [True, True, False]
    # accuracies, higher better: chi=1 beats both others on both
    accuracy = shaping.sweep_points(_sweep_values(SWEEP), "test", "reward_accuracy")
    assert list(accuracy["pareto"]) == [False, False, True]


def test_sweep_points_of_a_split_not_evaluated_is_empty():
    assert shaping.sweep_points(_sweep_values(SWEEP), "validation", "loss").empty


def test_short_setting_keeps_the_last_part_of_each_key():
    assert shaping.short_setting("group_weights.robust_mix=0.5, loss.beta=0.1") == (
        "robust_mix=0.5, beta=0.1"
    )
    assert shaping.short_setting("defaults") == "defaults"


def test_unseen_groups_set_each_group_unseen_against_seen_in_the_worse_direction():
    rows = []
    for run, seed_loss in (("s0", 0.50), ("s1", 0.60)):  # trained on every group
        rows += [(run, "gr_ipo", None, "eval/test/group/alpha/loss", seed_loss)]
        rows += [(run, "gr_ipo", None, "eval/test/group/alpha/reward_accuracy", 1 - seed_loss)]
    for run, loss in (("u0", 0.90), ("u1", 1.10)):  # alpha left out of training
        rows += [(run, "gr_ipo", "Alpha", "eval/test/group/alpha/loss", loss)]
        rows += [(run, "gr_ipo", "Alpha", "eval/test/group/alpha/reward_accuracy", 1 - loss)]
    values = pd.DataFrame(rows, columns=["run_id", "method", "held_out_group", "key", "value"])
    loss = shaping.unseen_groups(values, "test", "loss", GROUPS)
    assert loss[["method", "group", "seeds"]].values.tolist() == [["gr_ipo", "Alpha", 2]]
    assert loss["seen"][0] == pytest.approx(0.55) and loss["unseen"][0] == pytest.approx(1.0)
    assert loss["worse_unseen"][0] == pytest.approx(0.45)  # higher loss unseen: worse by 0.45
    assert loss["unseen_ci95"][0] == pytest.approx(T_975[1] * 0.1)  # sd 0.1414 / sqrt(2)
    accuracy = shaping.unseen_groups(values, "test", "reward_accuracy", GROUPS)
    assert accuracy["worse_unseen"][0] == pytest.approx(0.45)  # lower accuracy unseen: worse


def test_headroom_of_one_says_the_groups_share_prompts_without_conflict():
    parent = {"run_id": "p1", "run_type": "experiment"}
    run = _train("r1", "ipo", 0)
    latest = {
        "p1": {
            "headroom/test/worst_group/reward_accuracy_upper": 1.0,
            "headroom/test/worst_group/reward_accuracy_lower": 1.0,
            "headroom/test/data/prompts": 10,
            "headroom/test/data/shared_prompts": 4,
            "headroom/test/data/conflicting_prompts": 0,
            "eval/test/worst_group/reward_accuracy": 0.5,  # a parent's own eval keys are no method's
        },
        "r1": {"eval/test/worst_group/reward_accuracy": 0.75},
    }
    tables = shaping.make_tables([parent, run], latest, groups=GROUPS)
    bounds = shaping.headroom_metrics(tables)
    assert shaping.headroom_sentence(bounds, shaping.final_metrics(tables), "test") == (
        "worst group: ipo 0.75 of a possible 1.00 (a group-blind policy can reach 1.00..1.00 on "
        "the test split); the bound is 1 because 4 prompts are shared by two or more groups, but "
        "on every prompt the pairs of all groups fit one ordering: one policy can satisfy every pair."
    )
