"""The Streamlit dashboard over the pipeline's MLflow runs (read-only).

Started by ``grpo dashboard``, i.e. ``streamlit run dashboards/app.py -- --tracking-uri URI``
(without the argument: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``). The URL's
``?experiment=NAME&run=PARENT_RUN_ID`` preselects an experiment and a flow run.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

try:
    import dashboards  # noqa: F401
except ModuleNotFoundError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import streamlit as st

from dashboards import figures, shaping, store
from dashboards import mlflow_source as source
from dashboards.render_plotly import to_plotly
from dashboards.style import method_label
from grpo_core import names
from grpo_core.names import metric_label

TTL_SECONDS = 30
DEFAULT_METRIC = "reward_accuracy"
"""Shown first: comparable across losses and betas, and the champion's metric."""
END_MARKER = "Read-only view of MLflow"
OUTSIDE_FLOW = "(runs outside a flow run)"


def tracking_uri(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--tracking-uri", default=None)
    args, _ = parser.parse_known_args(argv)
    return args.tracking_uri or store.tracking_uri()


# Cached MLflow reads (the only MLflow access of the page) -------------------------------------------


@st.cache_resource
def _client(uri: str):
    return source.open_client(uri)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading experiments…")
def _experiments(uri: str) -> pd.DataFrame:
    return source.list_experiments(_client(uri))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading runs…")
def _runs(uri: str, experiment_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return source.read_runs(_client(uri), [experiment_id])


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading metric histories…")
def _history(uri: str, experiment_id: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    _, latest = _runs(uri, experiment_id)
    return source.read_history(_client(uri), latest[latest["run_id"].isin(run_ids)])


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _group_order(uri: str, parent_ids: tuple[str, ...]) -> list[str]:
    return source.read_group_order(_client(uri), parent_ids)


def _tables(
    uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame, parent_ids
) -> shaping.RunTables:
    run_ids = tuple(runs["run_id"])
    order = _group_order(uri, tuple(p for p in parent_ids if p))
    return shaping.RunTables(
        runs=runs.reset_index(drop=True),
        latest=latest[latest["run_id"].isin(run_ids)].reset_index(drop=True),
        history=_history(uri, experiment_id, run_ids),
        groups=shaping.group_names(runs, order),
    )


# The page ----------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="GRPO dashboard", layout="wide")
    # Quiet downloads, and a tracking server that is down answers in seconds rather than minutes.
    for key, value in (
        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "15"),
    ):
        os.environ.setdefault(key, value)
    st.title("Group Robust Preference Optimization")
    uri = tracking_uri(sys.argv[1:])
    try:
        experiments = _experiments(uri)
    except source.StoreNotFound:
        st.info(
            f"No MLflow store at `{uri}` yet. Run `make demo` (or `grpo demo`) first, or pass `--tracking-uri`."
        )
        return _footer(uri)
    except Exception as error:  # a server that is down, a store of another MLflow version...
        st.warning(f"Could not read MLflow at `{uri}`: {error}")
        return _footer(uri)
    if experiments.empty:
        st.info("The MLflow store has no runs yet. Run `make demo` (or `grpo demo`) and refresh.")
        return _footer(uri)

    experiment = _pick_experiment(experiments)
    runs, latest = _runs(uri, experiment.experiment_id)
    shown = False
    # a sweep's children are shown by setting, in the sweep view; runs that never saw a group
    # (leave one group out) in the report's table, not among the per-group bars
    apart = (runs["sweep_point"].notna() | runs["held_out_group"].notna()) & (
        runs["run_type"] == "train"
    )
    plain = runs[~apart]
    if plain["run_type"].isin(["train", "experiment"]).any():
        _training_view(uri, experiment.experiment_id, plain, latest)
        shown = True
    if (runs["run_type"] == "sweep").any():
        _sweep_view(uri, experiment.experiment_id, runs, latest)
        shown = True
    if (runs["run_type"] == "synthetic").any():
        _synthetic_view(uri, experiment.experiment_id, runs, latest)
        shown = True
    if runs["held_out_group"].notna().any():
        _unseen_view(uri, experiment.experiment_id, runs, latest)
    if (runs["run_type"] == "evaluation").any():
        _evaluation_view(uri, experiment.experiment_id, runs, latest)
        shown = True
    if not shown:
        st.info(
            f"Experiment **{experiment.name}** has no runs made by the pipeline yet (no "
            f"`{names.RUN_TYPE}` tag of experiment, sweep, train, synthetic or evaluation)."
        )
    _footer(uri)


def _pick_experiment(experiments: pd.DataFrame):
    names = list(experiments["name"])
    wanted = st.query_params.get("experiment")
    name = st.sidebar.selectbox(
        "Experiment",
        names,
        index=names.index(wanted) if wanted in names else 0,
        help="Latest first (by latest run).",
    )
    st.query_params["experiment"] = name
    st.sidebar.button(
        "Refresh", on_click=st.cache_data.clear, help=f"Data is cached for {TTL_SECONDS} s."
    )
    return experiments[experiments["name"] == name].iloc[0]


def _footer(uri: str) -> None:
    st.divider()
    st.caption(f"{END_MARKER} at `{uri}` · cached for {TTL_SECONDS} s · nothing is written.")


def _training_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    parents = shaping.flow_runs(runs, "experiment")
    labels = dict(zip(parents["run_id"], parents["label"], strict=True))
    train = runs[runs["run_type"] == "train"]
    options: list[str | None] = list(parents["run_id"])
    if (
        train["parent_run_id"].isna().any()
        or not train["parent_run_id"].isin(parents["run_id"]).all()
    ):
        options.append(None)
    wanted = st.query_params.get("run")
    default = [wanted] if wanted in options else options[:1]

    sidebar = st.sidebar
    sidebar.header("Training runs")
    chosen = sidebar.multiselect(
        "Flow run",
        options,
        default=default,
        format_func=lambda p: labels.get(p, OUTSIDE_FLOW),
        key=f"flow-{experiment_id}",
        help="Experiment flow runs (MLflow parent runs), latest first.",
    )
    if len(chosen) == 1 and chosen[0]:
        st.query_params["run"] = chosen[0]
    kids = shaping.children(runs, chosen)
    if None in chosen:  # also runs whose parent is not an experiment flow run of this experiment
        orphans = train[~train["parent_run_id"].isin(parents["run_id"])]
        kids = pd.concat([kids, orphans]).drop_duplicates("run_id").reset_index(drop=True)
    scope = f"{experiment_id}-{'-'.join(str(p) for p in chosen)}"  # widget state per selection
    methods = shaping.ordered(kids["method"].dropna())
    datasets = sorted(kids["dataset"].dropna().unique())
    seeds = sorted(int(s) for s in kids["seed"].dropna().unique())
    picked_methods = sidebar.multiselect(
        "Methods",
        methods,
        default=methods,
        format_func=method_label,
        key=f"methods-{scope}",
    )
    picked_datasets = (
        sidebar.multiselect("Datasets", datasets, default=datasets, key=f"datasets-{scope}")
        if datasets
        else None
    )
    picked_seeds = sidebar.multiselect("Seeds", seeds, default=seeds, key=f"seeds-{scope}")
    selected = shaping.filter_runs(kids, picked_methods, picked_datasets, picked_seeds)

    st.header("Training runs")
    _flow_run_caption(parents[parents["run_id"].isin(chosen)])
    if kids.empty and chosen:
        st.info("No training run of this flow run has been logged yet: it may still be starting.")
        return
    if selected.empty:
        st.info(
            "No training run matches the selection: pick a flow run, methods and seeds in the sidebar."
        )
        return
    tables = _tables(uri, experiment_id, selected, latest, chosen)
    for note in shaping.status_notes(tables):
        st.info(note)
    final = shaping.final_metrics(tables)
    splits = [s for s in ("test", "validation") if (final["split"] == s).any()]
    metrics = [m for m in names.GROUP_METRICS if (final["metric"] == m).any()]

    left, right = st.columns(2)
    with left:
        st.subheader("Per group")
        if not splits:
            st.info(
                "No evaluation metrics yet: the per-group evaluation runs at the end of training."
            )
        else:
            split_col, metric_col = st.columns(2)
            split = split_col.radio("Split", splits, horizontal=True, key=f"split-{experiment_id}")
            metric = metric_col.selectbox(
                "Metric",
                metrics,
                index=_default_index(metrics, DEFAULT_METRIC),
                format_func=metric_label,
                key=f"metric-{experiment_id}",
            )
            bars = shaping.group_bars(final, split, metric, tables.groups)
            if bars.empty:
                st.info(f"No per-group {metric_label(metric)} on the {split} split.")
            else:
                st.plotly_chart(
                    to_plotly(figures.group_bar_figure(bars, metric, split)), key="group-bars"
                )
    with right:
        st.subheader("Over training")
        # reward accuracy over training needs periodic validation; the loss has a fallback
        first = (
            DEFAULT_METRIC
            if not shaping.training_curves(tables, DEFAULT_METRIC)[0].empty
            else "loss"
        )
        curve_metric = st.radio(
            "Curve metric",
            list(names.HEADLINE_METRICS),
            index=_default_index(names.HEADLINE_METRICS, first),
            format_func=metric_label,
            horizontal=True,
            key=f"curve-{experiment_id}",
        )
        curves, where = shaping.training_curves(tables, curve_metric)
        if curves.empty:
            st.info(
                f"No {metric_label(curve_metric)} was logged over training (no periodic validation)."
            )
        else:
            if where != "validation":
                st.caption(
                    "No periodic validation in these runs: the curves show the training batches' group losses."
                )
            summary = shaping.thin(shaping.curve_summary(curves), ["method", "series"])
            st.plotly_chart(
                to_plotly(figures.curves_figure(summary, curve_metric, where)), key="curves"
            )

    st.subheader("Group weights")
    everyone = st.checkbox(
        "Also show the fixed weights of the other methods", key=f"weights-{experiment_id}"
    )
    weights = shaping.group_weights(tables, robust_only=not everyone)
    if weights.empty:
        st.info("No group-robust run (gr_dpo, gr_ipo) with logged group weights in the selection.")
    else:
        st.plotly_chart(
            to_plotly(
                figures.weights_figure(
                    shaping.thin(weights, ["method", "group"]), list(tables.groups)
                )
            ),
            key="weights",
        )

    if splits:
        _seeds_view(final, splits, experiment_id)


def _default_index(options, wanted) -> int:
    options = list(options)
    return options.index(wanted) if wanted in options else 0


def _flow_run_caption(parents: pd.DataFrame) -> None:
    for row in parents.itertuples():
        link = f" · [Prefect flow run]({row.flow_run_url})" if row.flow_run_url else ""
        facts = [
            f"dataset **{row.dataset}**" if row.dataset else "",
            f"status {str(row.status).lower()}",
            f"commit `{str(row.git_commit)[:10]}`" if row.git_commit else "",
        ]
        st.caption(
            f"**{row.label}** · MLflow run `{row.run_id}` · "
            + " · ".join(f for f in facts if f)
            + link
        )


def _seeds_view(final: pd.DataFrame, splits: list[str], experiment_id: str) -> None:
    st.subheader("Across seeds")
    split = st.radio("Split", splits, horizontal=True, key=f"seeds-split-{experiment_id}")
    summary = shaping.seed_summary(final, split)
    if summary.empty:
        st.info("No aggregate metrics on this split.")
        return
    st.caption("Mean ± half-width of the 95% Student-t interval over seeds.")
    st.dataframe(shaping.summary_table(summary), hide_index=True)
    keys = [k for k in names.SUMMARY if (summary["key"] == k).any()]
    key = st.selectbox(
        "Gap on",
        keys,
        index=_default_index(keys, names.aggregate("worst_group", DEFAULT_METRIC)),
        format_func=names.label,
        key=f"gap-key-{experiment_id}",
    )
    gaps = shaping.method_gaps(final, split, key)
    if gaps.empty:
        st.info("No pair of comparable methods (e.g. gr_ipo and ipo) in the selection.")
        return
    for row in gaps.itertuples():
        st.markdown(
            f"**{method_label(row.method)} − {method_label(row.baseline)}** on {row.label}: "
            f"{shaping.plus_minus(row.difference, row.ci95, 4)} ({'paired, ' if row.paired else ''}n = {row.n}) → *{row.verdict}*"
        )
    st.plotly_chart(to_plotly(figures.gap_figure(gaps)), key="gaps")


def _unseen_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Groups never seen in training")
    parents = shaping.flow_runs(runs, "experiment")
    with_held_out = runs.loc[runs["held_out_group"].notna(), "parent_run_id"].unique()
    parents = parents[parents["run_id"].isin(with_held_out)]
    labels = dict(zip(parents["run_id"], parents["label"], strict=True))
    parent = st.selectbox(
        "Flow run with groups left out",
        list(parents["run_id"]),
        format_func=labels.get,
        key=f"unseen-{experiment_id}",
    )
    kids = shaping.children(runs, [parent])
    tables = _tables(uri, experiment_id, kids, latest, [parent])
    values = kids[["run_id", "method", "held_out_group"]].merge(tables.latest, on="run_id")
    split = (shaping.evaluated_splits(values["key"]) or ["validation"])[-1]
    metric = st.radio(
        "Metric", list(names.HEADLINE_METRICS), format_func=metric_label, horizontal=True,
        key=f"unseen-metric-{parent}",
    )  # fmt: skip
    st.caption(
        f"Each group on {split} when the method trained with it (seen) and without it (unseen), "
        "mean ± 95% interval over seeds; worse_unseen > 0: worse on the group it never saw."
    )
    st.dataframe(shaping.unseen_groups(values, split, metric, dict(tables.groups)), hide_index=True)


def _sweep_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Sweeps: worst group against average")
    parents = shaping.flow_runs(runs, "sweep")
    labels = dict(zip(parents["run_id"], parents["label"], strict=True))
    parent = st.selectbox(
        "Sweep flow run",
        list(parents["run_id"]),
        format_func=labels.get,
        key=f"sweep-{experiment_id}",
        help="Sweep flow runs (MLflow parent runs), latest first.",
    )
    kids = shaping.children(runs, [parent])
    if kids.empty:
        st.info("No child of this sweep has been logged yet: it may still be starting.")
        return
    tables = _tables(uri, experiment_id, kids, latest, [parent])
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


def _synthetic_view(uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame) -> None:
    st.header("Synthetic benchmark")
    parents = shaping.flow_runs(runs, "synthetic")
    labels = dict(zip(parents["run_id"], parents["label"], strict=True))
    parent = st.selectbox(
        "Synthetic flow run",
        list(parents["run_id"]),
        format_func=labels.get,
        key=f"synthetic-{experiment_id}",
    )
    kids = shaping.children(runs, [parent], "synthetic_method")
    if kids.empty:
        st.info("This synthetic flow run has no method runs yet.")
        return
    tables = _tables(uri, experiment_id, kids, latest, [])
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


def _evaluation_view(
    uri: str, experiment_id: str, runs: pd.DataFrame, latest: pd.DataFrame
) -> None:
    st.header("Evaluations of the registered model")
    evaluations = runs[runs["run_type"] == "evaluation"]
    tables = _tables(uri, experiment_id, evaluations, latest, [])
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


if __name__ == "__main__":
    main()
