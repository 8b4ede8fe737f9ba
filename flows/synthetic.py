"""The ``synthetic`` flow: the paper's synthetic group linear bandit over settings and seeds."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field

from grpo_core.config import Section
from grpo_core.methods import METHODS, Method
from grpo_core.synthetic.bandit import FeatureType
from grpo_core.synthetic.experiment import SettingName, SyntheticConfig
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.synthetic import run_synthetic_setting


class SyntheticBenchmark(Section):
    """Which synthetic settings to run, how many seeds, which methods."""

    name: str = Field("grpo-synthetic", min_length=1, description="MLflow experiment name.")
    settings: tuple[SettingName, ...] = Field(
        ("even-imbalanced", "uneven-balanced", "uneven-imbalanced"),
        min_length=1,
        description="The paper's settings.",
    )
    seeds: int = Field(20, ge=2, description="Seeds per setting.")
    methods: tuple[Method, ...] = Field(METHODS, min_length=1, description="Methods to compare.")
    feature_type: FeatureType = Field(
        "swapped", description="How group 1's features relate to group 0's."
    )
    iterations: int | None = Field(
        None, ge=1, description="Override every setting's iteration count."
    )


@flow(
    name="synthetic",
    description="The paper's synthetic benchmark: GR vs IS vs plain DPO/IPO, per setting.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def synthetic(benchmark: SyntheticBenchmark = SyntheticBenchmark()) -> dict[str, Any]:  # noqa: B008
    parent = open_parent_run(benchmark, run_type="synthetic")
    results = {}
    for setting in benchmark.settings:
        config = SyntheticConfig(
            setting=setting, seeds=benchmark.seeds, methods=benchmark.methods,
            feature_type=benchmark.feature_type, iterations=benchmark.iterations,
        )  # fmt: skip
        results[setting] = run_synthetic_setting(config, parent)
    close_run(parent["run_id"])
    return {"parent_run_id": parent["run_id"], "results": results}
