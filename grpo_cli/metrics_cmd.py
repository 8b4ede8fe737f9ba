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
    from tasks import tracking

    buffer = tracking.MetricBuffer(
        tracking.client(args.tracking_uri), args.run_id, spill=args.file, wait_s=0
    )
    count = len(buffer.pending)
    buffer.flush()
    print(f"sent {count} metrics to run {args.run_id}; removed {args.file}")
    return 0
