"""Canonical orders: methods in the paper's order, settings, and sorting a table by given orders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from grpo_core.methods import METHODS

FAMILIES = {"dpo": "DPO family", "ipo": "IPO family"}


def method_rank(method: object) -> tuple[int, str]:
    """Sort key: the six methods in their canonical order, anything else after, alphabetically."""
    text = str(method)
    return (METHODS.index(text) if text in METHODS else len(METHODS), text)


def ordered(values: Iterable[object]) -> list:
    """Distinct values in :func:`method_rank` order."""
    return sorted(set(values), key=method_rank)


def sort_by(frame: pd.DataFrame, **orders: Sequence[object]) -> pd.DataFrame:
    """``frame`` sorted by each named column in the given order of values (unlisted values last)."""
    ranks = {
        f"_rank_{column}": frame[column].map({v: i for i, v in enumerate(order)}).fillna(len(order))
        for column, order in orders.items()
    }
    return frame.assign(**ranks).sort_values(list(ranks), kind="stable").drop(columns=list(ranks))
