"""``grpo demo`` and ``grpo run``: the experiment flow, on embedded defaults or on a config file."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from dashboards.store import tracking_uri
from grpo_cli.config_files import ConfigFileError, load_run_config
from grpo_cli.errors import UsageError, WorkFailed
from grpo_cli.local_server import local_prefect_server
from grpo_cli.paths import writable_file, writable_folder
from grpo_cli.tables import aligned_rows
from grpo_core import names
from grpo_core.atomic import write_result_json
from grpo_core.data.readers import check_sources
from tasks.run_config import demo_config

DEMO_EPILOG = """\
The demo prepares the built-in opinion data (two groups; the minority answers 40% as often and
disagrees with the majority on half of the topics), trains IPO and GR-IPO on a tiny Llama-style
model built from config, evaluates both per group on validation and test, registers the fairest
model as models:/grpo-demo-policy@champion and writes an HTML report (examples/tiny_opinions.yaml).
Prefect: a temporary local server unless PREFECT_API_URL is set.
MLflow:  MLFLOW_TRACKING_URI, or sqlite:///<this folder>/mlflow.db with artifacts in ./mlartifacts.
"""

RUN_EPILOG = """\
examples:
  grpo run --config examples/tiny_opinions.yaml
  grpo run --config examples/smollm2_goqa_lora.yaml --set optim.max_steps=20 --set seeds=[0,1]
