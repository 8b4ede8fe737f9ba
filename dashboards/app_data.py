"""The dashboard's reads of MLflow, cached by Streamlit (the only MLflow access of the page)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import mlflow_source as source
from dashboards import shaping

TTL_SECONDS = 30


@st.cache_resource
def client(uri: str):
    return source.open_client(uri)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading experiments…")
def experiments(uri: str) -> pd.DataFrame:
    return source.list_experiments(client(uri))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading runs…")
def runs(uri: str, experiment_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return source.read_runs(client(uri), [experiment_id])


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading metric histories…")
def history(uri: str, experiment_id: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    _, latest = runs(uri, experiment_id)
    return source.read_history(client(uri), latest[latest["run_id"].isin(run_ids)])


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def group_order(uri: str, parent_ids: tuple[str, ...]) -> list[str]:
    return source.read_group_order(client(uri), parent_ids)


def tables(
    uri: str, experiment_id: str, of: pd.DataFrame, latest: pd.DataFrame, parent_ids
) -> shaping.RunTables:
    """The :class:`RunTables` of the runs ``of``: their latest metrics, histories, group names."""
    run_ids = tuple(of["run_id"])
    order = group_order(uri, tuple(p for p in parent_ids if p))
    return shaping.RunTables(
        runs=of.reset_index(drop=True),
        latest=latest[latest["run_id"].isin(run_ids)].reset_index(drop=True),
        history=history(uri, experiment_id, run_ids),
        groups=shaping.group_names(of, order),
    )
