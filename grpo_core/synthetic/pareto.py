"""The worst-group vs average sweep over chi (``robust_mix``) on the synthetic bandit.

chi mixes the theta weights between uniform (chi = 0: importance sampling) and the robust alpha
(chi = 1: GRPO), w_g = (1 - chi) / K + chi * alpha_g (Ramesh et al. 2024, arXiv:2405.20304;
docs/ALGORITHM.md#the-objective). Every (chi, seed) is a
replica of one training-loop call, as the methods of ``grpo synthetic`` are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grpo_core.loop import StepRecord
from grpo_core.methods import Method, is_group_robust
from grpo_core.pareto import non_dominated
from grpo_core.synthetic.experiment import (
    SETTINGS,
    MethodResult,
    Problem,
    SyntheticConfig,
    mean_ci95,
    run_family,
)

DEFAULT_CHIS = (0.0, 0.25, 0.5, 0.75, 1.0)


def chi_sweep(
    problem: Problem,
    config: SyntheticConfig,
    method: Method,
    chis: Sequence[float] = DEFAULT_CHIS,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[MethodResult]:
    """Train the group-robust ``method`` once per chi on every seed; results in the order of chis."""
    if not is_group_robust(method):
        raise ValueError(
            f"the chi sweep needs a group-robust method (gr_dpo, gr_ipo), not {method}"
        )
    if not chis or any(not 0.0 <= chi <= 1.0 for chi in chis):
        raise ValueError(f"chi values must lie in [0, 1], got {list(chis)}")
    iterations = config.iterations or SETTINGS[config.setting].iterations
    methods = [method] * len(chis)
    return run_family(problem, config, methods, iterations, on_step, robust_mix=list(chis))


def summarize_sweep(
    config: SyntheticConfig, method: Method, chis: Sequence[float], results: Sequence[MethodResult]
) -> dict:
    """One row per chi: worst-group and average validation loss and max reward error (mean and
    95% interval over seeds), final group weights, and whether the setting is on the Pareto front
    of (worst-group, average) validation loss."""
    rows = []
    for chi, r in zip(chis, results, strict=True):
        rows.append(
            {
                "chi": float(chi),
                "worst_val_group_loss": mean_ci95(r.val_group_loss.max(-1).values),
                "average_val_group_loss": mean_ci95(r.val_group_loss.mean(-1)),
                "max_reward_error": mean_ci95(r.max_reward_error),
                "final_group_weights": r.group_weights.mean(0).tolist(),
            }
        )
    front = non_dominated(
        [row["worst_val_group_loss"]["mean"] for row in rows],
        [row["average_val_group_loss"]["mean"] for row in rows],
    )
    for row, on_front in zip(rows, front, strict=True):
        row["pareto"] = on_front
    return {
        "setting": config.setting,
        "seeds": config.seeds,
        "feature_type": config.feature_type,
        "method": method,
        "rows": rows,
    }
