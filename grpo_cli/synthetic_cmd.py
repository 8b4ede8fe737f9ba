"""``grpo synthetic``: the synthetic group linear bandit experiments of Ramesh et al. 2024,
"Group Robust Preference Optimization in Reward-free RLHF" (arXiv:2405.20304, section 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from grpo_cli.config_files import one_line_errors
from grpo_cli.errors import UsageError
from grpo_cli.paths import writable_file
from grpo_cli.progress import CliProgress
from grpo_cli.tables import aligned_rows
from grpo_core.atomic import write_result_json
from grpo_core.methods import METHODS, is_group_robust, loss_type_of

EPILOG = """\
examples:
  grpo synthetic --setting uneven-imbalanced --seeds 20
  grpo synthetic --setting even-imbalanced --methods dpo,is_dpo,gr_dpo --json even.json
  grpo synthetic --setting even-imbalanced --methods dpo,gr_dpo,cdpo,rdpo,dr_dpo,kl_dpo   # the baselines
  grpo synthetic --setting uneven-imbalanced --solver closed-form --methods ipo,is_ipo,gr_ipo
  grpo synthetic --pareto --chi 0,0.25,0.5,0.75,1 --plot pareto.png   # worst group vs average

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
        help="comma-separated subset of dpo,is_dpo,gr_dpo,ipo,is_ipo,gr_ipo and the pair-robust "
        "baselines cdpo,rdpo,dr_dpo,kl_dpo (default: all; the IPO family with --solver closed-form)",
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
    parser.add_argument(
        "--pareto",
        action="store_true",
        help="sweep chi (robust_mix) for one group-robust method (--methods, default gr_dpo) and "
        "report the worst-group vs average validation loss with its Pareto front",
    )
    parser.add_argument(
        "--chi",
        default="0,0.25,0.5,0.75,1",
        help="chi values of --pareto, comma-separated in [0, 1] (default: %(default)s)",
    )
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="PNG", help="with --pareto: write the figure"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from grpo_core.synthetic.experiment import SyntheticConfig  # torch: lazy, for a quick --help

    solver = args.solver.replace("-", "_")
    if args.pareto:
        return run_pareto(args)
    if args.plot:
        raise UsageError("--plot draws the --pareto figure; add --pareto")
    if args.methods is not None:  # "" names no method: refused below, not read as "all"
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
        raise UsageError(f"invalid arguments: {one_line_errors(error)}") from None
    writable_file(args.json, "--json")
    document = run_benchmark(config, progress=not args.no_progress)
    print(format_table(document))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_result_json(args.json, document)
        print(f"\nwrote {args.json}")
    return 0


def plot_format(path: Path | None) -> None:
    """Raise ``ValueError`` unless matplotlib can write a figure to ``path`` (by its suffix)."""
    if path is None:
        return
    from matplotlib.backend_bases import FigureCanvasBase  # lazy: matplotlib is slow to import

    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in formats:
        raise ValueError(
            f"--plot {path}: give a file ending in one of {', '.join('.' + f for f in formats)}"
        )


def run_pareto(args: argparse.Namespace) -> int:
    """``--pareto``: the chi sweep of one group-robust method, its table, JSON and figure."""
    from grpo_core.synthetic.experiment import SyntheticConfig  # torch: lazy, for a quick --help

    method = (args.methods or "gr_dpo").strip()
    if "," in method or not is_group_robust(method) or args.solver != "gradient":
        raise UsageError(
            f"--pareto sweeps one group-robust method with the gradient solver "
            f"(--methods gr_dpo or gr_ipo), not {method!r} with {args.solver}"
        )
    try:
        chis = [float(c) for c in args.chi.split(",") if c.strip()]
    except ValueError:
        chis = []
    if not chis or any(not 0.0 <= c <= 1.0 for c in chis) or len(set(chis)) != len(chis):
        raise UsageError(f"--chi {args.chi!r}: give distinct numbers in [0, 1], e.g. 0,0.5,1")
    config = SyntheticConfig(
        setting=args.setting,
        seeds=args.seeds,
        methods=(method,),
        feature_type=args.feature_type,
        iterations=args.iterations,
    )
    writable_file(args.json, "--json")
    writable_file(args.plot, "--plot")
    plot_format(args.plot)
    document = run_sweep(config, method, chis, progress=not args.no_progress)
    print(format_sweep(document))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_result_json(args.json, document)
        print(f"\nwrote {args.json}")
    if args.plot:
        # pandas and matplotlib: lazy, for a quick ``grpo --help``
        from dashboards.figures import pareto_figure
        from dashboards.render_matplotlib import to_matplotlib
        from dashboards.shaping import sweep_table

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        to_matplotlib(pareto_figure(sweep_table(document), method)).savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


def run_sweep(config, method: str, chis: list[float], progress: bool = True) -> dict:
    """The chi sweep with a progress bar; the JSON document of ``--pareto``."""
    # torch: lazy, for a quick ``grpo --help``
    import torch

    from grpo_core.synthetic.experiment import SETTINGS, make_problem
    from grpo_core.synthetic.pareto import chi_sweep, summarize_sweep

    torch.set_num_threads(1)
    total = config.iterations or SETTINGS[config.setting].iterations
    done = 0

    def on_step(_record) -> None:
        nonlocal done
        done += 1
        report(f"{config.setting} chi sweep", done, total)

    with CliProgress(enabled=progress) as report:
        problem = make_problem(config)
        results = chi_sweep(problem, config, method, chis, on_step=on_step)
    return summarize_sweep(config, method, chis, results)


def format_sweep(document: dict) -> str:
    """One row per chi: worst-group and average validation loss, max reward error, the front."""
    header = (
        f"{document['method']} over chi, setting {document['setting']}, {document['seeds']} seeds "
        "(mean +- 95% interval over seeds; * = on the Pareto front of worst-group vs average loss)"
    )
    rows = [("chi", "worst val group loss", "average val group loss", "max reward error", "front")]
    for r in document["rows"]:
        rows.append(
            (
                f"{r['chi']:g}",
                *(
                    f"{r[k]['mean']:.4f} +- {r[k]['ci95']:.4f}"
                    for k in ("worst_val_group_loss", "average_val_group_loss", "max_reward_error")
                ),
                "*" if r["pareto"] else "",
            )
        )
    return "\n".join([header, "", *aligned_rows(rows)])


def run_benchmark(config, progress: bool = True) -> dict:
    """Run every method of ``config`` with progress output; return the JSON document."""
    # torch: lazy, for a quick ``grpo --help``
    import torch

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
    return "\n".join([header, "", *aligned_rows(rows)])
