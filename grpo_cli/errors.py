"""The one way a command reports what it has put in words: raise, and ``grpo_cli.main.main`` prints
``grpo <command>: <message>`` on stderr, once, and exits with the error's code.

Other exceptions reach ``main`` too; their kind picks the exit code there (``BAD_INPUT``).
"""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 70, 130
"""Exit codes: 1 the work failed (a run, a server), 2 bad input (config, data, paths, flags),
70 an error the tool did not expect (a bug: please report it), 130 interrupted (Ctrl-C)."""


class CommandError(Exception):
    """A failure the command has described in ``message``: one line on stderr, exit ``exit_code``."""

    exit_code = EXIT_FAILED


class UsageError(CommandError):
    """The input is at fault (a flag, a config, a path): exit 2."""

    exit_code = EXIT_BAD_INPUT


class WorkFailed(CommandError):
    """The input was fine but the work could not be done (a server, a port, a rank): exit 1."""

    exit_code = EXIT_FAILED
