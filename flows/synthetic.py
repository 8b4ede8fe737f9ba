"""The ``synthetic`` flow: the paper's synthetic group linear bandit over settings and seeds."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field, model_validator

from grpo_core.config import Section
from grpo_core.methods import METHODS, Method, is_group_robust
from grpo_core.synthetic.bandit import FeatureType
from grpo_core.synthetic.experiment import SettingName, SyntheticConfig
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run, open_parent_run
from tasks.synthetic import run_synthetic_pareto, run_synthetic_setting


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
    pareto_chis: tuple[float, ...] = Field(
        (),
        description="Also sweep chi (group_weights.robust_mix) of pareto_method over these values "
        "in every setting: worst group against average, with the Pareto front (none: no sweep).",
    )
    pareto_method: Method = Field(
        "gr_dpo", description="The group-robust method whose chi is swept."
    )

    @model_validator(mode="after")
    def _check(self) -> SyntheticBenchmark:
        if self.pareto_chis and not is_group_robust(self.pareto_method):
            raise ValueError(f"pareto_method must be group-robust, not {self.pareto_method}")
        if any(not 0.0 <= chi <= 1.0 for chi in self.pareto_chis):
            raise ValueError(f"pareto_chis must lie in [0, 1], got {list(self.pareto_chis)}")
        return self


@flow(
    name="synthetic",
    description="The paper's synthetic benchmark: GR vs IS vs plain DPO/IPO, per setting.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def synthetic(benchmark: SyntheticBenchmark = SyntheticBenchmark()) -> dict[str, Any]:  # noqa: B008
    parent = open_parent_run(benchmark, run_type="synthetic")
    results, sweeps = {}, {}
    for setting in benchmark.settings:
        config = SyntheticConfig(
            setting=setting, seeds=benchmark.seeds, methods=benchmark.methods,
            feature_type=benchmark.feature_type, iterations=benchmark.iterations,
        )  # fmt: skip
        results[setting] = run_synthetic_setting(config, parent)
        if benchmark.pareto_chis:
            sweeps[setting] = run_synthetic_pareto(
                config, parent, benchmark.pareto_method, benchmark.pareto_chis
            )
    close_run(parent.run_id)
    return {"parent_run_id": parent.run_id, "results": results, "pareto": sweeps}
