"""The science of one language-model training run: the config sections that ``grpo_core.lm`` reads.

The pipeline's run config (``tasks.run_config.RunConfig``) composes these sections with tracking and
execution settings and hands :meth:`RunConfig.recipe` to the training code; a checkpoint stores its
recipe, so that a resumed run and a later evaluation rebuild exactly the same policy and losses.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from grpo_core.config import EvalConfig, GroupWeightsConfig, LossConfig, OptimConfig, Section
from grpo_core.lm.config import ModelConfig, SFTConfig
from grpo_core.methods import Method, is_group_robust, pair_weighting_of, smoothing_of


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


def unused_settings(method: Method) -> tuple[str, ...]:
    """The recipe's settings that training ``method`` never reads, as dotted keys.

    Read off :meth:`grpo_core.objective.Objective.for_method` and :mod:`grpo_core.loop`:
    eta_alpha, chi and the halving of eta_alpha act only where alpha moves or weighs the groups
    (``gr_dpo``, ``gr_ipo``; Ramesh et al. 2024, arXiv:2405.20304, Algorithm 1); the label
    smoothing eps only in ``cdpo`` and ``rdpo``; the pairs' temperature only in ``dr_dpo`` and
    ``kl_dpo``, and the pairs' weight cap only in ``kl_dpo`` (docs/ALGORITHM.md#baselines). The
    group-loss estimator stays: every method's theta loss is sum_g c_g Lhat_g of its estimate.
    """
    unused = []
    if not is_group_robust(method):
        unused += ["group_weights.step_size", "group_weights.robust_mix"]
        unused += ["group_weights.halve_step_on_lr_cut"]
    if smoothing_of(method) == "none":
        unused.append("loss.label_smoothing")
    pairs = pair_weighting_of(method)
    if pairs == "none":
        unused.append("loss.pair_temperature")
    if pairs != "kl":
        unused.append("loss.pair_weight_cap")
    return tuple(unused)


def effective_recipe(recipe: TrainingRecipe, method: Method) -> TrainingRecipe:
    """``recipe`` as ``method`` trains with it: each of its :func:`unused_settings` set to the
    field's default, so two recipes that differ only in settings the method ignores become equal
    (e.g. IPO at any ``group_weights.step_size``). The learning rate needs nothing: a recipe
    holds its own method's only, whatever other methods' rates the run config names.
    """
    defaults: dict[str, dict] = {}
    for key in unused_settings(method):
        section, field = key.split(".")
        default = type(getattr(recipe, section)).model_fields[field].get_default()
        defaults.setdefault(section, {})[field] = default
    return recipe.model_copy(
        update={s: getattr(recipe, s).model_copy(update=u) for s, u in defaults.items()}
    )
