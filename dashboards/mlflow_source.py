"""The MLflow reads behind the dashboard and the report: client API only, never a write.

Everything returns plain pandas tables (see :class:`dashboards.shaping.RunTables`), so the rest of
the package never touches MLflow.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run

from dashboards.shaping import RunTables, group_names, make_runs
from dashboards.store import sqlite_path
from grpo_core import names

PAGE_SIZE = 1000


class StoreNotFound(FileNotFoundError):
    """The tracking URI names a SQLite file that does not exist (nothing has been logged yet)."""


def open_client(tracking_uri: str) -> MlflowClient:
    """A client for ``tracking_uri``. A SQLite file must exist: MLflow would otherwise create an
    empty store, and the views never write."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise StoreNotFound(f"no MLflow store at {path}")
    return MlflowClient(tracking_uri=tracking_uri)


def as_client(client_or_uri: MlflowClient | str) -> MlflowClient:
    return open_client(client_or_uri) if isinstance(client_or_uri, str) else client_or_uri


def list_experiments(client: MlflowClient) -> pd.DataFrame:
    """Experiments that have runs, the one with the latest run first:
    ``experiment_id, name, latest_run`` (a UTC timestamp)."""
    rows = []
    for experiment in client.search_experiments():
        runs = client.search_runs(
            [experiment.experiment_id], max_results=1, order_by=["attributes.start_time DESC"]
        )
        if runs:
            rows.append((experiment.experiment_id, experiment.name, _time(runs[0].info.start_time)))
    frame = pd.DataFrame(rows, columns=["experiment_id", "name", "latest_run"])
    return frame.sort_values("latest_run", ascending=False).reset_index(drop=True)


def read_runs(
    client: MlflowClient, experiment_ids: Sequence[str], filter_string: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All active runs of the experiments: ``(runs, latest)`` as in :class:`RunTables`."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            list(experiment_ids),
            filter_string,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    latest = [(r.info.run_id, key, value) for r in runs for key, value in r.data.metrics.items()]
    return make_runs(run_row(r) for r in runs), pd.DataFrame(
        latest, columns=["run_id", "key", "value"]
    )


def run_row(run: Run) -> dict[str, object]:
    """One row of the runs table: attributes, and the ``grpo.*`` / ``prefect.*`` tags as columns."""
    tags = run.data.tags
    row: dict[str, object] = {
        "run_id": run.info.run_id,
        "parent_run_id": tags.get(names.PARENT_RUN),
        "run_name": run.info.run_name,
        "status": run.info.status,
        "start_time": _time(run.info.start_time),
        "end_time": _time(run.info.end_time),
        "git_commit": tags.get(names.GIT_COMMIT),
    }
    for name in names.GRPO_TAG_COLUMNS:
        row[name] = tags.get(names.grpo_tag(name))
    for name in names.PREFECT_TAG_COLUMNS:
        row[name] = tags.get(names.prefect_tag(name))
    return row


def _time(millis: int | None) -> pd.Timestamp | None:
    return pd.Timestamp(millis, unit="ms", tz="UTC") if millis else None


def read_history(
    client: MlflowClient, latest: pd.DataFrame, prefixes: Sequence[str] = names.HISTORY_PREFIXES
) -> pd.DataFrame:
    """The step history of every ``(run_id, key)`` in ``latest`` whose key starts with a prefix,
    ordered by step and, within a step, by logging time (so the last row of a step is the latest)."""
    wanted = latest[latest["key"].map(lambda key: key.startswith(tuple(prefixes)))]
    rows = [
        (run_id, key, point.step, point.timestamp, point.value)
        for run_id, key in wanted[["run_id", "key"]].itertuples(index=False)
        for point in client.get_metric_history(run_id, key)
    ]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"])
    frame = frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    return frame.drop(columns="timestamp").reset_index(drop=True)


def read_group_order(client: MlflowClient, parent_run_ids: Iterable[str]) -> list[str]:
    """Group names in group-id order from the first parent's ``groups.json`` artifact ([] if none)."""
    for run_id in parent_run_ids:
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = client.download_artifacts(run_id, "groups.json", folder)
                return [
                    str(name)
                    for name in json.loads(Path(path).read_text(encoding="utf-8"))["groups"]
                ]
        except Exception:  # a missing or malformed artifact only costs the ordering
            continue
    return []


def load_flow_run(
    client_or_uri: MlflowClient | str, parent_run_id: str
) -> tuple[RunTables, dict[str, object]]:
    """A parent run and its children with their histories, and the parent's row plus experiment name.

    Returns:
        ``(tables, parent)``: ``tables.runs`` holds the parent and its children; ``parent`` is the
        parent's runs-table row as a dict with ``experiment_name`` and ``params`` added.
    """
    client = as_client(client_or_uri)
    parent_run = client.get_run(parent_run_id)
    experiment_id = parent_run.info.experiment_id
    children, latest = read_runs(
        client, [experiment_id], f"tags.`{names.PARENT_RUN}` = '{parent_run_id}'"
    )
    parent_row = make_runs([run_row(parent_run)])
    latest_parent = pd.DataFrame(
        [(parent_run_id, k, v) for k, v in parent_run.data.metrics.items()],
        columns=["run_id", "key", "value"],
    )
    runs = pd.concat([parent_row, children], ignore_index=True)
    history = read_history(client, latest)
    tables = RunTables(
        runs=runs,
        latest=pd.concat([latest_parent, latest], ignore_index=True)
        if not latest_parent.empty
        else latest,
        history=history,
        groups=group_names(children, read_group_order(client, [parent_run_id])),
    )
    parent = parent_row.iloc[0].to_dict()
    parent["experiment_name"] = client.get_experiment(experiment_id).name
    parent["params"] = dict(parent_run.data.params)
    return tables, parent
