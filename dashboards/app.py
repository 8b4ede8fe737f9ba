"""The Streamlit dashboard over the pipeline's MLflow runs (read-only).

Started by ``grpo dashboard``, i.e. ``streamlit run dashboards/app.py -- --tracking-uri URI``
(without the argument: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``). The URL's
``?experiment=NAME&run=PARENT_RUN_ID`` preselects an experiment and a flow run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import dashboards  # noqa: F401
except ModuleNotFoundError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import streamlit as st

from dashboards import app_data as data
from dashboards import app_views as views
from dashboards import figures, shaping, store
from dashboards import mlflow_source as source
from dashboards.render_plotly import to_plotly
from dashboards.style import method_label
from grpo_core import names
from grpo_core.names import metric_label

TTL_SECONDS = data.TTL_SECONDS
DEFAULT_METRIC = "reward_accuracy"
"""Shown first: comparable across losses and betas, and the champion's metric."""
END_MARKER = "Read-only view of MLflow"
OUTSIDE_FLOW = "(runs outside a flow run)"


def tracking_uri(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--tracking-uri", default=None)
    args, _ = parser.parse_known_args(argv)
    return args.tracking_uri or store.tracking_uri()


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
        experiments = data.experiments(uri)
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
    runs, latest = data.runs(uri, experiment.experiment_id)
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
        views.sweep_view(uri, experiment.experiment_id, runs, latest)
        shown = True
    if (runs["run_type"] == "synthetic").any():
        views.synthetic_view(uri, experiment.experiment_id, runs, latest)
        shown = True
    if runs["held_out_group"].notna().any():
        views.unseen_view(uri, experiment.experiment_id, runs, latest)
    if (runs["run_type"] == "evaluation").any():
        views.evaluation_view(uri, experiment.experiment_id, runs, latest)
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
    tables = data.tables(uri, experiment_id, selected, latest, chosen)
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
            if len(chosen) == 1 and chosen[0]:  # what a group-blind policy can reach on the data
                parent = shaping.RunTables(
                    runs[runs["run_id"] == chosen[0]], latest, pd.DataFrame()
                )
                bounds = shaping.headroom_metrics(parent)
                headroom = shaping.headroom_table(bounds, final, split, dict(tables.groups))
                if not headroom.empty:
                    st.caption(shaping.headroom_sentence(bounds, final, split))
                    st.dataframe(headroom, hide_index=True)
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


if __name__ == "__main__":
    main()
