"""The paper's synthetic experiments: every method on the group linear bandit, vectorised over seeds.

All seeds of one method train together as replicas of one log-linear policy through the ONE training
loop (full-batch gradient descent), or through the IPO closed form. The settings and metrics are
those of the synthetic experiments of Ramesh et al. 2024 (arXiv:2405.20304,
https://arxiv.org/abs/2405.20304; docs/ALGORITHM.md#log-linear-policies).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from grpo_core.config import GroupWeightsConfig, LossConfig, OptimConfig, Section
from grpo_core.evaluation import group_metrics, score_pairs
from grpo_core.groups import GroupWeights, theta_group_coefficients
from grpo_core.loglinear import (
    ActionPairs,
    LogLinearPolicy,
    gr_ipo_closed_form,
    group_pair_weights,
    ipo_closed_form,
)
from grpo_core.loop import StepRecord, train
from grpo_core.methods import METHODS, LossType, Method, is_group_robust, loss_type_of, weighting_of
from grpo_core.objective import Objective
from grpo_core.policy import group_sizes_of
from grpo_core.stats import t_interval
from grpo_core.synthetic.bandit import (
    EvalStates,
    FeatureType,
    ResponseType,
    kl_to_optimal,
    reward_errors,
    sample_pairs,
)

SettingName = Literal["even-imbalanced", "uneven-balanced", "uneven-imbalanced"]


@dataclass(frozen=True)
class Setting:
    """One of the paper's synthetic settings with its hyperparameters.

    See docs/ALGORITHM.md#log-linear-policies.
    """

    group_counts: tuple[int, int]
    response_type: ResponseType
    beta: float
    learning_rate: float
    step_size: float
    iterations: int


SETTINGS: dict[str, Setting] = {
    "even-imbalanced": Setting(
        (60, 240), "even", beta=1.0, learning_rate=0.5, step_size=0.9, iterations=10_000
    ),
    "uneven-balanced": Setting(
        (150, 150), "uneven", beta=2.0, learning_rate=5.0, step_size=0.01, iterations=5_000
    ),
    "uneven-imbalanced": Setting(
        (60, 240), "uneven", beta=1.0, learning_rate=0.9, step_size=0.5, iterations=20_000
    ),
}


class SyntheticConfig(Section):
    """One run of the synthetic benchmark: a setting, its methods and seeds."""

    setting: SettingName = Field("uneven-imbalanced", description="The paper's synthetic setting.")
    seeds: int = Field(
        20, ge=2, description="Number of seeds (0 .. seeds-1); intervals need at least 2."
    )
    methods: tuple[Method, ...] = Field(METHODS, min_length=1, description="Methods to compare.")
    feature_type: FeatureType = Field(
        "swapped", description="How group 1's features relate to group 0's."
    )
    solver: Literal["gradient", "closed_form"] = Field(
        "gradient",
        description="'gradient': full-batch gradient descent in the training loop (every method); "
        "'closed_form': the exact IPO solution, alternated with alpha steps for gr_ipo (IPO family only).",
    )
    closed_form_beta: float = Field(
        0.1, gt=0, description="beta of the closed-form runs (the paper's 0.1)."
    )
    closed_form_step_size: float = Field(
        0.01,
        ge=0,
        description="eta_alpha of the closed-form gr_ipo iterations. IPO losses at beta=0.1 are ~25x those "
        "of the gradient settings, and their eta_alpha makes the exact alternation oscillate.",
    )
    iterations: int | None = Field(
        None, ge=1, description="Override the setting's iteration count."
    )
    validation_pairs: int = Field(
        1000, ge=2, description="Validation pairs, split 50/50 between the groups."
    )
    test_states: int = Field(1000, ge=1, description="Test states for reward error and KL.")
    record_every: int = Field(
        100, ge=1, description="Record the validation curve every this many iterations."
    )

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods repeat: {list(self.methods)}")
        if self.solver == "closed_form":
            dpo = [m for m in self.methods if loss_type_of(m) == "dpo"]
            if dpo:
                raise ValueError(f"the closed form exists for the IPO family only; remove {dpo}")
        return self


@dataclass(frozen=True)
class Problem:
    """The data of every seed: training and validation pairs, test states, initial theta."""

    train: ActionPairs
    validation: ActionPairs
    test: EvalStates
    theta0: Tensor


@dataclass
class MethodResult:
    """Per-seed outcomes of one method (``[S]`` tensors) and its validation curve."""

    method: str
    max_val_group_loss: Tensor
    max_reward_error: Tensor
    val_group_loss: Tensor
    reward_error: Tensor
    kl: Tensor
    group_weights: Tensor
    curve_steps: list[int] = field(default_factory=list)
    curve_worst_val_loss: list[float] = field(default_factory=list)


def make_problem(config: SyntheticConfig) -> Problem:
    """Data for seeds 0 .. S-1; seed s's data do not depend on how many seeds run."""
    setting = SETTINGS[config.setting]
    half = config.validation_pairs // 2
    parts = []
    for seed in range(config.seeds):
        generator = torch.Generator().manual_seed(seed)
        common = dict(
            replicas=1,
            feature_type=config.feature_type,
            response_type=setting.response_type,
            generator=generator,
        )
        train_pairs = sample_pairs(setting.group_counts, **common)
        val_pairs = sample_pairs((half, config.validation_pairs - half), **common)
        states = torch.rand((1, config.test_states, 2), generator=generator)
        theta0 = torch.rand((1, 4), generator=generator) * 5.0
        parts.append((train_pairs, val_pairs, states, theta0))
    return Problem(
        train=_stack([p[0] for p in parts]),
        validation=_stack([p[1] for p in parts]),
        test=EvalStates(torch.cat([p[2] for p in parts])),
        theta0=torch.cat([p[3] for p in parts]),
    )


