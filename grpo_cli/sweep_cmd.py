"""``grpo sweep``: the sweep flow over a grid of run-config overrides, locally or on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from dashboards.store import tracking_uri
from grpo_cli.config_files import ConfigFileError, apply_overrides, load_run_config, one_line_errors
from grpo_cli.errors import UsageError
from grpo_cli.local_server import local_prefect_server
from grpo_cli.paths import writable_file, writable_folder
from grpo_cli.pipeline_cmd import (
    open_store,
    prepare_environment,
    quiet_prefect_tracebacks,
    report_outcome,
    sigterm_raises,
)
from grpo_cli.tables import aligned_rows
from grpo_core.data.readers import check_sources
from grpo_core.methods import is_group_robust
from tasks.run_config import RunConfig
from tasks.sweep_config import RunnerConfig, SweepConfig, pareto_demo_run, pareto_grid

EPILOG = """\
examples:
  grpo sweep --pareto                                   # chi in {0,...,1}: the demo data, GR-IPO, 5 seeds
  grpo sweep --config examples/tiny_opinions.yaml --grid group_weights.step_size=0.001,0.003,0.01
  grpo sweep --config my.yaml --grid loss.beta=0.01,0.1 --grid optim.learning_rate=1e-4,3e-4
  grpo sweep --pareto --runner dask --dask-workers 2    # on a Dask LocalCluster (prefect-dask)
  grpo sweep --pareto --runner dask --dask-address tcp://10.0.0.5:8786

Every grid point trains every method and seed of the config, from one prepared dataset and one
starting model; each child is an MLflow child run of the sweep's run. Keys under loss, group_weights,
optim, method_learning_rates and checkpoint_every can be swept. A method that reads none of the
settings two grid points differ in (IPO and group_weights.step_size) trains once for both; the other
point's child run copies its metrics and names that run in its shared_with tag. Running the same sweep
again resumes its children from their checkpoints (outputs/sweeps/<name>-<hash>/).
Prefect: a temporary local server unless PREFECT_API_URL is set.
MLflow:  MLFLOW_TRACKING_URI, or sqlite:///<this folder>/mlflow.db with artifacts in ./mlartifacts.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of settings x methods x seeds (locally or on Dask) and show the Pareto front",
        description="Run the sweep flow: every point of the grid x every method and seed of the run "
        "config, then the worst group against the average per setting, 95% intervals over seeds, "
        "with the settings that nothing dominates (the Pareto front).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="a YAML or JSON run config (default: the demo's, with GR-IPO only: 5 seeds, 600 steps)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one run-config field (VALUE is YAML), e.g. seeds=[0,1]",
    )  # fmt: skip
    parser.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2,...",
        help="one axis of the grid: a dotted run-config key and its values (each YAML)",
    )  # fmt: skip
    parser.add_argument(
        "--pareto", action="store_true",
        help="the Pareto preset: group_weights.robust_mix (chi) = 0,0.25,0.5,0.75,1 for the "
        "config's group-robust methods",
    )  # fmt: skip
    parser.add_argument(
        "--runner", choices=["local", "dask"], default="local",
        help="where the children train: 'local' (one at a time on a CPU, one per GPU) or 'dask' "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--dask-address", metavar="ADDRESS",
        help="an existing Dask scheduler, e.g. tcp://host:8786 (implies --runner dask)",
    )  # fmt: skip
    parser.add_argument(
        "--dask-workers", type=int, default=2, metavar="N",
        help="worker processes of the Dask LocalCluster (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--split", choices=["validation", "test"], default="validation",
        help="the split of the worst-group vs average comparison (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--metric", choices=["loss", "reward_accuracy"], default="loss",
        help="the metric of the Pareto front and figure (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the flow's result as JSON"
    )
    parser.set_defaults(func=run_sweep)


