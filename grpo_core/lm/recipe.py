"""The science of one language-model training run: the config sections that ``grpo_core.lm`` reads.

The pipeline's run config (``tasks.run_config.RunConfig``) composes these sections with tracking and
execution settings and hands :meth:`RunConfig.recipe` to the training code; a checkpoint stores its
recipe, so that a resumed run and a later evaluation rebuild exactly the same policy and losses.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from grpo_core.config import EvalConfig, GroupWeightsConfig, LossConfig, OptimConfig, Section
from grpo_core.lm.config import ModelConfig, SFTConfig


class TrainingRecipe(Section):
    """Model, SFT, loss, group weights, optimisation and evaluation of one method's training."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="The language model.")
    sft: SFTConfig = Field(
        default_factory=SFTConfig, description="Supervised fine-tuning before preference training."
    )
    loss: LossConfig = Field(default_factory=LossConfig, description="Per-pair loss.")
    group_weights: GroupWeightsConfig = Field(
        default_factory=GroupWeightsConfig, description="Group weights of the group-robust methods."
    )
    optim: OptimConfig = Field(
        default_factory=OptimConfig,
        description="Preference-stage optimisation (a recipe holds its method's own learning rate).",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Per-group evaluation.")
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Write a resumable checkpoint every this many steps (always at the end).",
    )
    prompts_rendered: bool = Field(
        False,
        description="The prepared prompts already hold the chat template (conversational pairs "
        "rendered when the data was prepared): never apply it a second time.",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingRecipe:
        if self.optim.plateau.enabled and self.eval.every_steps is None:
            raise ValueError(
                "optim.plateau needs eval.every_steps: the scheduler watches the validation loss"
            )
        return self

    @classmethod
    def from_run_info(cls, info: dict) -> TrainingRecipe:
        """The recipe a checkpoint's ``run.json`` was trained with. Checkpoints written before
        recipes existed hold the whole run config instead: its sections of the same names are read,
        with the method's own learning rate."""
        if "recipe" in info:
            return cls.model_validate(info["recipe"])
        config = info["config"]
        recipe = cls.model_validate({k: v for k, v in config.items() if k in cls.model_fields})
        rate = config.get("method_learning_rates", {}).get(info["method"])
        from grpo_core.data.config import DataConfig

        update = {
            "prompts_rendered": DataConfig.model_validate(config["data"]).renders_chat_template
        }
        if rate is not None:
            update["optim"] = recipe.optim.model_copy(update={"learning_rate": rate})
        return recipe.model_copy(update=update)
