"""The ``grpo`` command: Group Robust Preference Optimization pipeline.

Each subcommand lives in its own module with ``add_parser(subparsers)``; heavy imports (torch,
prefect, mlflow) happen inside the handlers so that ``grpo --help`` answers at once. A handler
reports bad input by raising (:class:`grpo_cli.errors.UsageError` for a message of its own);
:func:`main` alone turns an error into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from grpo_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    CommandError,
)

COMMAND_MODULES = (
    "grpo_cli.data_cmd",
    "grpo_cli.synthetic_cmd",
    "grpo_cli.train_cmd",
    "grpo_cli.pipeline_cmd",
    "grpo_cli.sweep_cmd",
    "grpo_cli.dashboard_cmd",
    "grpo_cli.alerts_cmd",
    "grpo_cli.metrics_cmd",
    "grpo_cli.export_cmd",
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
    _record_prog(parser)
    return parser


def _record_prog(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's parser sets ``args.prog`` to its own name (``grpo data prepare``): the
    prefix of the one line :func:`main` prints for a :class:`CommandError`. The deepest parser's
    default wins, as argparse copies a subparser's values over its parent's."""
    for action in parser._actions:  # argparse lists a parser's subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.set_defaults(prog=subparser.prog)
                _record_prog(subparser)


BAD_INPUT = (
    ValueError, LookupError, FileNotFoundError, FileExistsError, IsADirectoryError,
    NotADirectoryError,
)  # fmt: skip
"""Exception kinds that mean the input is at fault (pydantic's ValidationError is a ValueError)."""


def main(argv: list[str] | None = None) -> int:
    """Run one command. Whatever goes wrong ends in one line on stderr and an exit code, never a
    traceback (``GRPO_DEBUG=1`` shows it)."""
    _stacks_on_sigusr1()
    # MLflow draws a progress bar per artifact download (several per run); the user's own choice wins
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. to relaunch under torchrun
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else EXIT_BAD_INPUT
    try:
        with interrupts_raise():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"grpo {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CommandError as error:  # the handler's own words: no traceback even with GRPO_DEBUG
        print(f"{args.prog}: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:
        if os.environ.get("GRPO_DEBUG"):
            raise
        print(f"grpo {args.command}: {one_line(error)}", file=sys.stderr)
        if isinstance(error, BAD_INPUT):
            return EXIT_BAD_INPUT
        if isinstance(error, (OSError, RuntimeError, ArithmeticError)):
            return EXIT_FAILED
        return EXIT_INTERNAL


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt wherever the main thread is. Under Python's own handler, an
    event loop run in the main thread (``asyncio.run``, ``anyio.run``: Prefect does so) swaps in a
    handler that only cancels its task, and a Ctrl-C that lands there is lost when the task absorbs
    the cancellation. A handler of our own is left alone by asyncio."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr: what a hung command is doing."""
    import faulthandler

    if hasattr(signal, "SIGUSR1"):
        # not when stderr is no file (captured in tests)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True)


def one_line(error: BaseException) -> str:
    """The error's message on one line; the kind is named when the message alone would not say."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = "; ".join(lines[:3]) if lines else type(error).__name__
    if isinstance(error, BAD_INPUT + (OSError, RuntimeError, ArithmeticError)):
        return text
    return (
        f"internal error ({type(error).__name__}: {text}); run with GRPO_DEBUG=1 for the traceback"
    )


def _version() -> str:
    from grpo_core import __version__

    return f"grpo {__version__}"


if __name__ == "__main__":
    sys.exit(main())
