"""The one frozen run configuration: the flow parameter, the YAML file, the MLflow params.

It composes the science sections of ``grpo_core`` with the pipeline's own (tracking, execution);
the training code receives only :meth:`RunConfig.recipe`, the sections it reads.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from grpo_core import names
from grpo_core.config import EvalConfig, GroupWeightsConfig, LossConfig, OptimConfig, Section
from grpo_core.data.config import (
    SHARED_PROMPT_TEMPLATE,
    DataConfig,
    OpinionGeneratorConfig,
    SurveyOptions,
)
from grpo_core.lm.config import ModelConfig, SFTConfig
from grpo_core.lm.recipe import TrainingRecipe
from grpo_core.methods import Method
from grpo_core.promotion import PromotionRule

ChampionMetric = Literal[names.CHAMPION_METRICS]  # type: ignore[valid-type]
_RECIPE = TrainingRecipe.model_fields

NAME_CHARACTERS = "letters, digits, '_', '.' and '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_experiment_name(name: str) -> str:
    """``name`` unless it cannot be a folder name under the output folder and an MLflow registered
    model name (which refuses '/' and ':'): checked when the config is read, before any work."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r}: use {NAME_CHARACTERS}, at most 100 characters (it names the run "
            "folders and the MLflow registered model)"
        )
    return name


ExperimentName = Annotated[str, AfterValidator(check_experiment_name)]
"""A name that becomes a path component and a registered-model name."""


class TrackingConfig(Section):
    """How the pipeline records runs and picks the champion model (MLflow)."""

    champion_metric: ChampionMetric = Field(
        names.CHAMPION_METRICS[0],
        description="Validation worst-group metric on which a candidate must beat the 'champion' "
        "(models are never chosen on the test split). Worst-group reward accuracy is comparable "
        "across losses and betas; losses are not.",
    )
    promotion_margin: float = Field(
        0.0,
        ge=0,
        description="Promote only if the 95% bootstrap interval of the worst-group improvement over "
        "the champion lies above this (metric units).",
    )
    promotion_group_tolerance: float = Field(
        0.05,
        ge=0,
        description="Refuse a candidate any of whose groups is worse than the champion's by more "
        "than this (metric units, validation).",
    )
    promotion_resamples: int = Field(
        2000, ge=200, description="Bootstrap resamples of the promotion interval."
    )
    register_models: bool = Field(
        True, description="Register every trained model; move the 'champion' alias on evidence."
    )
    log_checkpoints: bool = Field(
        True, description="Log each run's final checkpoint folder as MLflow artifacts."
    )

    def promotion_rule(self) -> PromotionRule:
        return PromotionRule(
            self.promotion_margin, self.promotion_group_tolerance, self.promotion_resamples
        )


class ExecutionConfig(Section):
    """Where and how long the pipeline's work runs."""

    output_dir: str = Field(
        "outputs",
        description="Folder (relative to the working folder) for data, checkpoints and reports.",
    )
    timeout_minutes: float = Field(
        120.0, gt=0, description="Kill a training or evaluation process that runs longer than this."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads of each training or evaluation process; none: torch's default "
        "(the machine's cores, or OMP_NUM_THREADS: Dask workers set it to 1). float32 sums in "
        "another order differ in the last bits, so set it to compare runs bit for bit.",
    )

    def worker_env(self) -> dict[str, str]:
        """What the worker processes' environment gets from this section."""
        if self.threads is None:
            return {}
        return {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}


