"""MLflow plumbing shared by the tasks: explicit tracking URI, experiments, runs, batched logging.

Every call goes through an :class:`mlflow.MlflowClient` with explicit run ids: fluent nesting does
not follow Prefect's worker threads (MLflow's active run is thread-local), and explicit ids make the
parent/child structure visible in the code.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from dashboards.store import artifact_root, sqlite_path, tracking_uri
from grpo_core import names
from grpo_core.config import flatten
from grpo_core.lock import Holder, exclusive, process_alive
from tasks.loopback import health_problem
from tasks.step_history import StepHistory, read_metrics, write_metrics

MAX_BATCH = 900  # MLflow accepts up to 1000 metrics per log_batch call


def client(uri: str | None = None) -> MlflowClient:
    return MlflowClient(tracking_uri=uri or tracking_uri())


class TrackingServerDown(ConnectionError):
    """The MLflow tracking server does not answer."""


def require_reachable(uri: str | None = None, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when an http(s) tracking server does not answer its
    ``/health`` (MLflow's own client would retry for minutes first). Local stores pass."""
    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    problem = health_problem(f"{uri.rstrip('/')}/health", timeout_s)
    if problem is None:
        return
    raise TrackingServerDown(
        f"the MLflow tracking server {uri} does not answer ({problem}); start it, fix "
        "MLFLOW_TRACKING_URI, or unset it to use ./mlflow.db"
    )


def prepare_store(uri: str | None = None) -> None:
    """Create or upgrade a local SQLite store once, under a lock beside its database file
    (``mlflow.db.lock``): MLflow creates the tables on first use without one, and two processes
    that open a new store at the same moment race on its migrations (one fails, or the store is
    left half-migrated). Other stores need nothing."""
    uri = uri or tracking_uri()
    path = sqlite_path(uri)
    if path is None:
        return
    with exclusive(path.with_name(path.name + ".lock")):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


HOST, PID, PROCESS_START = (names.grpo_tag(f) for f in ("host", "pid", "process_start"))
"""Tags of the process that runs a flow: the host, its pid and when it started (which tells it
from a later process with the same pid)."""
CLEANUP_NOTE = names.grpo_tag("cleanup")


def process_tags() -> dict[str, str]:
    """This process as MLflow tags (:data:`HOST`, :data:`PID`, :data:`PROCESS_START`)."""
    me = Holder.me()
    return {HOST: me.host, PID: str(me.pid), PROCESS_START: me.start or ""}


def end_runs_of_dead_processes(experiment: str, uri: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment`` whose process (by their :func:`process_tags`)
    ran on this host and is gone (a ``kill -9`` leaves them RUNNING for ever), and the RUNNING
    children of those runs, with why in :data:`CLEANUP_NOTE`; return their ids."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = mlflow.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000
    )
    host = socket.gethostname()
    dead = {}
    for run in running:
        tags = run.data.tags
        if tags.get(HOST) != host or not tags.get(PID, "").isdigit():
            continue
        if not process_alive(int(tags[PID]), tags.get(PROCESS_START) or None):
            dead[run.info.run_id] = f"its process (pid {tags[PID]} on {host}) ended while it ran"
    for run in running:
        parent = run.data.tags.get(names.PARENT_RUN)
        if run.info.run_id not in dead and parent in dead:
            dead[run.info.run_id] = f"its parent run {parent} was left by a process that ended"
    for run_id, note in dead.items():
        set_tags(mlflow, run_id, {CLEANUP_NOTE: f"marked KILLED by a later run: {note}"})
        mlflow.set_terminated(run_id, status="KILLED")
    return list(dead)


