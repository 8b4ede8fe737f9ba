"""The training methods and what each one means (docs/ALGORITHM.md#the-objective and #baselines).

The group-weighted methods are those of Ramesh et al. 2024, "Group Robust Preference Optimization in
Reward-free RLHF" (arXiv:2405.20304, https://arxiv.org/abs/2405.20304).

| method          | loss | per-group weight in the theta loss        | alpha updated |
|-----------------|------|-------------------------------------------|---------------|
| dpo / ipo       | dpo/ipo | N_g / N (plain mean over pairs)         | no            |
| is_dpo / is_ipo | dpo/ipo | 1 / K (mean of group means)             | no            |
| gr_dpo / gr_ipo | dpo/ipo | (1 - chi) / K + chi * alpha_g           | yes           |

Baselines that are robust per pair, without group labels (all DPO, weighted by size like ``dpo``):

| method   | what changes                                                        | source                   |
|----------|---------------------------------------------------------------------|--------------------------|
| cdpo     | label smoothing: (1-eps) l(h) + eps l(-h)                           | conservative DPO (Mitchell, 2023; TRL 1.16's ``sigmoid`` ignores ``label_smoothing``) |
| rdpo     | unbiased under label flips: ((1-eps) l(h) - eps l(-h)) / (1-2eps)   | Provably robust DPO (Chowdhury et al., 2024; arXiv:2403.00409); TRL ``robust`` |
| dr_dpo   | -beta' log mean_i exp(-l_i / beta'): pairs weighted by softmax(-l/beta') | Dr. DPO (Wu et al., 2024; arXiv:2407.07880; ``junkangwu/Dr_DPO``) |
| kl_dpo   | pairs weighted by exp((l_i - mean l) / tau), capped (KL-DRO)       | KL-DPO (Xu et al., 2025; arXiv:2502.01930; ``TheBlackCat22/distributionally_robust_dpo``) |

Group-robust versions of these (alpha over groups on top) are not offered: label smoothing and
flip correction target noisy labels, not groups, and a pair-level DRO weight under a group-level
one makes two adversaries over the same pairs.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal[
    "dpo", "is_dpo", "gr_dpo", "ipo", "is_ipo", "gr_ipo", "cdpo", "rdpo", "dr_dpo", "kl_dpo"
]
LossType = Literal["dpo", "ipo"]
Weighting = Literal["size", "uniform", "robust"]
Smoothing = Literal["none", "conservative", "robust"]
PairWeighting = Literal["none", "dr", "kl"]

METHODS: tuple[str, ...] = get_args(Method)


def loss_type_of(method: Method) -> LossType:
    """The per-pair loss a method uses: ``"dpo"`` (sigmoid) or ``"ipo"`` (squared)."""
    _check(method)
    return "ipo" if method.endswith("ipo") else "dpo"


def weighting_of(method: Method) -> Weighting:
    """How a method weights the group losses: by size, uniformly, or robustly (adaptive alpha)."""
    _check(method)
    if method.startswith("gr_"):
        return "robust"
    if method.startswith("is_"):
        return "uniform"
    return "size"


def smoothing_of(method: Method) -> Smoothing:
    """How a method treats possibly flipped labels: ``cdpo`` smooths, ``rdpo`` corrects."""
    _check(method)
    return {"cdpo": "conservative", "rdpo": "robust"}.get(method, "none")


def pair_weighting_of(method: Method) -> PairWeighting:
    """How a method weights the pairs of a batch before the group step: ``dr_dpo`` down-weights
    high-loss pairs, ``kl_dpo`` up-weights them; the others weight every pair alike."""
    _check(method)
    return {"dr_dpo": "dr", "kl_dpo": "kl"}.get(method, "none")


def is_group_robust(method: Method) -> bool:
    """True for ``gr_dpo`` and ``gr_ipo``, the methods whose group weights alpha adapt online."""
    return weighting_of(method) == "robust"


def plain_counterpart(method: Method) -> Method:
    """``gr_ipo`` -> ``ipo``, ``is_dpo`` -> ``dpo``, ``cdpo`` -> ``dpo``: the baseline a method is
    compared with."""
    return loss_type_of(method)


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