def select_seeds(problem: Problem, seeds: slice) -> Problem:
    """The sub-problem of some seeds (replicas), e.g. ``slice(3, 4)`` for seed 3 alone."""

    def pick(p: ActionPairs) -> ActionPairs:
        return ActionPairs(
            p.features[seeds], p.chosen[seeds], p.rejected[seeds], p.group_ids[seeds], p.num_groups
        )

    return Problem(
        pick(problem.train),
        pick(problem.validation),
        EvalStates(problem.test.states[seeds]),
        problem.theta0[seeds],
    )


def _stack(pairs: Sequence[ActionPairs]) -> ActionPairs:
    return ActionPairs(
        torch.cat([p.features for p in pairs]),
        torch.cat([p.chosen for p in pairs]),
        torch.cat([p.rejected for p in pairs]),
        torch.cat([p.group_ids for p in pairs]),
        pairs[0].num_groups,
    )


def validation_group_losses(
    policy: LogLinearPolicy, data: ActionPairs, beta: float, loss_type: LossType
) -> Tensor:
    """Per-replica, per-group validation loss: ``[R, 2]``."""
    return group_metrics(score_pairs(policy, data), data.num_groups, beta, loss_type)["loss"]


def run_method(
    problem: Problem,
    config: SyntheticConfig,
    method: Method,
    on_step: Callable[[StepRecord], None] | None = None,
) -> MethodResult:
    """Train ``method`` on every seed at once and measure it (the paper's synthetic metrics)."""
    return run_methods(problem, config, (method,), on_step)[0]