def experiment_id(mlflow: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created (with artifacts beside a local store) when missing,
    and marked a model-training experiment (MLflow 3's UI then opens it on its runs) unless it
    already has a kind."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if names.EXPERIMENT_KIND not in found.tags:  # made before the tag was set, or elsewhere
            mlflow.set_experiment_tag(
                found.experiment_id, names.EXPERIMENT_KIND, names.MODEL_TRAINING_KIND
            )
        return found.experiment_id
    root = artifact_root(mlflow.tracking_uri)
    location = f"{root}/{name}" if root else None
    kind = {names.EXPERIMENT_KIND: names.MODEL_TRAINING_KIND}
    try:
        return mlflow.create_experiment(name, artifact_location=location, tags=kind)
    except Exception:  # created concurrently by another flow run
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def git_commit() -> str:
    """The project's git commit (``unknown`` outside a checkout)."""
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def prefect_tags() -> dict[str, str]:
    """The current Prefect flow run's id, name and UI URL, as MLflow tags (empty outside a flow)."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return {}
    tags = {
        names.prefect_tag("flow_run_id"): str(flow_run.id),
        names.prefect_tag("flow_run_name"): str(flow_run.name),
    }
    url = str(flow_run.ui_url or "")
    if url.startswith(("http://", "https://")):  # a temporary local server has no UI URL
        tags[names.prefect_tag("flow_run_url")] = url
    return tags


def log_params(mlflow: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        mlflow.log_batch(run_id, params=items[start : start + 100])


def log_metrics(
    mlflow: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0
) -> None:
    """One batched call per 900 metrics (single calls are 10-30x slower)."""
    stamp = int(time.time() * 1000)
    items = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
    for start in range(0, len(items), MAX_BATCH):
        mlflow.log_batch(run_id, metrics=items[start : start + MAX_BATCH])


def set_tags(mlflow: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    mlflow.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_config(
    mlflow: MlflowClient, run_id: str, config: Any, extra: Mapping[str, str] = {}
) -> None:
    """The config as flattened dotted params plus ``config.json``, once per run."""
    log_params(mlflow, run_id, {**flatten(config), **extra})
    log_json(mlflow, run_id, config.model_dump(mode="json"), "config.json")


def log_json(mlflow: MlflowClient, run_id: str, document: Any, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(json.dumps(document, indent=2) + "\n")
        mlflow.log_artifact(run_id, str(path))


def end_run(mlflow: MlflowClient, run_id: str, failed: bool = False) -> None:
    mlflow.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def fail_run(mlflow: MlflowClient, run_id: str, reason: str) -> None:
    """End a run FAILED with why in its ``grpo.failure`` tag."""
    set_tags(mlflow, run_id, {names.FAILURE: reason[:5000]})
    end_run(mlflow, run_id, failed=True)


def error_line(error: BaseException) -> str:
    """What an error says, in one line: its ``reason`` if it has one (a failed worker), else the
    first line of its message, else its type."""
    text = getattr(error, "reason", None) or str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__


def fail_runs_of_flow_run(flow_run_id: str, uri: str | None = None) -> list[str]:
    """Mark every still-RUNNING MLflow run of a Prefect flow run FAILED, and the still-RUNNING
    children of its runs (a subflow's, such as the sweep's children); return their ids."""
    mlflow = client(uri)
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    if not experiments:
        return []
    own = mlflow.search_runs(
        experiments, filter_string=f"tags.`{names.prefect_tag('flow_run_id')}` = '{flow_run_id}'"
    )
    running = [run for run in own if run.info.status == "RUNNING"]
    for run in own:
        running += mlflow.search_runs(
            experiments,
            filter_string=f"tags.`{names.PARENT_RUN}` = '{run.info.run_id}' "
            "and attributes.status = 'RUNNING'",
        )
    ids = list(dict.fromkeys(run.info.run_id for run in running))
    for run_id in ids:
        end_run(mlflow, run_id, failed=True)
    return ids


class MetricBuffer:
    """Collects step metrics and writes them in batches (every ``flush_every`` entries and at the
    end). A tracking server that stops answering does not stop training: the metrics wait for the
    next write, and :meth:`flush` at the end waits up to ``wait_s`` for the server; past that, they
    are kept in ``spill`` (JSON lines) and :class:`TrackingServerDown` names the file. A buffer
    created with an existing ``spill`` (a resumed run, ``grpo send-metrics``) sends those first.
    With a ``history`` (the run folder's :class:`StepHistory`), every metric is also kept there, and
    a run that trains the folder again first sends the earlier steps it does not train again
    (the history holds the spilled metrics too, so they are not sent twice)."""

    def __init__(
        self,
        mlflow: MlflowClient,
        run_id: str,
        flush_every: int = 500,
        spill: str | Path | None = None,
        wait_s: float = 300.0,
        poll_s: float = 5.0,
        history: str | Path | None = None,
    ):
        self.mlflow, self.run_id, self.flush_every = mlflow, run_id, flush_every
        self.spill = Path(spill) if spill is not None else None
        self.wait_s, self.poll_s = wait_s, poll_s
        self.pending: list[Metric] = []
        self.outage: str | None = None
        self.history = StepHistory(history) if history is not None else None
        replays_spill = self.history is not None and bool(self.history.earlier)
        if self.spill is not None and self.spill.exists() and not replays_spill:
            self.pending = read_metrics(self.spill)

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        new = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        if self.history is not None:
            if not self.history.replayed:
                self.pending += self.history.replay(step)
            self.history.append(new)
        self.pending += new
        if len(self.pending) >= self.flush_every:
            self.try_flush()

    def try_flush(self) -> bool:
        """Write everything pending; False (and nothing lost) when the server does not answer."""
        from mlflow.exceptions import MlflowException

        try:
            require_reachable(self.mlflow.tracking_uri)
            while self.pending:
                self.mlflow.log_batch(self.run_id, metrics=self.pending[:MAX_BATCH])
                del self.pending[:MAX_BATCH]
        except (TrackingServerDown, MlflowException, OSError) as error:
            self.outage = error_line(error)
            return False
        self.outage = None
        if self.spill is not None:
            self.spill.unlink(missing_ok=True)
        return True

    def flush(self) -> None:
        """Write everything pending, waiting up to ``wait_s`` for an unanswering server; then keep
        what is left in ``spill`` and raise :class:`TrackingServerDown`."""
        if self.history is not None and not self.history.replayed:  # no step trained again
            self.pending += self.history.replay(None)
        deadline = time.monotonic() + self.wait_s
        while not self.try_flush():
            if time.monotonic() >= deadline:
                raise TrackingServerDown(self._keep())
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def _keep(self) -> str:
        waited = f"after waiting {self.wait_s:.0f} s"
        if self.spill is None:
            return f"{len(self.pending)} metrics were not logged {waited}: {self.outage}"
        write_metrics(self.spill, self.pending)
        return (
            f"the MLflow tracking server did not answer {waited} ({self.outage}); "
            f"{len(self.pending)} metrics are kept in {self.spill}; when it is back, send them with "
            f"grpo send-metrics {self.spill} --run-id {self.run_id}"
        )
