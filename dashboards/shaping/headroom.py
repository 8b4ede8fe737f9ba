"""Each method's reward accuracy beside the headroom of a group-blind policy on the same split.

A flow's parent run holds ``headroom/<split>/...`` metrics (:mod:`grpo_core.names`): the best
worst-group reward accuracy any policy that cannot see the group can reach on the data, as a lower
bound (a policy that reaches it exists) and an upper bound (none does better), the per-group
accuracies of that policy, and the prompt counts behind it.
"""

from __future__ import annotations

import pandas as pd

from dashboards.shaping.order import ordered
from dashboards.shaping.tables import RunTables
from grpo_core import names

HEADROOM_COLUMNS = ["split", "scope", "group", "metric", "value"]
BOUND_COLUMN = "group-blind policy"
"""The bound's column in :func:`headroom_table`."""
PARENT_TYPES = ("experiment", "sweep")
_ONE = 1.0 - 1e-9


def headroom_metrics(tables: RunTables) -> pd.DataFrame:
    """The ``headroom/...`` values of the flow's parent run(s): :data:`HEADROOM_COLUMNS` (the first
    parent's, when several)."""
    parents = tables.runs[tables.runs["run_type"].isin(PARENT_TYPES)]["run_id"].tolist()
    rows = []
    for run_id, key, value in tables.latest[["run_id", "key", "value"]].itertuples(index=False):
        parsed = names.HeadroomKey.parse(key)
        if parsed is not None and parents and run_id == parents[0]:
            rows.append((parsed.split, parsed.scope, parsed.group, parsed.metric, float(value)))
    return pd.DataFrame(rows, columns=HEADROOM_COLUMNS)


def _value(
    bounds: pd.DataFrame, split: str, scope: str, metric: str, group: str = ""
) -> float | None:
    hit = bounds[
        (bounds["split"] == split)
        & (bounds["scope"] == scope)
        & (bounds["metric"] == metric)
        & (bounds["group"] == group)
    ]["value"]
    return None if hit.empty else float(hit.iloc[-1])


def _method_means(final: pd.DataFrame, split: str, scope: str, group: str = "") -> dict[str, float]:
    rows = final[
        (final["split"] == split)
        & (final["scope"] == scope)
        & (final["metric"] == "reward_accuracy")
        & (final["group"] == group)
    ]
    means = rows.groupby("method", sort=False)["value"].mean()
    return {method: float(means[method]) for method in ordered(means.index)}


def headroom_table(
    bounds: pd.DataFrame, final: pd.DataFrame, split: str, groups: dict[str, str]
) -> pd.DataFrame:
    """Reward accuracy on ``split``, worst group first, then each group: one column per method
    (mean over seeds) and :data:`BOUND_COLUMN` (``lower..upper`` for the worst group; for a group,
    its accuracy under the policy that reaches the worst-group lower bound). Empty when the
    parent run holds no headroom for ``split``."""
    lower_key, upper_key = names.HEADROOM_BOUNDS[1], names.HEADROOM_BOUNDS[0]
    lower = _value(bounds, split, "worst_group", lower_key)
    upper = _value(bounds, split, "worst_group", upper_key)
    if lower is None or upper is None:
        return pd.DataFrame()
    rows = [
        {
            "": "worst group",
            **{m: f"{v:.3f}" for m, v in _method_means(final, split, "worst_group").items()},
            BOUND_COLUMN: f"{lower:.3f}..{upper:.3f}",
        }
    ]
    for slug, name in groups.items():
        bound = _value(bounds, split, "group", names.HEADROOM_GROUP_METRIC, slug)
        if bound is None:
            continue
        rows.append(
            {
                "": name,
                **{m: f"{v:.3f}" for m, v in _method_means(final, split, "group", slug).items()},
                BOUND_COLUMN: f"{bound:.3f}",
            }
        )
    table = pd.DataFrame(rows).fillna("")
    return table[["", *(c for c in table.columns if c not in ("", BOUND_COLUMN)), BOUND_COLUMN]]


def headroom_sentence(bounds: pd.DataFrame, final: pd.DataFrame, split: str) -> str | None:
    """One sentence: each method's worst-group reward accuracy on ``split`` against the bound, e.g.
    ``worst group: ipo 0.41, gr_ipo 0.58 of a possible 0.81 (a group-blind policy can reach
    0.81..0.82 on the test split)``, and why; None when the parent run holds no headroom."""
    lower = _value(bounds, split, "worst_group", names.HEADROOM_BOUNDS[1])
    upper = _value(bounds, split, "worst_group", names.HEADROOM_BOUNDS[0])
    if lower is None or upper is None:
        return None
    methods = _method_means(final, split, "worst_group")
    reached = ", ".join(f"{m} {v:.2f}" for m, v in methods.items()) or "no method evaluated"
    text = (
        f"worst group: {reached} of a possible {lower:.2f} "
        f"(a group-blind policy can reach {lower:.2f}..{upper:.2f} on the {split} split)"
    )
    prompts = _value(bounds, split, "data", "prompts")
    shared = _value(bounds, split, "data", "shared_prompts")
    conflicting = _value(bounds, split, "data", "conflicting_prompts")
    if upper >= _ONE:
        if shared is None:
            why = "on every prompt the pairs of all groups fit one ordering"
        elif shared == 0:
            why = "no prompt is shared by two groups: a policy can order each prompt for its own group"
        else:
            why = (
                f"{shared:.0f} prompts are shared by two or more groups, but on every prompt the "
                "pairs of all groups fit one ordering: one policy can satisfy every pair"
            )
        return f"{text}; the bound is 1 because {why}."
    if conflicting is not None and prompts is not None:
        return (
            f"{text}; below 1 because {conflicting:.0f} of {prompts:.0f} prompts hold pairs that "
            "no single ordering satisfies."
        )
    return f"{text}."


def group_points(
    final: pd.DataFrame, split: str, first: str, second: str
) -> dict[str, tuple[float, float]]:
    """Each method's mean reward accuracy on groups ``first`` and ``second`` (slugs) on ``split``:
    its point beside a two-group frontier (methods missing either group left out)."""
    a = _method_means(final, split, "group", first)
    b = _method_means(final, split, "group", second)
    return {method: (a[method], b[method]) for method in a if method in b}
