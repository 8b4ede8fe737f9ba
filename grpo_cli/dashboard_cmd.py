"""``grpo dashboard`` (the Streamlit dashboard over MLflow) and ``grpo report`` (a flow run's HTML report)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dashboards
from dashboards.store import tracking_uri
from grpo_cli.errors import UsageError, WorkFailed
from grpo_cli.paths import writable_folder
from tasks.subprocess_runner import die_with_parent

URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db, as the pipeline)"

DASHBOARD_EPILOG = """\
examples:
  grpo dashboard                                   # the runs of ./mlflow.db, on http://127.0.0.1:8501
  grpo dashboard --tracking-uri sqlite:////data/mlflow.db --port 8600

The page reads MLflow only (never writes): per-group bars with the worst group marked, worst-group and
average curves over training, group-weight trajectories, a comparison across seeds with 95% intervals,
and the synthetic benchmark's figures. ?experiment=NAME&run=PARENT_RUN_ID in the URL preselects.
"""

REPORT_EPILOG = """\
examples:
  grpo report --run-id 0123abcd... --out reports/brave-otter
  grpo report --run-id 0123abcd... --tracking-uri sqlite:////data/mlflow.db --out /tmp/report

Writes OUT/report.html (self-contained: figures embedded, opens without network), one PNG per
figure and one CSV per table, for an experiment or synthetic flow run (an MLflow parent run).
"""


def add_parser(subparsers) -> None:
    dashboard = subparsers.add_parser(
        "dashboard",
        help="start the interactive dashboard (Streamlit) over the MLflow runs",
        description="Start a Streamlit dashboard on 127.0.0.1 that shows group fairness across runs.",
        epilog=DASHBOARD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dashboard.add_argument("--tracking-uri", default=None, help=URI_HELP)
    dashboard.add_argument(
        "--port", type=port_number, default=8501, help="port on 127.0.0.1 (default: %(default)s)"
    )
    dashboard.set_defaults(func=run_dashboard)

    report = subparsers.add_parser(
        "report",
        help="write the static HTML report of one flow run",
        description="Write the self-contained HTML report (and PNGs, CSVs) of an experiment or synthetic flow run.",
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--run-id", required=True, help="the flow run's MLflow parent run id")
    report.add_argument("--tracking-uri", default=None, help=URI_HELP)
    report.add_argument(
        "--out", required=True, type=Path, help="folder to write (created if missing)"
    )
    report.set_defaults(func=run_report)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 1 to 65535")
    return int(text)


def default_tracking_uri() -> str:
    return tracking_uri()


def app_path() -> Path:
    """The Streamlit script of the dashboard (``dashboards/app.py``)."""
    return Path(dashboards.__file__).resolve().parent / "app.py"


def streamlit_command(tracking_uri: str, port: int, address: str = "127.0.0.1") -> list[str]:
    """``streamlit run dashboards/app.py`` on ``address:port``, headless, no usage statistics."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--", "--tracking-uri", tracking_uri,
    ]  # fmt: skip


def port_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def run_dashboard(args: argparse.Namespace) -> int:
    uri = args.tracking_uri or default_tracking_uri()
    if not port_free(args.port):
        raise WorkFailed(f"port {args.port} on 127.0.0.1 is in use; pick another with --port")
    print(
        f"GRPO dashboard: http://127.0.0.1:{args.port}  (MLflow: {uri}; Ctrl+C stops it)",
        flush=True,
    )
    env = {**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    # killed (even with SIGKILL), ``grpo dashboard`` takes its Streamlit server with it
    process = subprocess.Popen(
        streamlit_command(uri, args.port), env=env, preexec_fn=die_with_parent
    )
    signal.signal(
        signal.SIGTERM, _interrupt
    )  # a terminated ``grpo dashboard`` stops its server too
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_report(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow, pandas and matplotlib: imported here, so that ``grpo --help`` answers at once
    from mlflow.exceptions import MlflowException

    from dashboards.mlflow_source import StoreNotFound
    from dashboards.report import build_report

    writable_folder(args.out, "--out")
    uri = args.tracking_uri or default_tracking_uri()
    try:
        path = build_report(uri, args.run_id, args.out)
    except StoreNotFound as error:
        raise UsageError(f"{error}; pass --tracking-uri or run the pipeline first") from None
    except MlflowException as error:
        missing = error.error_code == "RESOURCE_DOES_NOT_EXIST"  # the run id is at fault
        raise (UsageError if missing else WorkFailed)(
            f"could not read run {args.run_id} from {uri}: {error.message}"
        ) from None
    print(path)
    return 0