def parse_grid(items: list[str]) -> dict[str, tuple]:
    """``["loss.beta=0.01,0.1"]`` -> ``{"loss.beta": (0.01, 0.1)}`` (each value parsed as YAML)."""
    grid: dict[str, tuple] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or not raw:
            raise ValueError(f"--grid needs KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise ValueError(f"--grid {key} is given twice")
        try:
            grid[key] = tuple(_scalar(v.strip()) for v in raw.split(","))
        except yaml.YAMLError:
            raise ValueError(f"--grid {key}: {raw!r} is not a list of YAML values") from None
    return grid


def _scalar(text: str):
    """A number where the text is one (``1e30`` too, which YAML reads as a string), else YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def sweep_config(args: argparse.Namespace):
    """The validated :class:`SweepConfig` of the command line (a ``ValueError`` in one line)."""
    where = f"{args.config}: " if args.config else ""
    try:
        if args.config:
            run = load_run_config(args.config, args.set)
        else:
            base = pareto_demo_run().model_dump(mode="json")
            run = RunConfig.model_validate(apply_overrides(base, args.set))
        grid = parse_grid(args.grid)
        if args.pareto:
            chi = pareto_grid(run)
            robust = tuple(m for m in run.methods if is_group_robust(m))
            run = run.model_copy(update={"methods": robust})
            grid = chi | grid
        if not grid:
            raise ValueError("no grid: give --grid KEY=V1,V2,... or --pareto")
        runner = RunnerConfig(
            kind="dask" if args.dask_address else args.runner,
            dask_address=args.dask_address,
            dask_workers=args.dask_workers,
        )
        return SweepConfig(
            run=run, grid=grid, runner=runner, pareto_split=args.split, pareto_metric=args.metric
        )
    except ValidationError as error:
        raise ValueError(where + one_line_errors(error)) from None
    except ConfigFileError as error:
        raise ValueError(where + str(error)) from None


def run_sweep(args: argparse.Namespace) -> int:
    try:
        config = sweep_config(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    writable_file(args.json, "--json", {"--config": args.config, "data.path": config.run.data.path})
    writable_folder(Path(config.run.execution.output_dir), "execution.output_dir")
    if config.run.eval.splits and args.split not in config.run.eval.splits:
        raise UsageError(
            f"--split {args.split} is not evaluated (eval.splits: "
            f"{', '.join(config.run.eval.splits)})"
        )
    prepare_environment()
    # torch and MLflow: imported here, after prepare_environment (the Hugging Face and MLflow
    # settings it writes are read at import), and not at the top so that ``grpo --help`` is quick
    from grpo_core.lm.presets import check_model_source
    from tasks.tracking import require_reachable

    check_model_source(config.run.model)
    check_sources(config.run.data)
    require_reachable()
    open_store("grpo sweep", config.name)
    print(sweep_plan(config), file=sys.stderr)
    with sigterm_raises(), local_prefect_server():
        # Prefect reads its server's URL when imported: only once the temporary server is up
        from flows.sweep import sweep

        quiet_prefect_tracebacks()
        result = sweep(config)
    print()
    print(format_sweep(result))
    print()
    print(
        f"MLflow:  {tracking_uri()} (run {result['parent_run_id']}, experiment id {result['experiment_id']})"
    )
    report = result.get("report") or {}
    if report.get("html"):
        print(f"Report:  {report['html']}")
    return report_outcome("grpo sweep", result, args.json)


def sweep_plan(config: SweepConfig) -> str:
    """One line: the children, and how many train (those whose method reads none of the swept
    settings that differ share one training)."""
    trainings = sum(c.trains for c in config.children())
    line = (
        f"sweep: {len(config.points())} settings x {len(config.run.methods)} methods x "
        f"{len(config.run.seeds)} seeds = {config.size} children"
    )
    if trainings < config.size:
        line += f", {trainings} trainings (children of the same effective recipe share one)"
    return f"{line} on {config.runner.describe()}"


def format_sweep(result: dict) -> str:
    """One row per method and setting: worst group and average with 95% intervals, front marked."""
    summary = result["summary"]
    metric, split = summary["metric"], summary["split"]
    table = summary["tables"][metric]
    shares = any(row.get("shares") for row in table)
    rows = [["method", "setting", "seeds", f"worst-group {metric}", f"average {metric}", "front"]]
    rows[0] += ["trained at"] if shares else []
    for row in table:
        rows.append(
            [
                row["method"],
                row["setting"],
                str(row["seeds"]),
                _plus_minus(row["worst"], row["worst_ci95"]),
                _plus_minus(row["average"], row["average_ci95"]),
                "*" if row["pareto"] else "",
            ]
            + ([row.get("shares") or ""] if shares else [])
        )
    notes = (
        "; trained at = the setting whose training a row reports (its method reads none of the "
        "settings that differ)"
        if shares
        else ""
    )
    return "\n".join(
        [
            f"Worst group against average on {split} (mean ± 95% interval over seeds; * = on the "
            f"Pareto front: no other setting is as good on both and better on one{notes}):",
            *aligned_rows(rows),
        ]
    )


def _plus_minus(value: float, half: float | None) -> str:
    return f"{value:.4f}" if half is None else f"{value:.4f} ± {half:.4f}"
