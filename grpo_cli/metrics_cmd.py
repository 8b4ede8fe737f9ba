"""``grpo send-metrics``: send the step metrics that a tracking outage kept in a run's folder."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

_KEY = re.compile(r"[A-Za-z0-9_\-. :/]{1,250}")
"""What MLflow takes as a metric key (it also refuses '..' and a leading '/')."""

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
    fault = first_bad_metric(args.file)
    if fault is not None:
        raise ValueError(f"{fault}; {untouched} (fix or delete that line and send again)")
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


def first_bad_metric(path: Path) -> str | None:
    """Where the first metric MLflow would refuse is (``FILE, line N: why``), or None: checked over
    the whole file before anything is sent, so that a bad line sends nothing."""
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        fields = json.loads(line)  # read_metrics(strict=True) has parsed every line
        key, value, step = fields["key"], fields["value"], fields["step"]
        where = f"{path}, line {number}"
        if not isinstance(key, str) or not _KEY.fullmatch(key) or ".." in key or key[0] == "/":
            return (
                f"{where}: metric key {key!r} is not one MLflow takes (letters, digits, '_', '-', "
                "'.', ' ', ':', '/'; no '..' or leading '/'; at most 250 characters)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{where}: value of {key!r} is {value!r}, not a number"
        if not math.isfinite(value):
            return f"{where}: value of {key!r} is {value}, not a finite number"
        if isinstance(step, bool) or not isinstance(step, int):
            return f"{where}: step of {key!r} is {step!r}, not a whole number"
    return None
