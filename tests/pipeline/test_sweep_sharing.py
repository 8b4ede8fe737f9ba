"""Children of a sweep that would train the same thing train once: the effective recipe of a method
(the settings it never reads set to their defaults), the sweep's plan, and the sweep-children flow's
body run with stand-ins for its tasks (no Prefect engine, no training)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

import flows.sweep
import tasks.children
from grpo_cli.sweep_cmd import format_sweep, sweep_plan
from grpo_core import names
from grpo_core.config import GroupWeightsConfig, LossConfig
from grpo_core.lm.recipe import TrainingRecipe, effective_recipe, unused_settings
from tasks.records import ChildResult, Failure, ParentRun, PreparedData, StartModelRef
from tasks.run_config import demo_config
from tasks.runs import close_run, open_child_run
from tasks.sweep import shared_runs, shared_settings
from tasks.sweep_config import SweepConfig

STEP_SIZES = {"group_weights.step_size": (0.001, 0.01)}
LOW, HIGH = "group_weights.step_size=0.001", "group_weights.step_size=0.01"


def recipe(**sections) -> TrainingRecipe:
    return TrainingRecipe(**sections)


def sweep(grid, methods=("ipo", "gr_ipo"), seeds=(0,), **run_updates) -> SweepConfig:
    run = demo_config().model_copy(update={"methods": methods, "seeds": seeds, **run_updates})
    return SweepConfig(run=run, grid=grid)


# --- the effective recipe ---------------------------------------------------------------------


def test_each_method_ignores_exactly_the_settings_its_objective_never_reads():
    weights = (
        "group_weights.step_size",
        "group_weights.robust_mix",
        "group_weights.halve_step_on_lr_cut",
    )
    pairs = ("loss.pair_temperature", "loss.pair_weight_cap")
    assert unused_settings("ipo") == (*weights, "loss.label_smoothing", *pairs)
    assert unused_settings("is_dpo") == (*weights, "loss.label_smoothing", *pairs)
    assert unused_settings("gr_ipo") == ("loss.label_smoothing", *pairs)
    assert unused_settings("cdpo") == (*weights, *pairs)
    assert unused_settings("rdpo") == (*weights, *pairs)
    assert unused_settings("dr_dpo") == (*weights, "loss.label_smoothing", "loss.pair_weight_cap")
    assert unused_settings("kl_dpo") == (*weights, "loss.label_smoothing")


def test_ipo_ignores_the_group_step_size_and_gr_ipo_does_not():
    slow = recipe(group_weights=GroupWeightsConfig(step_size=0.001))
    fast = recipe(group_weights=GroupWeightsConfig(step_size=0.5))
    assert effective_recipe(slow, "ipo") == effective_recipe(fast, "ipo")
    assert effective_recipe(slow, "ipo").group_weights.step_size == 0.01, "the field's default"
    assert effective_recipe(slow, "gr_ipo") != effective_recipe(fast, "gr_ipo")
    assert effective_recipe(slow, "gr_ipo") == slow, "GR-IPO reads every group-weight setting"


def test_the_estimator_stays_for_every_method():
    # with N_g/N coefficients only the unbiased estimator gives the plain mean: IPO reads it too
    batch_mean = recipe(group_weights=GroupWeightsConfig(estimator="batch_mean", robust_mix=0.5))
    effective = effective_recipe(batch_mean, "ipo").group_weights
    assert effective == GroupWeightsConfig(estimator="batch_mean"), "chi reset, estimator kept"


def test_label_smoothing_matters_to_cdpo_only_and_beta_to_all():
    low, high = (recipe(loss=LossConfig(label_smoothing=eps)) for eps in (0.05, 0.2))
    assert effective_recipe(low, "dpo") == effective_recipe(high, "dpo")
    assert effective_recipe(low, "cdpo") != effective_recipe(high, "cdpo")
    small, large = (recipe(loss=LossConfig(beta=beta)) for beta in (0.05, 0.2))
    for method in ("dpo", "ipo", "gr_ipo", "kl_dpo"):
        assert effective_recipe(small, method) != effective_recipe(large, method), method


# --- the sweep's plan -------------------------------------------------------------------------


def test_a_step_size_sweep_plans_one_ipo_training_and_two_gr_ipo_trainings():
    config = sweep(STEP_SIZES)
    planned = [(c.point.label, c.method, c.seed, c.trained_at.label) for c in config.children()]
    assert planned == [
        (LOW, "ipo", 0, LOW),
        (LOW, "gr_ipo", 0, LOW),
        (HIGH, "ipo", 0, LOW),
        (HIGH, "gr_ipo", 0, HIGH),
    ]
    trained = [(c.method, c.point.label) for c in config.children() if c.trains]
    assert trained == [("ipo", LOW), ("gr_ipo", LOW), ("gr_ipo", HIGH)]
    assert shared_settings(config) == {("ipo", HIGH): LOW}
    assert sweep_plan(config) == (
        "sweep: 2 settings x 2 methods x 1 seeds = 4 children, 3 trainings "
        "(children of the same effective recipe share one) on local"
    )


def test_seeds_never_share_and_a_setting_every_method_reads_shares_nothing():
    config = sweep(STEP_SIZES, seeds=(0, 1))
    assert config.size == 8
    assert sum(c.trains for c in config.children()) == 6, "IPO twice (two seeds), GR-IPO 4 times"
    beta = sweep({"loss.beta": (0.05, 0.1)}, seeds=(0, 1))
    assert all(c.trains for c in beta.children())
    assert sweep_plan(beta) == "sweep: 2 settings x 2 methods x 2 seeds = 8 children on local"


def test_a_learning_rate_of_one_method_leaves_the_other_trained_once():
    config = sweep({"method_learning_rates.gr_ipo": (1e-4, 3e-4), "loss.beta": (0.05, 0.1)})
    trained = [(c.method, c.point.label) for c in config.children() if c.trains]
    assert trained == [
        ("ipo", "method_learning_rates.gr_ipo=0.0001, loss.beta=0.05"),
        ("gr_ipo", "method_learning_rates.gr_ipo=0.0001, loss.beta=0.05"),
        ("ipo", "method_learning_rates.gr_ipo=0.0001, loss.beta=0.1"),
        ("gr_ipo", "method_learning_rates.gr_ipo=0.0001, loss.beta=0.1"),
        ("gr_ipo", "method_learning_rates.gr_ipo=0.0003, loss.beta=0.05"),
        ("gr_ipo", "method_learning_rates.gr_ipo=0.0003, loss.beta=0.1"),
    ]
    # the ipo children at gr_ipo's second rate report the training at the first, beta for beta
    assert shared_settings(config) == {
        ("ipo", "method_learning_rates.gr_ipo=0.0003, loss.beta=0.05"):
            "method_learning_rates.gr_ipo=0.0001, loss.beta=0.05",
        ("ipo", "method_learning_rates.gr_ipo=0.0003, loss.beta=0.1"):
            "method_learning_rates.gr_ipo=0.0001, loss.beta=0.1",
    }  # fmt: skip


# --- the sweep-children flow's body, its tasks replaced -----------------------------------------

DATA = PreparedData(data_dir="/data", summary={}, slugs={"a": "A"}, groups=("A",))
START = StartModelRef(path="/start", fingerprint="f")
PARENT = ParentRun(run_id="parent", experiment_id="1", tracking_uri="sqlite://")


def result(method: str, seed: int, run_id: str, value: float) -> ChildResult:
    return ChildResult(
        method=method, seed=seed, run_id=run_id, run_dir=f"/runs/{run_id}", steps=4, timing={},
        metrics={"eval/validation/worst_group/loss": value}, value=value,
    )  # fmt: skip


class Done:
    """A finished future of a stand-in ``train_child``."""

    def __init__(self, outcome):
        self.outcome = outcome

    def result(self, raise_on_failure: bool = True):
        return self.outcome


def run_children(monkeypatch, config: SweepConfig, fail: str | None = None):
    """The sweep-children flow's body with ``train_child`` and ``share_child`` replaced; returns
    its outcomes and the trainings and shares it launched (``fail``: the method whose training
    fails)."""
    trainings, shares = [], []

    class TrainChild:
        @staticmethod
        def submit(child, method, seed, data, start, run_dir, parent, label, tags):
            trainings.append((method, seed, tags[names.SWEEP_POINT], run_dir.rsplit("/", 2)[-2]))
            run_id = f"run{len(trainings)}"
            if method == fail:
                return Done(Failure(method=method, seed=seed, run_id=run_id, reason="NaN loss"))
            return Done(result(method, seed, run_id, float(len(trainings))))

    def share_child(child, trained, slugs, parent, label, tags):
        shares.append((trained.run_id, tags[names.SWEEP_POINT], child.group_weights.step_size))
        return trained.model_copy(update={"run_id": f"shared{len(shares)}"})

    monkeypatch.setattr(flows.sweep, "train_child", TrainChild)
    monkeypatch.setattr(flows.sweep, "share_child", share_child)
    outcomes = flows.sweep.sweep_children.fn(config, DATA, START, PARENT)
    return outcomes, trainings, shares


def test_a_step_size_sweep_launches_ipo_once_and_reports_it_at_both_points(monkeypatch):
    config = sweep(STEP_SIZES)
    outcomes, trainings, shares = run_children(monkeypatch, config)
    # Then three trainings are launched, each in its own point's folder, IPO at the first point only
    assert trainings == [
        ("ipo", 0, LOW, "group_weights.step_size-0.001"),
        ("gr_ipo", 0, LOW, "group_weights.step_size-0.001"),
        ("gr_ipo", 0, HIGH, "group_weights.step_size-0.01"),
    ]
    # And IPO at the second point gets its own run from IPO's training, with its own config
    assert shares == [("run1", HIGH, 0.01)]
    reported = [(o.method, o.sweep_point, o.run_id, o.run_dir, o.value) for o in outcomes]
    assert reported == [
        ("ipo", LOW, "run1", "/runs/run1", 1.0),
        ("gr_ipo", LOW, "run2", "/runs/run2", 2.0),
        ("ipo", HIGH, "shared1", "/runs/run1", 1.0),
        ("gr_ipo", HIGH, "run3", "/runs/run3", 3.0),
    ]
    assert shared_runs(config, outcomes) == {"shared1": "run1"}


def test_a_failed_training_fails_every_child_that_shares_it(monkeypatch):
    config = sweep(STEP_SIZES)
    outcomes, trainings, shares = run_children(monkeypatch, config, fail="ipo")
    assert len(trainings) == 3 and shares == []
    failed = [(o.sweep_point, o.run_id, o.reason) for o in outcomes if isinstance(o, Failure)]
    assert failed == [
        (LOW, "run1", "NaN loss"),
        (HIGH, "run1", f"shares the training at {LOW}, which failed: NaN loss"),
    ]
    assert shared_runs(config, outcomes) == {}


# --- what a shared child leaves in MLflow and on the command line ------------------------------


def test_a_shared_child_is_a_run_of_its_own_point_with_the_trained_runs_metrics(
    monkeypatch, mlflow_store
):
    # Given a trained IPO child run with its metrics (the tasks run as plain functions here)
    monkeypatch.setattr(tasks.children, "open_child_run", open_child_run.fn)
    monkeypatch.setattr(tasks.children, "close_run", close_run.fn)
    client = MlflowClient(mlflow_store)
    parent = ParentRun(
        run_id=client.create_run(client.create_experiment("share")).info.run_id,
        experiment_id=client.get_experiment_by_name("share").experiment_id,
        tracking_uri=mlflow_store,
    )
    config = sweep(STEP_SIZES)
    low, high = (config.child_config(p) for p in config.points())
    trained_id = open_child_run.fn(parent, low, "ipo", 0, DATA.slugs, {names.SWEEP_POINT: LOW})
    client.log_metric(trained_id, "eval/validation/worst_group/loss", 0.75, step=4)
    client.log_metric(trained_id, names.TRAIN_LOSS, 0.5, step=4)
    trained = result("ipo", 0, trained_id, 0.75)
    # When the child at the other step size shares it
    shared = tasks.children.share_child.fn(
        high, trained, DATA.slugs, parent, "ipo-seed0 " + HIGH, {names.SWEEP_POINT: HIGH}
    )
    # Then it is a FINISHED child run of its own point naming the trained run, with its metrics
    assert isinstance(shared, ChildResult) and shared.run_id != trained_id
    assert shared.model_dump(exclude={"run_id"}) == trained.model_dump(exclude={"run_id"})
    run = client.get_run(shared.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.SHARED_WITH] == trained_id
    assert run.data.tags[names.SWEEP_POINT] == HIGH
    assert run.data.tags[names.PARENT_RUN] == parent.run_id
    assert run.data.params["group_weights.step_size"] == "0.01"
    assert run.data.metrics == {"eval/validation/worst_group/loss": 0.75, names.TRAIN_LOSS: 0.5}
    assert names.SHARED_WITH not in client.get_run(trained_id).data.tags


@pytest.mark.parametrize("shares", [None, LOW])
def test_the_sweep_table_names_the_setting_a_row_reports_only_when_one_shares(shares):
    row = {
        "method": "ipo", "setting": HIGH, "seeds": 1, "worst": 0.75, "worst_ci95": None,
        "average": 0.5, "average_ci95": None, "pareto": True, "shares": shares,
    }  # fmt: skip
    summary = {"metric": "loss", "split": "validation", "tables": {"loss": [row]}}
    lines = format_sweep({"summary": summary}).splitlines()
    assert lines[1].split() == ["method", "setting", "seeds", "worst-group", "loss", "average",
                                "loss", "front"] + (["trained", "at"] if shares else [])  # fmt: skip
    assert lines[3].split()[-1] == (LOW if shares else "*")
