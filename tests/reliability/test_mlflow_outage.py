"""An MLflow server that goes away during a run: a short outage loses no metric, a long
one ends with one line naming the file that keeps them, and a resumed run sends them. The server is
a real ``mlflow server`` on loopback, stopped and started again on the same port and store."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo_cli.main import main
from tasks.tracking import MetricBuffer, TrackingServerDown
from tests.pipeline.servers import Service, free_port, mlflow_server_command, wait_healthy

pytestmark = pytest.mark.integration


class Server:
    """``mlflow server`` on one port and one SQLite store, which can be stopped and restarted."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service: Service | None = None

    def start(self) -> None:
        import os

        self.service = Service(
            mlflow_server_command(self.port, self.root), self.root / "mlflow.log",
            {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )  # fmt: skip
        wait_healthy(f"{self.url}/health", self.service.process, self.service.log)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    server.start()
    yield server
    server.stop()


def new_run(url: str) -> tuple[object, str]:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment = client.create_experiment("outage")
    return client, client.create_run(experiment).info.run_id


def steps_logged(url: str, run_id: str) -> list[int]:
    from mlflow import MlflowClient

    return sorted(m.step for m in MlflowClient(url).get_metric_history(run_id, "train/loss"))


def test_a_short_outage_during_training_loses_no_metric(server, tmp_path):
    # Given a run whose first steps reached the server
    client, run_id = new_run(server.url)
    buffer = MetricBuffer(client, run_id, flush_every=2, spill=tmp_path / "spill.jsonl", poll_s=0.2)
    for step in range(4):
        buffer.add({"train/loss": 1.0 / (step + 1)}, step)
    assert steps_logged(server.url, run_id) == [0, 1, 2, 3]
    # When the server goes away for a while, and training goes on meanwhile
    server.stop()
    for step in range(4, 10):
        buffer.add({"train/loss": 1.0 / (step + 1)}, step)  # does not raise
    assert buffer.outage and len(buffer.pending) == 6
    server.start()
    # Then the end-of-run flush sends what waited: every step once, nothing spilled
    buffer.flush()
    assert steps_logged(server.url, run_id) == list(range(10))
    assert not (tmp_path / "spill.jsonl").exists() and buffer.outage is None


def test_a_long_outage_keeps_the_metrics_and_a_resumed_run_sends_them(server, tmp_path):
    client, run_id = new_run(server.url)
    spill = tmp_path / "run" / "unlogged-metrics.jsonl"
    buffer = MetricBuffer(client, run_id, flush_every=100, spill=spill, wait_s=1.0, poll_s=0.2)
    for step in range(5):
        buffer.add({"train/loss": float(step), "train/step_size": 0.5}, step)
    # When the server is down at the end of the run for longer than the buffer waits
    server.stop()
    with pytest.raises(TrackingServerDown) as stopped:
        buffer.flush()
    # Then one line says what happened and where the metrics are; the file holds all of them
    message = str(stopped.value)
    assert "\n" not in message and str(spill) in message and "10 metrics" in message
    assert len(spill.read_text().splitlines()) == 10
    # When the server is back, the command the line names sends them
    server.start()
    command = message[message.index("grpo send-metrics") :].split()[1:]
    assert main([*command, "--tracking-uri", server.url]) == 0
    assert steps_logged(server.url, run_id) == [0, 1, 2, 3, 4]
    assert not spill.exists()


def test_a_resumed_run_sends_the_kept_metrics_first(server, tmp_path):
    client, run_id = new_run(server.url)
    spill = tmp_path / "unlogged-metrics.jsonl"
    spill.write_text('{"key": "train/loss", "value": 0.5, "timestamp": 1, "step": 0}\n')
    buffer = MetricBuffer(client, run_id, spill=spill)
    buffer.add({"train/loss": 0.25}, 1)
    buffer.flush()
    assert steps_logged(server.url, run_id) == [0, 1] and not spill.exists()


def test_send_metrics_of_a_missing_file_is_one_line(capsys, tmp_path):
    assert main(["send-metrics", str(tmp_path / "none.jsonl"), "--run-id", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "none.jsonl: no such file" in err
