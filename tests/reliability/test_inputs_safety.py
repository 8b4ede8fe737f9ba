"""Names, inputs and the meaning of data are checked before any work: a name that would leave the
output folder or that MLflow refuses, an output that is also an input, a prepared folder whose files
disagree with its groups.json, group labels that collide or hold control characters, a metrics file
with one bad line, a cache folder that cannot be written. Each ends in one line, exit 2, and
nothing written or sent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from grpo_cli.main import EXIT_BAD_INPUT, main
from tasks.run_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny_opinions.yaml"


def one_line(capsys, *argv) -> str:
    """The one line a command that refuses its input prints (exit 2, no traceback)."""
    code = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT and len(lines) == 1, (code, lines)
    return lines[0]


def config_named(tmp_path: Path, name: str) -> Path:
    text = EXAMPLE.read_text()
    assert "\nname: grpo-demo\n" in text, "the example config is named grpo-demo"
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("\nname: grpo-demo\n", f"\nname: {name!r}\n"))
    return path


# Names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../../x", "exp:v2", "a/b", ".hidden", "", "x" * 101, "tab\there"]
)
def test_a_name_that_is_no_folder_or_model_name_is_refused_by_the_config(name):
    with pytest.raises(ValidationError) as refused:
        RunConfig(name=name)
    assert "letters, digits, '_', '.' and '-'" in str(refused.value) or not name


@pytest.mark.parametrize("name", ["grpo-demo", "smollm2_goqa.v2", "A1", "x" * 100])
def test_folder_and_model_names_are_accepted(name):
    assert RunConfig(name=name).name == name


def test_train_refuses_a_name_that_leaves_the_output_folder_before_any_work(
    capsys, tmp_path, monkeypatch
):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    config = config_named(tmp_path, "../../x")
    # --data is wrong too, but checked later: the name is refused first
    line = one_line(capsys, "train", "--config", config, "--method", "ipo", "--data", "none")
    assert line == (
        f"grpo train: bad config {config}: name: '../../x': use letters, digits, '_', '.' and "
        "'-', starting with a letter or digit, at most 100 characters (it names the run folders "
        "and the MLflow registered model)"
    )
    assert not (tmp_path / "x").exists() and list(work.iterdir()) == []


def test_run_refuses_a_registered_model_name_mlflow_refuses_before_any_work(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = ["--set", "name=exp:v2", "--set", "data.format=pairs", "--set", "data.path=none.jsonl"]
    line = one_line(capsys, "run", "--config", EXAMPLE, *argv)
    assert line.startswith("grpo run: ") and "name: 'exp:v2': use letters, digits" in line
    assert sorted(os.listdir(tmp_path)) == []


# Kept metrics ------------------------------------------------------------------------------------

GOOD = '{"key": "train/loss", "value": 0.5, "timestamp": 1, "step": 0}\n'


@pytest.mark.parametrize(
    ("bad_line", "says"),
    [
        (
            '{"key": "train/loss", "value": NaN, "timestamp": 2, "step": 1}',
            "line 2: value of 'train/loss' is nan, not a finite number",
        ),
        (
            '{"key": "train/loss", "value": Infinity, "timestamp": 2, "step": 1}',
            "line 2: value of 'train/loss' is inf, not a finite number",
        ),
        (
            '{"key": "train/loss!", "value": 0.4, "timestamp": 2, "step": 1}',
            "line 2: metric key 'train/loss!' is not one MLflow takes",
        ),
        (
            '{"key": "train/../loss", "value": 0.4, "timestamp": 2, "step": 1}',
            "line 2: metric key 'train/../loss' is not one MLflow takes",
        ),
    ],
)
def test_send_metrics_checks_the_whole_file_and_sends_nothing_when_a_line_is_bad(
    capsys, tmp_path, bad_line, says
):
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    run = client.create_run(client.create_experiment("x")).info.run_id
    kept = tmp_path / "unlogged-metrics.jsonl"
    kept.write_text(GOOD + bad_line + "\n" + GOOD.replace('"step": 0', '"step": 2'))
    before = kept.read_text()
    capsys.readouterr()  # MLflow's lines creating the store
    line = one_line(capsys, "send-metrics", kept, "--run-id", run, "--tracking-uri", store)
    assert line.startswith(f"grpo send-metrics: {kept}, {says}"), line
    assert line.endswith("nothing sent, the file is kept (fix or delete that line and send again)")
    assert client.get_run(run).data.metrics == {}, "nothing of the file was sent"
    assert kept.read_text() == before


# Outputs that are inputs -------------------------------------------------------------------------


def pairs_file(path: Path, groups=("north", "south"), per_group: int = 10) -> Path:
    rows = [
        json.dumps(
            {"group": g, "prompt": f"q{i} of {g}?", "chosen": f"yes {i}", "rejected": f"no {i}"}
        )
        for g in groups
        for i in range(per_group)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_data_prepare_refuses_a_json_summary_that_is_its_source(capsys, tmp_path):
    source = pairs_file(tmp_path / "prefs.jsonl")
    before = source.read_bytes()
    line = one_line(
        capsys, "data", "prepare", source, "--format", "pairs", "--out", tmp_path / "out",
        "--json", source,
    )  # fmt: skip
    assert line == (
        f"grpo data prepare: error: --json {source}: is the input SOURCE {source}, which writing "
        "it would replace; give --json another path"
    )
    assert source.read_bytes() == before and not (tmp_path / "out").exists()


def test_data_prepare_refuses_the_same_file_by_another_name(capsys, tmp_path):
    source = pairs_file(tmp_path / "prefs.jsonl")
    (tmp_path / "link").mkdir()
    os.link(source, tmp_path / "link" / "summary.json")
    before = source.read_bytes()
    line = one_line(
        capsys, "data", "prepare", source, "--format", "pairs", "--out", tmp_path / "out",
        "--json", tmp_path / "link" / "summary.json",
    )  # fmt: skip
    assert "is the input SOURCE" in line and source.read_bytes() == before


def test_data_prepare_refuses_an_out_folder_that_holds_its_source(capsys, tmp_path):
    source = pairs_file(tmp_path / "prefs.jsonl")
    assert (
        main(["data", "prepare", str(source), "--format", "pairs", "--out", str(tmp_path / "p")])
        == 0
    )
    train = tmp_path / "p" / "train.parquet"
    before = train.read_bytes()
    capsys.readouterr()
    line = one_line(capsys, "data", "prepare", train, "--format", "pairs", "--out", tmp_path / "p")
    assert line == (
        f"grpo data prepare: error: --out {tmp_path / 'p'}: holds the input SOURCE {train}, "
        "which writing it would replace; give --out another path"
    )
    assert train.read_bytes() == before


def test_evaluate_refuses_a_json_inside_its_data_folder(capsys, tmp_path):
    source = pairs_file(tmp_path / "prefs.jsonl")
    assert (
        main(["data", "prepare", str(source), "--format", "pairs", "--out", str(tmp_path / "p")])
        == 0
    )
    groups = tmp_path / "p" / "groups.json"
    before = groups.read_bytes()
    capsys.readouterr()
    line = one_line(
        capsys, "evaluate", "--checkpoint", tmp_path / "none", "--data", tmp_path / "p",
        "--json", groups,
    )  # fmt: skip
    assert line == (
        f"grpo evaluate: --json {groups}: is inside the input --data {tmp_path / 'p'}, which "
        "writing it would replace; give --json another path"
    )
    assert groups.read_bytes() == before


# A cache that cannot be written ------------------------------------------------------------------


def read_only_run(folder: Path, argv: list[str], env: dict[str, str] | None = None):
    """``grpo ARGV`` with ``folder`` mounted read-only (a user and mount namespace of its own, so
    that it holds even for root, who may write where the permissions say not)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode().strip()}")
    grpo = [sys.executable, "-c", "import sys; from grpo_cli.main import main; sys.exit(main())"]
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, str(folder), *grpo, *argv],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_a_cache_folder_read_only_in_part_is_named_with_its_flag(tmp_path):
    cache = tmp_path / "cache"
    (cache / "data").mkdir(parents=True)
    argv = ["train", "--config", str(EXAMPLE), "--method", "ipo", "--cache-dir", str(cache)]
    done = read_only_run(cache / "data", [*argv, "--output", str(tmp_path / "run")])
    assert (done.returncode, done.stderr.strip()) == (
        EXIT_BAD_INPUT,
        f"grpo train: --cache-dir {cache}: {cache / 'data'} is not writable (the cache stores "
        "prepared data, models and reference log-probs there); make it writable or give "
        "--cache-dir a folder you can write",
    )
    assert not (tmp_path / "run").exists()


def test_a_default_cache_folder_that_is_read_only_names_the_flag(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    argv = ["train", "--config", str(EXAMPLE), "--method", "ipo", "--output", str(tmp_path / "r")]
    done = read_only_run(cache, argv, env={"GRPO_CACHE_DIR": str(cache)})
    assert (done.returncode, done.stderr.strip()) == (
        EXIT_BAD_INPUT,
        "grpo train: --cache-dir (not given: $GRPO_CACHE_DIR or ~/.cache/grpo-pipeline) "
        f"{cache}: {cache} is not writable (the cache stores prepared data, models and reference "
        "log-probs there); make it writable or give --cache-dir a folder you can write",
    )
