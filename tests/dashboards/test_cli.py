"""``grpo dashboard`` and ``grpo report``: parsing, the streamlit command line, the report end to end."""

import sys

import pytest

from grpo_cli import dashboard_cmd
from grpo_cli.main import build_parser, main


def test_dashboard_parser_defaults():
    args = build_parser().parse_args(["dashboard"])
    assert (args.func, args.port, args.tracking_uri) == (dashboard_cmd.run_dashboard, 8501, None)


def test_streamlit_command_is_headless_on_loopback():
    command = dashboard_cmd.streamlit_command("sqlite:////x/mlflow.db", 8600)
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4].endswith("dashboards/app.py")
    options = dict(zip(command[5:13:2], command[6:13:2], strict=True))
    assert options == {
        "--server.port": "8600", "--server.address": "127.0.0.1",
        "--server.headless": "true", "--browser.gatherUsageStats": "false",
    }  # fmt: skip
    assert command[13:] == ["--", "--tracking-uri", "sqlite:////x/mlflow.db"]


def test_dashboard_refuses_a_busy_port(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 1
    assert "in use" in capsys.readouterr().err


def test_report_command_writes_the_report(store, tmp_path, capsys):
    assert (
        main(
            [
                "report",
                "--run-id",
                store["parent"],
                "--tracking-uri",
                store["uri"],
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "report.html")
    assert (tmp_path / "r" / "report.html").exists()


@pytest.mark.parametrize("case", ["missing store", "unknown run"])
def test_report_command_errors_are_messages(case, store, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'none.db'}" if case == "missing store" else store["uri"]
    assert (
        main(["report", "--run-id", "0" * 32, "--tracking-uri", uri, "--out", str(tmp_path / "r")])
        == 2
    )
    assert capsys.readouterr().err.startswith("grpo report:")
