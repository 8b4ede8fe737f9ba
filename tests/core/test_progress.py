"""Progress output that suits where it goes: a line per tenth in logs and files, a bar on a terminal."""

from __future__ import annotations

import io

from grpo_core.progress import Milestones


def test_milestones_write_one_line_per_tenth_by_hand():
    lines: list[str] = []
    progress = Milestones(lines.append, label="ipo/seed0")
    for done in range(0, 201):
        progress("train", done, 200)
    assert len(lines) == 11, "0%, 10%, ..., 100%"
    assert lines[0] == "ipo/seed0 train: 0/200 (0%)"
    assert lines[1] == "ipo/seed0 train: 20/200 (10%)"
    assert lines[-1] == "ipo/seed0 train: 200/200 (100%)"


def test_milestones_count_each_stage_apart():
    lines: list[str] = []
    progress = Milestones(lines.append)
    progress("sft", 5, 10)
    progress("train", 1, 100)
    progress("sft", 10, 10)
    assert lines == ["sft: 5/10 (50%)", "train: 1/100 (1%)", "sft: 10/10 (100%)"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere():
    from grpo_cli.progress import CliProgress

    file = io.StringIO()
    with CliProgress(stream=file) as progress:
        for done in range(1001):
            progress("train", done, 1000)
    assert file.getvalue().count("\n") == 11, "a file gets a line per tenth, not a bar per update"
    terminal = Terminal()
    with CliProgress(stream=terminal) as progress:
        for done in range(1001):
            progress("train", done, 1000)
    assert "\r" in terminal.getvalue() and "1000/1000" in terminal.getvalue(), "a tqdm bar"
    silent = io.StringIO()
    with CliProgress(enabled=False, stream=silent) as progress:
        progress("train", 1, 2)
    assert silent.getvalue() == ""