"""


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the built-in defaults (a few minutes on a CPU)",
        description="Run the experiment flow on embedded defaults and print the per-group comparison.",
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the flow's result as JSON"
    )
    demo.set_defaults(func=run_demo)
    run = subparsers.add_parser(
        "run",
        help="run the experiment flow with a YAML or JSON config",
        description="Run the experiment flow (data -> SFT -> methods x seeds -> per-group evaluation -> "
        "champion -> report) with a config file.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="a YAML or JSON run config"
    )
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one config field by its dotted name (VALUE is YAML), e.g. optim.max_steps=50",
    )  # fmt: skip
    run.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the flow's result as JSON"
    )
    run.set_defaults(func=run_config_file)


def prepare_environment() -> None:
    """Quiet, offline-friendly defaults for local runs (the user's own settings win)."""
    defaults = {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def run_demo(args: argparse.Namespace) -> int:
    return _run(demo_config(), args.json)


def run_config_file(args: argparse.Namespace) -> int:
    try:
        config = load_run_config(args.config, args.set)
    except (ConfigFileError, ValidationError) as error:
        raise UsageError(f"{args.config}: {error}") from None
    return _run(config, args.json)


def _run(config, json_path: Path | None) -> int:
    writable_file(json_path, "--json", {"data.path": config.data.path})
    writable_folder(Path(config.execution.output_dir), "execution.output_dir")
    prepare_environment()
    # torch and MLflow: imported here, after prepare_environment (the Hugging Face and MLflow
    # settings it writes are read at import), and not at the top so that ``grpo --help`` is quick
    from grpo_core.lm.presets import check_model_source
    from tasks.tracking import require_reachable

    check_model_source(config.model)
    check_sources(config.data)
    require_reachable()
    open_store("grpo run", config.name)
    with sigterm_raises(), local_prefect_server(Path(config.execution.output_dir) / "prefect"):
        # Prefect reads its server's URL when imported: only once the temporary server is up
        from flows.experiment import experiment

        quiet_prefect_tracebacks()
        result = experiment(config)
    print()
    print(format_comparison(result))
    print()
    print(next_steps(result, tracking_uri()))
    return report_outcome("grpo run", result, json_path)


class Terminated(WorkFailed):
    """``grpo`` received SIGTERM: exit 143 (128 + the signal), as a process the signal ended."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread, so that the command ends with one
    line of its own and its context managers (the temporary server) close. During a flow,
    Prefect's handler comes first (it ends the flow run Crashed and our hooks mark its MLflow
    runs FAILED), then sends the signal again, to this handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame) -> None:
    raise Terminated("terminated (SIGTERM); the flow's MLflow runs are marked FAILED")


class _WithoutTraceback(logging.Formatter):
    """Formats a record as ``inner`` does, without its exception or stack."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        bare = logging.makeLogRecord(record.__dict__)  # the API log handler keeps the original
        bare.exc_info, bare.exc_text, bare.stack_info = None, None, None
        return self.inner.format(bare)


def quiet_prefect_tracebacks() -> None:
    """The console shows Prefect's log lines without their tracebacks (a failed task's, a
    crashed flow's): the command ends with one line of its own. ``GRPO_DEBUG=1`` keeps them; the
    Prefect server's log of each run always has them. Call once Prefect is imported (its logging
    setup replaces the handlers)."""
    if os.environ.get("GRPO_DEBUG"):
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler.formatter, _WithoutTraceback
        ):
            handler.setFormatter(_WithoutTraceback(handler.formatter))


def open_store(command: str, experiment: str) -> None:
    """Make the MLflow store ready before a flow uses it: created or upgraded once (runs started
    together would race on it), and the RUNNING runs of ``experiment`` left by a process of this
    host that has ended (``kill -9``) marked KILLED, each said in one line."""
    from tasks.tracking import end_runs_of_dead_processes, prepare_store  # imports MLflow: lazy

    prepare_store()
    for run_id in end_runs_of_dead_processes(experiment):
        print(
            f"{command}: note: marked MLflow run {run_id} KILLED: the process that ran it had ended",
            file=sys.stderr,
        )


def report_outcome(command: str, result: dict, json_path: Path | None) -> int:
    """Write the flow's result as JSON (if asked), say each failed run in one line, and return the
    exit code: 1 if a run failed, else 0."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_result_json(json_path, result)
    for failure in result.get("failed", []):
        where = "".join(
            f" {label} {failure[key]}"
            for key, label in (("sweep_point", "at"), ("held_out_group", "without"))
            if failure.get(key)
        )
        print(
            f"{command}: {failure['method']} seed {failure['seed']}{where} failed (MLflow run "
            f"{failure['run_id']}): {failure['reason']}",
            file=sys.stderr,
        )
    return 1 if result.get("failed") else 0


def format_comparison(result: dict) -> str:
    """The per-group table printed after a run: one row per method, mean ± 95% interval over seeds,
    then one sentence per group-robust method on the group its plain counterpart serves worst."""
    from tasks.comparison import describe_gain  # imports Prefect: lazy, for a quick ``grpo --help``

    comparison = result["comparison"]
    groups = result["data"]["groups"]
    header = ["method", "seeds", "worst loss", "avg loss", "worst acc", "avg acc"] + [
        f"{name} acc" for name in groups
    ]
    rows = [header]
    for row in comparison["rows"]:
        keys = [*names.HEADLINE]
        keys += [
            names.aggregate("group", "reward_accuracy", info["slug"]) for info in groups.values()
        ]
        rows.append(
            [row["method"], str(row["seeds"])]
            + [_fmt(row.get(key), row["ci95"].get(key)) for key in keys]
        )
    lines = [
        f"Per-group {comparison['split']} results (mean ± 95% interval over seeds; reward accuracy = "
        "share of pairs with h > 0):",
        *aligned_rows(rows),
    ]
    sizes = ", ".join(f"{name} {info['train']}" for name, info in groups.items())
    lines.append(f"training pairs per group: {sizes}")
    for gain in comparison.get("gains", []):
        lines += ["", describe_gain(gain, comparison["split"])]
    unseen = result.get("unseen_groups")
    if unseen:
        lines += ["", format_unseen(unseen)]
    needed = ("seconds_per_step", "pairs_per_second", "peak_rss_gb")
    timing = [
        r["timing"] for r in result.get("runs", []) if all(k in r.get("timing", {}) for k in needed)
    ]
    if timing:

        def mean(key: str) -> float:
            return sum(t[key] for t in timing) / len(timing)

        lines += [
            "",
            f"training: {mean('seconds_per_step'):.2f} s per optimizer step ({mean('pairs_per_second'):.1f} "
            f"pairs/s, validation included), peak memory {max(t['peak_rss_gb'] for t in timing):.2f} GB "
            f"(over {len(timing)} runs)",
        ]
    return "\n".join(lines)


def format_unseen(unseen: dict) -> str:
    """The leave-one-group-out table: each group's accuracy seen and unseen, per method."""
    rows = [["method", "group left out", "seeds", "acc seen", "acc unseen", "worse unseen by"]]
    for row in unseen["tables"]["reward_accuracy"]:
        rows.append(
            [
                row["method"],
                row["group"],
                str(row["seeds"]),
                _fmt(row["seen"], row["seen_ci95"]),
                _fmt(row["unseen"], row["unseen_ci95"]),
                _fmt(row["worse_unseen"]),
            ]
        )
    return "\n".join(
        [
            f"Groups never seen in training ({unseen['split']}; reward accuracy with the group in "
            "training and without it):",
            *aligned_rows(rows),
        ]
    )


def command(name: str) -> str:
    """The path of this environment's ``name`` command, from the current folder where it is below."""
    path = Path(sys.executable).parent / name
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def next_steps(result: dict, uri: str) -> str:
    lines = ["Where to look:"]
    if uri.startswith("sqlite:///"):
        lines.append(
            f"  MLflow UI:   {command('mlflow')} ui --backend-store-uri {uri} --port 5000   -> http://127.0.0.1:5000"
        )
    else:
        lines.append(f"  MLflow UI:   {uri}")
    lines.append(f"  Dashboard:   {command('grpo')} dashboard   -> http://127.0.0.1:8501")
    lines.append(
        f"  Prefect UI:  {command('prefect')} server start   -> http://127.0.0.1:4200 (runs made with PREFECT_API_URL set)"
    )
    champion = result.get("champion") or {}
    if champion.get("uri"):
        c = champion["champion"]
        lines.append(f"  Champion:    {champion['uri']} (version {c['version']}, {c['method']})")
    elif champion.get("decisions"):
        lines.append(
            f"  Champion:    unchanged: no candidate beat it on the evidence ({champion['model']})"
        )
    for decision in champion.get("decisions", []):
        lines.append(f"    {decision['method']}: {decision['outcome']}, {decision['reason']}")
    report = result.get("report") or {}
    if report.get("html"):
        lines.append(f"  Report:      {report['html']}")
    lines.append(
        f"  MLflow run:  {result['parent_run_id']} (experiment id {result['experiment_id']})"
    )
    return "\n".join(lines)


def _fmt(value, half=None) -> str:
    if value is None:
        return "-"
    if half is None or half != half:  # one seed: no interval
        return f"{value:.3f}"
    return f"{value:.3f} ± {half:.3f}"
