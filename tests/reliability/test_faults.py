"""Faults and mistakes of the kinds a new user meets: each ends in one line naming what
is at fault, the documented exit code, no traceback, and nothing written or left half-done.

Fast cases run ``grpo_cli.main.main`` in process; training cases train a tiny model for a few
steps. Server faults use ports where nothing listens; live servers are in test_signals.py and
tests/pipeline/test_real_servers.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from grpo_cli.main import EXIT_BAD_INPUT, EXIT_FAILED
from tests.reliability.helpers import run, tiny_config

TINY = tiny_config("fault-test")
DOWN = "http://127.0.0.1:9"  # the discard port: nothing answers


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# Data ---------------------------------------------------------------------------------------------


def test_an_empty_data_file_says_it_is_empty(capsys, tmp_path):
    source = write(tmp_path / "empty.jsonl", "")
    code, lines, _ = run(
        capsys, "data", "prepare", "--format", "pairs", source, "--out", tmp_path / "o"
    )
    assert code == EXIT_BAD_INPUT and "empty.jsonl: the source holds no records" in lines[-1]
    assert not (tmp_path / "o").exists()


def test_a_single_group_is_refused_unless_asked_for(capsys, tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b", "group": "Solo"} for i in range(30)]
    source = write(tmp_path / "one.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    code, lines, _ = run(
        capsys, "data", "prepare", "--format", "pairs", source, "--out", tmp_path / "o"
    )
    assert code == EXIT_BAD_INPUT and "only one group (Solo)" in lines[-1]
    assert "--allow-single-group" in lines[-1] and not (tmp_path / "o").exists()


def test_a_missing_data_file_is_named(capsys, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    code, lines, _ = run(
        capsys, "data", "prepare", "--format", "pairs", missing, "--out", tmp_path / "o"
    )
    assert code == EXIT_BAD_INPUT and "nowhere.jsonl" in lines[-1]


def test_a_data_folder_given_as_a_file_is_named(capsys, tmp_path):
    folder = tmp_path / "a-folder.jsonl"
    folder.mkdir()
    code, lines, _ = run(
        capsys, "data", "prepare", "--format", "pairs", folder, "--out", tmp_path / "o"
    )
    assert code == EXIT_BAD_INPUT and "a-folder.jsonl" in lines[-1]


# Config files and flags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("bad.json", '{"name": "x",', "not valid JSON"),
        ("bad.yaml", "name: [x\n", "not valid YAML"),
        ("list.yaml", "- name: x\n", "must be a mapping"),
        ("type.yaml", "name: x\noptim: {max_steps: many}\n", "optim.max_steps"),
        ("range.yaml", "name: x\noptim: {learning_rate: -1}\n", "optim.learning_rate"),
    ],
)
def test_a_bad_config_file_gets_one_line_naming_file_and_field(capsys, tmp_path, name, text, says):
    path = write(tmp_path / name, text)
    code, lines, _ = run(capsys, "run", "--config", path)
    assert code == EXIT_BAD_INPUT and len(lines) == 1
    assert str(path) in lines[0] and says in lines[0]


def test_an_override_into_a_value_that_is_not_a_section(capsys, tiny):
    code, lines, _ = run(capsys, "run", "--config", tiny, "--set", "name.part=1")
    assert code == EXIT_BAD_INPUT and len(lines) == 1 and "--set name.part" in lines[0]


# Servers ---------------------------------------------------------------------------------------------


def test_an_mlflow_server_that_does_not_answer_fails_at_once(capsys, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", DOWN)
    monkeypatch.chdir(tmp_path)
    code, lines, _ = run(capsys, "run", "--config", tiny)
    assert code == EXIT_FAILED and len(lines) == 1
    assert f"MLflow tracking server {DOWN} does not answer" in lines[0]
    assert not (tmp_path / "outputs" / "runs").exists(), "nothing trained"


@pytest.mark.parametrize(
    ("url", "api", "code_", "says"),
    [
        ("not-a-url", DOWN + "/api", EXIT_BAD_INPUT, "is not an http(s) URL"),
        ("http://127.0.0.1:1/hook", None, EXIT_BAD_INPUT, "PREFECT_API_URL is not set"),
        ("http://127.0.0.1:1/hook", DOWN + "/api", EXIT_FAILED, "did not answer"),
    ],
)
def test_alerts_install_faults(capsys, monkeypatch, url, api, code_, says):
    if api is None:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
    else:
        monkeypatch.setenv("PREFECT_API_URL", api)
    code, lines, _ = run(capsys, "alerts", "install", "--webhook-url", url)
    assert code == code_ and len(lines) == 1 and says in lines[0]


def test_a_report_of_a_run_that_does_not_exist(capsys, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # a store that exists, without that run
    capsys.readouterr()
    code, lines, _ = run(
        capsys, "report", "--run-id", "deadbeef", "--tracking-uri", uri, "--out", tmp_path / "r"
    )
    assert code == EXIT_BAD_INPUT and len(lines) == 1
    assert lines[0].startswith("grpo report: could not read run deadbeef")
    assert not (tmp_path / "r" / "report.html").exists()


# Training and checkpoints ------------------------------------------------------------------------


@pytest.fixture
def trained(capsys, tiny, tmp_path) -> Path:
    """A finished 4-step tiny run with checkpoints at steps 2 and 4."""
    out = tmp_path / "run"
    code, lines, _ = run(capsys, "train", "--config", tiny, "--output", out, "--no-progress")
    assert code == 0, lines
    return out


def checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_a_diverging_run_stops_with_the_step_and_writes_nothing_not_finite(capsys, tiny, tmp_path):
    out = tmp_path / "nan"
    write(tiny, TINY.replace("learning_rate: 1.0e-3", "learning_rate: 1.0e30"))
    code, lines, _ = run(capsys, "train", "--config", tiny, "--output", out, "--no-progress")
    assert code == EXIT_FAILED and "not finite" in lines[-1] and "step" in lines[-1]
    assert not (out / "metrics.json").exists(), "no results from a diverged run"
    for file in out.rglob("*.safetensors"):
        for name, tensor in load_file(file).items():
            assert tensor.float().isfinite().all(), f"{file}:{name} is not finite"


def test_training_into_a_finished_run_says_to_resume(capsys, tiny, trained):
    code, lines, _ = run(capsys, "train", "--config", tiny, "--output", trained)
    assert code == EXIT_BAD_INPUT and "grpo train --resume" in lines[-1]


def test_a_resume_with_other_settings_names_them(capsys, tiny, trained):
    write(tiny, TINY.replace("learning_rate: 1.0e-3", "learning_rate: 2.0e-3"))
    code, lines, _ = run(capsys, "train", "--config", tiny, "--output", trained, "--resume")
    assert code == EXIT_BAD_INPUT and "learning_rate" in lines[-1] and "cannot resume" in lines[-1]


def test_a_damaged_newest_checkpoint_is_skipped_on_resume(capsys, tiny, trained):
    # Given the newest checkpoint with a truncated weights file, and more steps to train
    newest = trained / "checkpoints" / checkpoints(trained)[-1]
    weights = next(newest.rglob("model/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    write(tiny, TINY.replace("max_steps: 4", "max_steps: 6"))
    # When the run resumes
    code, lines, _ = run(
        capsys, "train", "--config", tiny, "--output", trained, "--resume", "--no-progress"
    )
    # Then it names the damaged file, continues from the older one, and finishes
    assert code == 0, lines
    assert any("skipped a damaged checkpoint" in line and str(weights) in line for line in lines)
    assert checkpoints(trained)[-1] == "step-00000006"


def test_evaluating_a_damaged_checkpoint_names_the_file(capsys, trained):
    newest = trained / "checkpoints" / checkpoints(trained)[-1]
    state = newest / "trainer_state.json"
    state.write_text("")
    data = next((trained.parent / "cache").rglob("groups.json")).parent
    code, lines, _ = run(
        capsys, "evaluate", "--checkpoint", newest, "--data", data, "--no-progress"
    )
    assert code == EXIT_BAD_INPUT and str(state) in lines[-1] and "damaged" in lines[-1]


def test_evaluate_checks_its_json_path_before_any_work(capsys, trained, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    code, lines, _ = run(
        capsys, "evaluate", "--checkpoint", trained, "--data", tmp_path, "--json", folder
    )
    assert code == EXIT_BAD_INPUT and "--json" in lines[-1] and str(folder) in lines[-1]


def test_a_run_whose_gradient_dies_is_flagged_collapsed(capsys, tiny, tmp_path):
    # A learning rate of 1e6 kills every unit at the first step: the gradient is exactly 0 after
    dead = TINY.replace("learning_rate: 1.0e-3", "learning_rate: 1.0e6")
    write(tiny, dead.replace("max_steps: 4", "max_steps: 14"))
    code, lines, _ = run(
        capsys, "train", "--config", tiny, "--output", tmp_path / "dead", "--no-progress"
    )
    assert code == 0 and "the run collapsed: for 13 consecutive steps" in lines[-1], lines
    metrics = json.loads((tmp_path / "dead" / "metrics.json").read_text())
    assert metrics["train/grad_norm"] == 0.0
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
