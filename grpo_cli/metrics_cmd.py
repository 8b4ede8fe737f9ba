"""``grpo send-metrics``: send the step metrics that a tracking outage kept in a run's folder."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
example:
  grpo send-metrics outputs/runs/<parent>/gr_ipo-seed0/unlogged-metrics.jsonl --run-id 0123abcd...

When the MLflow tracking server stops answering during training, training goes on and the step
metrics wait; if the server is still down at the end of the run (after 5 minutes), they are kept in
the run folder's unlogged-metrics.jsonl and the error names the file and the run. This sends them
once the server is back, and removes the file."""


def add_parser(subparsers) -> None:
    send = subparsers.add_parser(
        "send-metrics",
        help="send metrics kept during a tracking-server outage to their MLflow run",
        description="Send the step metrics kept in FILE (during a tracking-server outage) to "
        "their MLflow run, then remove FILE.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("file", type=Path, help="the unlogged-metrics.jsonl file the error named")
    send.add_argument("--run-id", required=True, help="the MLflow run the metrics belong to")
    send.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)",
    )
    send.set_defaults(func=run_send)


def run_send(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such file (the path the outage error named)")
    from mlflow.exceptions import MlflowException

    from dashboards.mlflow_source import StoreNotFound, open_client
    from tasks import tracking
    from tasks.step_history import read_metrics

    untouched = "nothing sent, the file is kept"
    try:
        kept = read_metrics(args.file, strict=True)
    except ValueError as error:
        raise ValueError(
            f"{error} (the file is not the unlogged-metrics.jsonl an outage error names); {untouched}"
        ) from None
    if not kept:
        raise ValueError(f"{args.file}: holds no metrics; {untouched}")
    uri = args.tracking_uri or tracking.tracking_uri()
    try:
        client = open_client(uri)  # a SQLite store must exist: none is made
    except StoreNotFound as error:
        raise StoreNotFound(f"--tracking-uri {uri}: {error}") from None
    tracking.require_reachable(uri)
    try:
        client.get_run(args.run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise LookupError(
            f"--run-id {args.run_id!r}: no such run in {uri} (the run the outage error named; "
            "--tracking-uri is its server)"
        ) from None
    buffer = tracking.MetricBuffer(client, args.run_id, spill=args.file, wait_s=0)
    buffer.flush()
    print(f"sent {len(kept)} metrics to run {args.run_id}; removed {args.file}")
    return 0
