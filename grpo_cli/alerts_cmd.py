"""``grpo alerts install``: the drift alert's webhook block and Prefect automation on a server."""

from __future__ import annotations

import argparse
import os
import urllib.parse

from grpo_cli.errors import UsageError, WorkFailed
from tasks.loopback import health_problem

EPILOG = """\
examples:
  export PREFECT_API_URL=http://127.0.0.1:4200/api
  grpo alerts install --webhook-url https://hooks.example.org/T000/B000/XXXX

Saves a Prefect custom-webhook notification block (grpo-drift-webhook) that POSTs
{"subject": ..., "body": ...} to the URL, and creates the automation of automations/drift-alert.yaml
(replacing one of the same name): every drift event that the nightly evaluation emits
becomes one notification. Run it again to change the URL.
"""


def add_parser(subparsers) -> None:
    alerts = subparsers.add_parser(
        "alerts",
        help="set up the drift alert (a Prefect automation and a webhook)",
        description="Set up notifications for the nightly evaluation's drift alerts.",
    )
    actions = alerts.add_subparsers(dest="action", metavar="ACTION")
    install = actions.add_parser(
        "install",
        help="create the webhook block and the drift-alert automation on the Prefect server",
        description="Create the webhook block and the automation of automations/drift-alert.yaml "
        "on the Prefect server of $PREFECT_API_URL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    install.add_argument(
        "--webhook-url", required=True, help="where notifications are POSTed (http or https)"
    )
    install.set_defaults(func=run_install)
    alerts.set_defaults(func=lambda args: alerts.print_help() or 2)


def run_install(args: argparse.Namespace) -> int:
    url = urllib.parse.urlparse(args.webhook_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise UsageError(f"--webhook-url {args.webhook_url!r} is not an http(s) URL")
    if not os.environ.get("PREFECT_API_URL"):
        raise UsageError(
            "PREFECT_API_URL is not set; point it at the Prefect server that "
            "runs the nightly evaluation (e.g. http://127.0.0.1:4200/api)"
        )
    api = os.environ["PREFECT_API_URL"]
    problem = health_problem(f"{api.rstrip('/')}/health")
    if problem is None:
        # Prefect, MLflow and httpx: imported here, so that ``grpo --help`` answers at once
        import httpx

        from tasks.alerts import install_drift_alert

        try:
            done = install_drift_alert(args.webhook_url)
        except (httpx.HTTPError, OSError) as error:
            problem = str(error)
    if problem is not None:
        raise WorkFailed(
            f"the Prefect server at {api} did not answer ({problem}); "
            "start it (prefect server start) or fix PREFECT_API_URL"
        )
    print(
        f"automation {done['name']} ({done['automation_id']}) sends the nightly evaluation's "
        f"drift events to {args.webhook_url} (block grpo-drift-webhook)"
    )
    return 0
