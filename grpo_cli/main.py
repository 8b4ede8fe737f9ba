"""The ``grpo`` command: Group Robust Preference Optimization pipeline.

Each subcommand lives in its own module with ``add_parser(subparsers)``; heavy imports (torch,
prefect, mlflow) happen inside the handlers so that ``grpo --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "grpo_cli.data_cmd",
    "grpo_cli.synthetic_cmd",
    "grpo_cli.train_cmd",
    "grpo_cli.pipeline_cmd",
    "grpo_cli.dashboard_cmd",
)

DESCRIPTION = """\
Group Robust Preference Optimization (Ramesh et al., NeurIPS 2024): DPO/IPO fine-tuning where
every preference pair carries a group label and training up-weights the worst-served groups.
(Not DeepSeek's Group *Relative* Policy Optimization.)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    return int(args.func(args) or 0)


def _version() -> str:
    from grpo_core import __version__

    return f"grpo {__version__}"


if __name__ == "__main__":
    sys.exit(main())