class RunConfig(Section):
    """One experiment: data -> (SFT) -> each method x seed -> per-group evaluation."""

    name: ExperimentName = Field(
        "grpo-demo",
        min_length=1,
        description="Experiment name (the MLflow experiment, the registered model and the run "
        f"folders are named after it): {NAME_CHARACTERS}.",
    )
    methods: tuple[Method, ...] = Field(
        ("ipo", "gr_ipo"),
        min_length=1,
        description="Methods to train: a plain baseline and its group-robust counterpart by default.",
    )
    seeds: tuple[int, ...] = Field(
        (0,), min_length=1, description="Training seeds (one run per method and seed)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' = CUDA when available, else CPU."
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="Where the grouped pairs come from."
    )
    # The science sections are the training recipe's own fields (one definition each).
    model: ModelConfig = _RECIPE["model"]
    sft: SFTConfig = _RECIPE["sft"]
    loss: LossConfig = _RECIPE["loss"]
    group_weights: GroupWeightsConfig = _RECIPE["group_weights"]
    optim: OptimConfig = _RECIPE["optim"]
    leave_one_group_out: bool = Field(
        False,
        description="Also train every method and seed once per group with that group left out of "
        "training (and of SFT), evaluate on every group, and report how much each method loses on "
        "the group it never saw. Needs three or more groups.",
    )
    method_learning_rates: dict[Method, float] = Field(
        default_factory=dict,
        description="Per-method learning rates overriding optim.learning_rate "
        "(the paper: 3e-5 for ipo, 6e-5 for gr_ipo).",
    )
    eval: EvalConfig = _RECIPE["eval"]
    checkpoint_every: int | None = _RECIPE["checkpoint_every"]
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="MLflow tracking and registry."
    )
    execution: ExecutionConfig = Field(
        default_factory=ExecutionConfig, description="Outputs and time limits."
    )

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods repeat: {list(self.methods)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {list(self.seeds)}")
        if not self.eval.splits:
            raise ValueError("eval.splits is empty: the experiment evaluates at least one split")
        if self.tracking.register_models and "validation" not in self.eval.splits:
            raise ValueError(
                f"tracking.champion_metric {self.tracking.champion_metric} needs 'validation' in eval.splits "
                "(or set tracking.register_models=false)"
            )
        for method, lr in self.method_learning_rates.items():
            if lr <= 0:
                raise ValueError(f"method_learning_rates[{method}] must be positive, got {lr}")
        self.recipe(self.methods[0])  # the recipe's own checks
        return self

    def learning_rate_for(self, method: Method) -> float:
        """The learning rate ``method`` trains with."""
        return self.method_learning_rates.get(method, self.optim.learning_rate)

    def recipe(self, method: Method) -> TrainingRecipe:
        """What the training code reads for ``method``: the science sections, its learning rate."""
        optim = self.optim.model_copy(update={"learning_rate": self.learning_rate_for(method)})
        return TrainingRecipe(
            model=self.model,
            sft=self.sft,
            loss=self.loss,
            group_weights=self.group_weights,
            optim=optim,
            eval=self.eval,
            checkpoint_every=self.checkpoint_every,
            prompts_rendered=self.data.renders_chat_template,
        )


def demo_config() -> RunConfig:
    """The embedded default run: ``grpo demo``, the ``experiment`` deployment's default parameters,
    and ``examples/tiny_opinions.yaml``.

    A tiny Llama-style model (built from config, random weights, no SFT: there is no pretrained
    behaviour to adapt) on the built-in opinion survey: two groups answer two-option questions,
    the minority answers 40% as often and reverses the majority on three topics in four, and the
    prompt does not say who answers (one policy serves both groups, so it must trade them off).
    IPO against GR-IPO, five seeds, float32 (the tiny model's matmuls are too small for bfloat16
    to pay, and float32 keeps the seeds' differences to the data order alone).
    """
    return RunConfig(
        name="grpo-demo",
        methods=("ipo", "gr_ipo"),
        seeds=(0, 1, 2, 3, 4),
        data=DataConfig(
            format="synthetic",
            split=(0.7, 0.15, 0.15),
            split_by_question=True,
            synthetic=OpinionGeneratorConfig(
                num_groups=2,
                group_sizes=(1.0, 0.4),
                num_questions=480,
                disagreement=0.75,
                min_options=2,
                max_options=2,
            ),
            survey=SurveyOptions(prompt_template=SHARED_PROMPT_TEMPLATE),
        ),
        model=ModelConfig(preset="tiny", max_length=256, dtype="float32"),
        sft=SFTConfig(enabled=False),
        loss=LossConfig(beta=0.1),
        group_weights=GroupWeightsConfig(step_size=0.003),
        optim=OptimConfig(learning_rate=3e-4, batch_size=16, max_steps=600, max_grad_norm=10.0),
        eval=EvalConfig(every_steps=50, batch_size=64, splits=("validation", "test")),
        checkpoint_every=200,
    )
