"""``grpo synthetic``: the paper's synthetic group linear bandit experiments (spec section 5)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """\
examples:
  grpo synthetic --setting uneven-imbalanced --seeds 20
  grpo synthetic --setting even-imbalanced --methods dpo,is_dpo,gr_dpo --json even.json
  grpo synthetic --setting uneven-imbalanced --solver closed-form --methods ipo,is_ipo,gr_ipo

Settings (beta, eta_theta, eta_alpha, iterations; full-batch gradient descent):
  even-imbalanced    1, 0.5, 0.9,  10k   groups 20%/80% of 300 pairs, any two actions
  uneven-balanced    2, 5,   0.01, 5k    groups 50%/50%, group 0 adjacent actions, group 1 a vs a+4
  uneven-imbalanced  1, 0.9, 0.5,  20k   groups 20%/80%, uneven actions
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="run the paper's synthetic group linear bandit benchmark",
        description="Train every method on the synthetic two-group linear bandit for several seeds "
        "(vectorised) and report the worst-group validation loss and max reward error.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--setting",
        choices=["even-imbalanced", "uneven-balanced", "uneven-imbalanced"],
        default="uneven-imbalanced",
        help="the paper's setting (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", type=int, default=20, help="number of seeds (default: %(default)s)"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of dpo,is_dpo,gr_dpo,ipo,is_ipo,gr_ipo (default: all; "
        "the IPO family with --solver closed-form)",
    )
    parser.add_argument(
        "--feature-type",
        choices=["swapped", "flipped"],
        default="swapped",
        help="group 1's features (default: %(default)s)",
    )
    parser.add_argument(
        "--solver",
        choices=["gradient", "closed-form"],
        default="gradient",
        help="gradient descent in the training loop, or the exact IPO solution (default: %(default)s)",
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=0.1,
        help="beta of the closed-form solver (default: %(default)s)",
    )
    parser.add_argument(
        "--closed-form-step-size",
        type=float,
        default=0.01,
        help="eta_alpha of the closed-form gr_ipo alternation (default: %(default)s)",
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="override the setting's iteration count"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from pydantic import ValidationError

    from grpo_core.methods import METHODS
    from grpo_core.synthetic.experiment import SyntheticConfig

    solver = args.solver.replace("-", "_")
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    else:
        methods = tuple(m for m in METHODS if solver == "gradient" or m.endswith("ipo"))
    try:
        config = SyntheticConfig(
            setting=args.setting,
            seeds=args.seeds,
            methods=methods,
            feature_type=args.feature_type,
            solver=solver,
            closed_form_beta=args.beta,
            closed_form_step_size=args.closed_form_step_size,
            iterations=args.iterations,
        )
    except ValidationError as error:
        print(f"grpo synthetic: invalid arguments:\n{error}", file=sys.stderr)
        return 2
    from grpo_cli.paths import writable_file

    writable_file(args.json, "--json")
    document = run_benchmark(config, progress=not args.no_progress)
    print(format_table(document))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def run_benchmark(config, progress: bool = True) -> dict:
    """Run every method of ``config`` with progress output; return the JSON document."""
    import torch

    from grpo_cli.progress import CliProgress
    from grpo_core.methods import loss_type_of
    from grpo_core.synthetic.experiment import (
        SETTINGS,
        make_problem,
        run_methods,
        summarize_results,
    )

    # Tiny tensors: a second intra-op thread costs more than it gains (bench/synthetic_speed.py).
    torch.set_num_threads(1)
    iterations = config.iterations or SETTINGS[config.setting].iterations
    families = {loss_type_of(m) for m in config.methods}
    total = iterations * len(families) if config.solver == "gradient" else len(config.methods)
    done = 0

    def on_step(_record) -> None:
        nonlocal done
        done += 1
        report(config.setting, done, total)

    with CliProgress(enabled=progress) as report:
        report(config.setting, 0, total)
        problem = make_problem(config)
        results = run_methods(problem, config, config.methods, on_step=on_step)
        if config.solver != "gradient":
            report(config.setting, total, total)
    return summarize_results(config, results)


def format_table(document: dict) -> str:
    """The per-method table: worst-group validation loss, max reward error, final group weights."""
    header = (
        f"setting {document['setting']}, {document['seeds']} seeds, {document['feature_type']} features, "
        f"{document['solver'].replace('_', '-')} solver (mean +- 95% interval over seeds)"
    )
    rows = [("method", "max val group loss", "max reward error", "group weights (g0, g1)")]
    for method, r in document["results"].items():
        loss, err = r["max_val_group_loss"], r["max_reward_error"]
        weights = ", ".join(f"{w:.3f}" for w in r["final_group_weights"])
        rows.append(
            (
                method,
                f"{loss['mean']:.4f} +- {loss['ci95']:.4f}",
                f"{err['mean']:.4f} +- {err['ci95']:.4f}",
                weights,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [header, ""]
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
