"""The six training methods and what each one means (spec section 3).

| method          | loss | per-group weight in the theta loss        | alpha updated |
|-----------------|------|-------------------------------------------|---------------|
| dpo / ipo       | dpo/ipo | N_g / N (plain mean over pairs)         | no            |
| is_dpo / is_ipo | dpo/ipo | 1 / K (mean of group means)             | no            |
| gr_dpo / gr_ipo | dpo/ipo | (1 - chi) / K + chi * alpha_g           | yes           |
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["dpo", "is_dpo", "gr_dpo", "ipo", "is_ipo", "gr_ipo"]
LossType = Literal["dpo", "ipo"]
Weighting = Literal["size", "uniform", "robust"]

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


def is_group_robust(method: Method) -> bool:
    """True for ``gr_dpo`` and ``gr_ipo``, the methods whose group weights alpha adapt online."""
    return weighting_of(method) == "robust"


def plain_counterpart(method: Method) -> Method:
    """``gr_ipo`` -> ``ipo``, ``is_dpo`` -> ``dpo``: the baseline a method is compared with."""
    return loss_type_of(method)


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
