"""The dashboard's views of the flow runs beside the experiments: sweeps, groups left out, the
synthetic benchmark and the registered model's evaluations (:mod:`dashboards.app` lays them out)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboards import app_data as data
from dashboards import figures, shaping
from dashboards.render_plotly import to_plotly
from grpo_core import names
from grpo_core.names import metric_label


def pick_parent(parents: pd.DataFrame, label: str, key: str, help: str | None = None) -> str:
    """A select box of flow runs (MLflow parent runs, latest first); the chosen run id."""
    labels = dict(zip(parents["run_id"], parents["label"], strict=True))
    return st.selectbox(label, list(parents["run_id"]), format_func=labels.get, key=key, help=help)


def unseen_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Groups never seen in training")
    parents = shaping.flow_runs(runs, "experiment")
    with_held_out = runs.loc[runs["held_out_group"].notna(), "parent_run_id"].unique()
    parents = parents[parents["run_id"].isin(with_held_out)]
    parent = pick_parent(parents, "Flow run with groups left out", f"unseen-{experiment_id}")
    kids = shaping.children(runs, [parent])
    tables = data.tables(uri, experiment_id, kids, latest, [parent])
    values = shaping.held_out_values(tables)
    split = shaping.last_split(values)
    metric = st.radio(
        "Metric", list(names.HEADLINE_METRICS), format_func=metric_label, horizontal=True,
        key=f"unseen-metric-{parent}",
    )  # fmt: skip
    st.caption(
        f"Each group on {split} when the method trained with it (seen) and without it (unseen), "
        "mean ± 95% interval over seeds; worse_unseen > 0: worse on the group it never saw."
    )
    st.dataframe(shaping.unseen_groups(values, split, metric, dict(tables.groups)), hide_index=True)


def sweep_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Sweeps: worst group against average")
    parents = shaping.flow_runs(runs, "sweep")
    parent = pick_parent(
        parents, "Sweep flow run", f"sweep-{experiment_id}",
        "Sweep flow runs (MLflow parent runs), latest first.",
    )  # fmt: skip
    kids = shaping.children(runs, [parent])
    if kids.empty:
        st.info("No child of this sweep has been logged yet: it may still be starting.")
        return
    tables = data.tables(uri, experiment_id, kids, latest, [parent])
    for note in shaping.status_notes(tables):
        st.info(note)
    left, right = st.columns(2)
    split = left.radio(
        "Split", ["validation", "test"], horizontal=True, key=f"sweep-split-{parent}"
    )
    metric = right.radio(
        "Metric",
        list(names.HEADLINE_METRICS),
        format_func=metric_label,
        horizontal=True,
        key=f"sweep-metric-{parent}",
    )
    table = shaping.sweep_points(shaping.sweep_values(tables), split, metric)
    if table.empty:
        st.info(f"No child of this sweep has been evaluated on {split} yet.")
        return
    shown = table.assign(setting=table["setting"].map(shaping.short_setting))
    for method in shown["method"].unique():
        spec = figures.pareto_figure(shown[shown["method"] == method], method, metric)
        st.plotly_chart(to_plotly(spec), key=f"pareto-{method}")
    st.caption(
        "Mean over seeds ± half-width of the 95% interval; pareto: no other setting of the same "
        "method is as good on both and better on one."
    )
    st.dataframe(table, hide_index=True)


def synthetic_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Synthetic benchmark")
    parents = shaping.flow_runs(runs, "synthetic")
    parent = pick_parent(parents, "Synthetic flow run", f"synthetic-{experiment_id}")
    kids = shaping.children(runs, [parent], "synthetic_method")
    if kids.empty:
        st.info("This synthetic flow run has no method runs yet.")
        return
    tables = data.tables(uri, experiment_id, kids, latest, [])
    summary = shaping.synthetic_summary(tables)
    curves = shaping.synthetic_curves(tables)
    if curves.empty:
        st.caption("No validation-loss curves were logged; only the final numbers are shown.")
    st.plotly_chart(to_plotly(figures.synthetic_figure(curves, summary)), key="synthetic")
    st.dataframe(shaping.synthetic_table(summary), hide_index=True)
    sweeps = shaping.synthetic_sweeps(tables)
    if sweeps.empty:
        return
    st.subheader("Worst group against average: the chi sweeps")
    for (problem, method), sweep in sweeps.groupby(["problem", "method"], sort=False):
        spec = figures.pareto_figure(sweep, method)
        spec = replace(spec, title=f"{problem}: {spec.title}")
        st.plotly_chart(to_plotly(spec), key=f"pareto-{problem}-{method}")
    st.dataframe(sweeps, hide_index=True)


def evaluation_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Evaluations of the registered model")
    evaluations = runs[runs["run_type"] == "evaluation"]
    tables = data.tables(uri, experiment_id, evaluations, latest, [])
    st.dataframe(shaping.evaluation_table(tables), hide_index=True)
    final = shaping.final_metrics(tables)
    newest = evaluations.sort_values("start_time").iloc[-1]
    latest_final = final[final["run_id"] == newest["run_id"]]
    split = "test" if (latest_final["split"] == "test").any() else "validation"
    bars = shaping.group_bars(latest_final, split, "loss", tables.groups, by="label")
    if bars.empty:
        st.info("The latest evaluation run has no per-group metrics yet.")
    else:
        st.caption(f"Latest evaluation: `{newest['model_uri']}`")
        subtitle = f"{newest['run_name']}; red outline and hatching: the worst group"
        st.plotly_chart(
            to_plotly(figures.group_bar_figure(bars, "loss", split, subtitle)),
            key="evaluation-bars",
        )