def run_methods(
    problem: Problem,
    config: SyntheticConfig,
    methods: Sequence[Method],
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[MethodResult]:
    """Train ``methods`` on every seed, one training-loop call per loss family (results in order).

    Within a family the methods differ only in their group weights
    (docs/ALGORITHM.md#the-objective), so every
    (method, seed) is a replica of one robust objective: plain = alpha frozen at N_g/N, importance
    sampling = alpha frozen at 1/K, group robust = alpha from 1/K with the setting's eta_alpha.
    """
    iterations = config.iterations or SETTINGS[config.setting].iterations
    if config.solver == "closed_form":
        return [_closed_form(problem, config, m, iterations) for m in methods]
    results: dict[str, MethodResult] = {}
    for loss_type in ("dpo", "ipo"):
        family = [m for m in methods if loss_type_of(m) == loss_type]
        if family:
            results |= {
                r.method: r for r in run_family(problem, config, family, iterations, on_step)
            }
    return [results[m] for m in methods]


def run_family(
    problem, config, methods, iterations, on_step, robust_mix: Sequence[float] | None = None
) -> list[MethodResult]:
    """Every (method, seed) of one loss family as a replica of one training-loop call;
    ``robust_mix`` gives each method its chi (default 1)."""
    setting = SETTINGS[config.setting]
    seeds, count = problem.theta0.shape[0], len(methods)
    mixes = robust_mix if robust_mix is not None else [1.0] * count
    train_data, validation = _repeat(problem.train, count), _repeat(problem.validation, count)
    sizes = group_sizes_of(problem.train)
    uniform = torch.full_like(sizes, 1.0 / sizes.shape[-1])
    start = {"size": sizes / sizes.sum(-1, keepdim=True), "uniform": uniform, "robust": uniform}
    initial = torch.cat([start[weighting_of(m)] for m in methods])
    step_sizes = torch.cat(
        [torch.full((seeds, 1), setting.step_size if is_group_robust(m) else 0.0) for m in methods]
    )
    loss_type = loss_type_of(methods[0])
    # The pair-robust baselines (cdpo, rdpo, dr_dpo, kl_dpo) are replicas too: per-replica label
    # flips and pair weights, with the loss section's defaults (eps, temperature, cap).
    own = [
        Objective.for_method(m, LossConfig(beta=setting.beta), GroupWeightsConfig())
        for m in methods
    ]

    def per_replica(values) -> Tensor:
        return torch.cat([torch.full((seeds, 1), float(v)) for v in values])

    objective = Objective(
        loss_type=loss_type,
        weighting="robust",
        beta=setting.beta,
        step_size=step_sizes,
        robust_mix=per_replica(mixes),
        flip=(per_replica(o.flip[0] for o in own), per_replica(o.flip[1] for o in own)),
        pair_sign=per_replica(o.pair_sign for o in own),
        pair_temperature=per_replica(o.pair_temperature for o in own),
        pair_weight_cap=per_replica(o.pair_weight_cap for o in own),
    )
    optim = OptimConfig(
        optimizer="sgd",
        learning_rate=setting.learning_rate,
        batch_size=None,
        max_steps=iterations,
        max_grad_norm=None,
    )
    policy = LogLinearPolicy(problem.theta0.repeat(count, 1))
    steps: list[int] = []
    worst: list[Tensor] = []

    def record(step_record: StepRecord) -> None:
        if on_step is not None:
            on_step(step_record)
        if step_record.step % config.record_every == 0 or step_record.step == iterations:
            losses = validation_group_losses(policy, validation, setting.beta, loss_type)
            steps.append(step_record.step)
            worst.append(losses.max(-1).values.view(count, seeds).mean(-1))

    result = train(
        policy, train_data, objective, optim, seed=0, callbacks=[record], history_every=iterations,
        initial_weights=GroupWeights(initial.log()),
    )  # fmt: skip
    coefficients = result.history[-1].coefficients.view(count, seeds, -1)
    curves = torch.stack(worst, dim=-1) if worst else torch.empty(count, 0)
    thetas = policy.theta.detach().view(count, seeds, -1)
    return [
        _measure(
            problem,
            config,
            m,
            LogLinearPolicy(thetas[i]),
            setting.beta,
            coefficients[i],
            steps,
            curves[i].tolist(),
        )
        for i, m in enumerate(methods)
    ]


def _repeat(pairs: ActionPairs, times: int) -> ActionPairs:
    return ActionPairs(
        pairs.features.repeat(times, 1, 1, 1),
        pairs.chosen.repeat(times, 1),
        pairs.rejected.repeat(times, 1),
        pairs.group_ids.repeat(times, 1),
        pairs.num_groups,
    )


def _closed_form(
    problem: Problem, config: SyntheticConfig, method: Method, iterations: int
) -> MethodResult:
    beta = config.closed_form_beta
    sizes = group_sizes_of(problem.train)
    if weighting_of(method) == "robust":
        theta, weights = gr_ipo_closed_form(
            problem.train, beta, config.closed_form_step_size, iterations, group_sizes=sizes
        )
    else:
        weights = GroupWeights.uniform(2, batch_shape=(problem.theta0.shape[0],))
    coefficients = theta_group_coefficients(weighting_of(method), sizes, weights)
    if weighting_of(method) != "robust":
        pair_weights = group_pair_weights(problem.train.group_ids, coefficients, sizes)
        theta = ipo_closed_form(problem.train.feature_difference, pair_weights, beta)
    policy = LogLinearPolicy(theta)
    return _measure(problem, config, method, policy, beta, coefficients, [], [])


def _measure(problem, config, method, policy, beta, coefficients, steps, worst) -> MethodResult:
    with torch.no_grad():
        val = validation_group_losses(policy, problem.validation, beta, loss_type_of(method))
        errors = reward_errors(policy.theta, problem.test, config.feature_type)
        kl = kl_to_optimal(policy.theta, problem.test, config.feature_type)
    if not steps:
        steps, worst = [0], [val.max(-1).values.mean().item()]
    return MethodResult(
        method=method,
        max_val_group_loss=val.max(-1).values,
        max_reward_error=errors.max(-1).values,
        val_group_loss=val,
        reward_error=errors,
        kl=kl,
        group_weights=coefficients.detach(),
        curve_steps=steps,
        curve_worst_val_loss=worst,
    )


def mean_ci95(values: Tensor) -> dict[str, float]:
    """Mean and the half-width of the 95% Student-t interval over seeds (:mod:`grpo_core.stats`)."""
    mean, half, _ = t_interval(values.double().tolist())
    return {"mean": mean, "ci95": half}


def summarize_results(config: SyntheticConfig, results: Sequence[MethodResult]) -> dict:
    """The JSON document of ``grpo synthetic --json``."""
    return {
        "setting": config.setting,
        "seeds": config.seeds,
        "feature_type": config.feature_type,
        "solver": config.solver,
        "results": {
            r.method: {
                "max_val_group_loss": mean_ci95(r.max_val_group_loss),
                "max_reward_error": mean_ci95(r.max_reward_error),
                "final_group_weights": r.group_weights.mean(0).tolist(),
                "val_group_loss": r.val_group_loss.mean(0).tolist(),
                "reward_error": r.reward_error.mean(0).tolist(),
                "kl": r.kl.mean(0).tolist(),
                "curve": {"steps": r.curve_steps, "worst_val_group_loss": r.curve_worst_val_loss},
            }
            for r in results
        },
    }
