"""Evaluation runs, and plain-language notes on what is missing or unfinished."""

from __future__ import annotations

import pandas as pd

from dashboards.shaping.final import final_metrics
from dashboards.shaping.tables import RunTables
from grpo_core import names


def evaluation_table(tables: RunTables, split: str = "test") -> pd.DataFrame:
    """One row per evaluation run, latest first: when, model, dataset and the split's aggregates."""
    runs = tables.runs[tables.runs["run_type"] == "evaluation"].sort_values(
        "start_time", ascending=False
    )
    final = final_metrics(tables.select(runs["run_id"]))
    final = final[(final["split"] == split) & (final["scope"] != "group")]
    wide = final.assign(label=final["scope"].str.cat(final["metric"], sep="/").map(names.label))
    wide = wide.pivot_table(index="run_id", columns="label", values="value", aggfunc="last")
    columns = [names.label(k) for k in names.SUMMARY if names.label(k) in wide.columns]
    info = runs[["run_id", "start_time", "status", "model_uri", "dataset"]]
    return info.merge(wide[columns], left_on="run_id", right_index=True, how="left").reset_index(
        drop=True
    )


def status_notes(tables: RunTables) -> list[str]:
    """Plain-language notes on what is missing or unfinished among the train runs."""
    train = tables.runs[tables.runs["run_type"] == "train"]
    notes = []
    running = train[train["status"].isin(["RUNNING", "SCHEDULED"])]
    if len(running):
        notes.append(
            f"{_runs_text(len(running), len(train), 'is', 'are')} still in progress: their values are the latest logged."
        )
    failed = train[train["status"].isin(["FAILED", "KILLED"])]
    if len(failed):
        notes.append(
            f"{_runs_text(len(failed), len(train), '', '')} failed or stopped: "
            + ", ".join(_run_names(failed))
            + "."
        )
    warned = train[train["warnings"].notna() & (train["warnings"] != "")]
    if len(warned):
        notes.append(
            f"{_runs_text(len(warned), len(train), 'has', 'have')} warnings: "
            + ", ".join(
                f"{label} ({text})"
                for label, text in zip(_run_names(warned), warned["warnings"], strict=True)
            )
            + "."
        )
    evaluated = set(
        tables.latest.loc[tables.latest["key"].str.startswith(f"{names.EVAL}/"), "run_id"]
    )
    unevaluated = train[~train["run_id"].isin(evaluated)]
    if len(unevaluated):
        notes.append(
            f"{_runs_text(len(unevaluated), len(train), 'has', 'have')} no evaluation metrics yet: "
            + ", ".join(_run_names(unevaluated))
            + "."
        )
    return notes


def _runs_text(count: int, total: int, singular: str, plural: str) -> str:
    """``1 of 4 training runs is`` / ``2 of 4 training runs are``: the verb agrees with ``count``."""
    verb = singular if count == 1 else plural
    return f"{count} of {total} training runs {verb}".rstrip()


def _run_names(runs: pd.DataFrame) -> list[str]:
    """``ipo seed 0``, with the recorded reason of a failed run in brackets."""
    names_ = []
    for method, seed, name, failure in zip(
        runs["method"], runs["seed"], runs["run_name"], runs["failure"], strict=True
    ):
        label = f"{method} seed {seed}" if pd.notna(method) else str(name)
        names_.append(f"{label} ({failure})" if isinstance(failure, str) and failure else label)
    return names_
