"""The sweep's configuration, grid, folders and GPU pool, without Prefect or MLflow."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pydantic import ValidationError

from grpo_cli.sweep_cmd import parse_grid
from tasks.run_config import demo_config
from tasks.runners import GpuPool, task_runner
from tasks.sweep import child_dir, sweep_dir
from tasks.sweep_config import RunnerConfig, SweepConfig, pareto_grid, with_overrides


def sweep(grid, **updates) -> SweepConfig:
    return SweepConfig(run=demo_config(), grid=grid, **updates)


def test_points_are_the_product_of_the_axes_with_the_last_key_fastest():
    config = sweep({"loss.beta": (0.1, 0.2), "group_weights.robust_mix": (0.0, 1.0)})
    assert [p.label for p in config.points()] == [
        "loss.beta=0.1, group_weights.robust_mix=0",
        "loss.beta=0.1, group_weights.robust_mix=1",
        "loss.beta=0.2, group_weights.robust_mix=0",
        "loss.beta=0.2, group_weights.robust_mix=1",
    ]
    assert config.size == 4 * 2 * 5  # points x the demo's 2 methods x 5 seeds
    assert config.points()[1].slug == "loss.beta-0.1_group_weights.robust_mix-1"


def test_a_child_config_carries_its_overrides_and_nothing_else_changes():
    config = sweep({"loss.beta": (0.5,), "method_learning_rates.gr_ipo": (1e-3,)})
    child = config.child_config(config.points()[0])
    assert child.loss.beta == 0.5 and child.learning_rate_for("gr_ipo") == 1e-3
    assert child.model_dump(exclude={"loss", "method_learning_rates"}) == demo_config().model_dump(
        exclude={"loss", "method_learning_rates"}
    )


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"data.seed": (1, 2)}, "only loss, group_weights, optim"),
        ({"group_weights.nonsense": (1,)}, "no field 'nonsense'"),
        ({"group_weights.robust_mix": (0.5, 2.0)}, "robust_mix=2.0: group_weights.robust_mix"),
        ({"loss.beta": ()}, "has no values"),
        ({"loss.beta": (0.1, 0.1)}, "values repeat"),
    ],
)
def test_a_grid_that_cannot_be_trained_is_refused_naming_the_key(grid, message):
    with pytest.raises(ValidationError, match=message):
        sweep(grid)


def test_the_pareto_preset_needs_a_group_robust_method():
    assert pareto_grid(demo_config()) == {"group_weights.robust_mix": (0.0, 0.25, 0.5, 0.75, 1.0)}
    with pytest.raises(ValueError, match="has none \\(ipo\\)"):
        pareto_grid(demo_config().model_copy(update={"methods": ("ipo",)}))


def test_with_overrides_validates_the_result():
    with pytest.raises(ValueError, match="optim.learning_rate"):
        with_overrides(demo_config(), (("optim.learning_rate", -1.0),))


def test_the_sweep_folder_is_named_by_what_is_trained_not_by_where():
    config = sweep({"loss.beta": (0.1, 0.2)})
    dask = config.model_copy(update={"runner": RunnerConfig(kind="dask")})
    assert sweep_dir(config) == sweep_dir(dask)
    assert sweep_dir(config) != sweep_dir(sweep({"loss.beta": (0.1, 0.3)}))
    assert child_dir(config, config.points()[0], "ipo", 3).endswith("/loss.beta-0.1/ipo-seed3")


def test_a_dask_address_needs_the_dask_runner():
    with pytest.raises(ValidationError, match="runner.kind is not 'dask'"):
        RunnerConfig(kind="local", dask_address="tcp://127.0.0.1:8786")
    assert RunnerConfig(kind="dask").describe() == "dask (LocalCluster of 2 workers)"


def test_parse_grid_reads_numbers_yaml_and_refuses_malformed_axes():
    assert parse_grid(["optim.learning_rate=1e-4,3e30", "loss.length_normalized=true,false"]) == {
        "optim.learning_rate": (1e-4, 3e30),
        "loss.length_normalized": (True, False),
    }
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        parse_grid(["loss.beta"])
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["loss.beta=1", "loss.beta=2"])


def test_the_gpu_pool_lends_each_gpu_to_one_training_at_a_time(tmp_path):
    pool = GpuPool(["3", "5"], lock_dir=tmp_path, poll_s=0.01)
    held: list[str] = []
    most = []
    lock = threading.Lock()

    def train() -> None:
        with pool.claim() as env:
            with lock:
                held.append(env["CUDA_VISIBLE_DEVICES"])
                most.append(list(held))
            time.sleep(0.05)
            with lock:
                held.remove(env["CUDA_VISIBLE_DEVICES"])

    threads = [threading.Thread(target=train) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(now) == len(set(now)) <= 2 for now in most)  # never one GPU twice
    assert {gpu for now in most for gpu in now} == {"3", "5"}


def test_without_gpus_the_pool_adds_nothing_to_the_environment(tmp_path):
    with GpuPool([], lock_dir=tmp_path).claim() as env:
        assert env == {}


@pytest.mark.parametrize(
    ("set_by_user", "level"), [(None, logging.WARNING), ("info", logging.INFO)]
)
def test_a_dask_runner_shows_dasks_warnings_only_unless_the_user_asks(
    monkeypatch, set_by_user, level
):
    logger = logging.getLogger("distributed")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", set_by_user or "")  # restored after the test
    if not set_by_user:
        monkeypatch.delenv("DASK_LOGGING__DISTRIBUTED")
    task_runner(RunnerConfig(kind="dask"), "cpu")
    # a connection closed at shut-down is logged at INFO with its traceback: not shown by default
    assert logger.isEnabledFor(logging.INFO) == (level == logging.INFO)
    assert logger.level == level
