"""Nothing in a checkpoint runs code or picks what gets loaded, and a checkpoint that cannot be
written ends in one line.

A checkpoint is made by whoever trained it, manifest included: its ``run.json`` may ask for
``trust_remote_code`` and name any starting model, and its manifest may name any file. Only the
person evaluating grants the first (``--trust-remote-code``) or names a model outside the
checkpoint and the cache folder (``--start-model``). The crafted cases below build such a
checkpoint from a real tiny run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_cli.main import EXIT_BAD_INPUT, EXIT_FAILED, main
from grpo_core.hashing import hash_file, hash_folder
from grpo_core.lm.checkpoint import MANIFEST, RUN_JSON, write_manifest
from grpo_core.lm.safe_loading import UntrustedCheckpointError
from grpo_core.lm.serving import export_pretrained, load_served_policy
from grpo_core.lm.start_model import has_fingerprint, model_fingerprint
from tasks.worker import EvaluateRequest, run_stage
from tests.reliability.helpers import run, tiny_config

TINY = tiny_config("trust-test", steps=2)

CONFIGURATION_PY = """
from pathlib import Path

Path({marker!r}).write_text("the checkpoint's code ran")

from transformers import LlamaConfig


class XConfig(LlamaConfig):
    model_type = "llama"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-step tiny run (its cache in ``<parent>/cache``) with one checkpoint."""
    root = tmp_path_factory.mktemp("trust")
    (root / "tiny.yaml").write_text(TINY)
    code = main(["train", "--config", str(root / "tiny.yaml"), "--output", str(root / "run"),
                 "--cache-dir", str(root / "cache"), "--no-progress"])  # fmt: skip
    assert code == 0
    return root / "run"


@pytest.fixture
def cache(trained) -> Path:
    return trained.parent / "cache"


@pytest.fixture
def data(cache) -> Path:
    return next(cache.rglob("groups.json")).parent


@pytest.fixture
def crafted(trained, tmp_path) -> Path:
    """A copy of the run's checkpoint, for a test to alter and seal again."""
    (checkpoint,) = (trained / "checkpoints").iterdir()
    return Path(shutil.copytree(checkpoint, tmp_path / "crafted"))


def tiny_model(cache: Path) -> Path:
    """The run's starting model (the only model the cache built)."""
    (model,) = (cache / "models").glob("tiny-*")
    return model


def model_with_code(cache: Path, target: Path, marker: Path) -> Path:
    """The run's tiny model with a ``configuration_x.py`` that writes ``marker`` when imported, and
    a config.json whose ``auto_map`` points transformers at it."""
    shutil.copytree(tiny_model(cache), target)
    config = json.loads((target / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig"}
    (target / "config.json").write_text(json.dumps(config))
    (target / "configuration_x.py").write_text(CONFIGURATION_PY.format(marker=str(marker)))
    return target


def rewrite_run_json(checkpoint: Path, start_model: Path | str, *, trust: bool) -> None:
    """What a crafter does: point run.json at ``start_model`` with its fingerprint, ask for
    ``trust_remote_code``, and seal the checkpoint again."""
    info = json.loads((checkpoint / RUN_JSON).read_text())
    info["recipe"]["model"]["trust_remote_code"] = trust
    info["start_model"] = str(start_model)
    info["start_model_fingerprint"] = model_fingerprint(start_model)
    (checkpoint / RUN_JSON).write_text(json.dumps(info))
    (checkpoint / MANIFEST).unlink()
    write_manifest(checkpoint)


def evaluate(capsys, checkpoint: Path, data: Path, cache: Path, *extra):
    return run(capsys, "evaluate", "--checkpoint", checkpoint, "--data", data,
               "--cache-dir", cache, "--no-progress", *extra)  # fmt: skip


# Code in the starting model's folder ---------------------------------------------------------------


def test_a_checkpoint_asking_for_remote_code_is_refused_and_nothing_runs(
    capsys, crafted, cache, data, tmp_path
):
    # Given a checkpoint whose run.json asks for trust_remote_code, over a starting model in the
    # cache folder whose config.json maps AutoConfig to a configuration_x.py that writes a marker
    marker = tmp_path / "MARKER"
    evil = model_with_code(cache, cache / "crafted" / "with-code", marker)
    rewrite_run_json(crafted, evil, trust=True)
    # When it is evaluated without --trust-remote-code
    code, lines, out = evaluate(capsys, crafted, data, cache)
    # Then one line refuses it and names the flag, and the file never ran
    assert not marker.exists(), "configuration_x.py ran: the checkpoint turned on remote code"
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    assert lines[0].startswith(f"grpo evaluate: {crafted}: its run.json asks to run")
    assert "--trust-remote-code" in lines[0] and out == ""


def test_without_the_flag_transformers_runs_no_folder_code_even_unasked(
    capsys, crafted, cache, data, tmp_path
):
    # Given the same model folder with code, and a run.json that does not ask for remote code
    marker = tmp_path / "MARKER"
    evil = model_with_code(cache, cache / "crafted" / "quiet-with-code", marker)
    rewrite_run_json(crafted, evil, trust=False)
    # When it is evaluated: transformers is told trust_remote_code=False and uses its own class
    code, lines, out = evaluate(capsys, crafted, data, cache)
    # Then the evaluation runs (the weights are the tiny Llama's) and the file never ran
    assert not marker.exists(), "configuration_x.py ran without --trust-remote-code"
    assert code == 0, lines
    assert f"checkpoint {crafted}: step 2" in out


def test_serving_and_export_refuse_a_run_json_asking_for_remote_code(cache, crafted, tmp_path):
    # Given the crafted checkpoint over a starting model with code, asking for trust_remote_code
    marker = tmp_path / "MARKER"
    evil = model_with_code(cache, tmp_path / "with-code", marker)
    rewrite_run_json(crafted, evil, trust=True)
    # When the served policy (the MLflow model's loader) or an export is built without the grant
    with pytest.raises(UntrustedCheckpointError, match="--trust-remote-code"):
        load_served_policy(crafted, evil)
    with pytest.raises(UntrustedCheckpointError, match="trust_remote_code"):
        export_pretrained(crafted, evil, tmp_path / "export", merge=False)
    # Then the folder's code never ran and nothing was exported
    assert not marker.exists(), "configuration_x.py ran: the checkpoint turned on remote code"
    assert not (tmp_path / "export").exists()


def test_the_fingerprint_covers_every_file_of_the_model_folder(cache, tmp_path):
    # Given a copy of a model folder
    folder = Path(shutil.copytree(tiny_model(cache), tmp_path / "model"))
    before = model_fingerprint(folder)
    # When a Python file, then a hidden file and a chat template, are added
    (folder / "configuration_x.py").write_text("x = 1\n")
    with_code = model_fingerprint(folder)
    (folder / ".hidden").write_text("y")
    with_hidden = model_fingerprint(folder)
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    # Then each one changes the fingerprint
    assert len({before, with_code, with_hidden, model_fingerprint(folder)}) == 4
    # And the same files give the same fingerprint
    assert model_fingerprint(shutil.copytree(folder, tmp_path / "again")) == model_fingerprint(
        folder
    )


def test_code_added_to_the_starting_model_after_the_run_is_refused(
    capsys, crafted, cache, data, tmp_path
):
    # Given a checkpoint over a starting model in the cache, as the run recorded it
    start = Path(shutil.copytree(tiny_model(cache), cache / "crafted" / "later-code"))
    rewrite_run_json(crafted, start, trust=False)
    # When a Python file alone (its config.json untouched) is dropped into that folder afterwards
    (start / "configuration_x.py").write_text("x = 1\n")
    code, lines, out = evaluate(capsys, crafted, data, cache)
    # Then the folder no longer matches the run's fingerprint: one line, exit 2
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    assert f"the starting model at {start} changed since the run" in lines[0] and out == ""


def test_a_fingerprint_taken_before_it_covered_every_file_matches_until_code_is_added(
    cache, tmp_path
):
    # Given a model folder with a chat template, fingerprinted as runs did before: weights and
    # configs only
    folder = Path(shutil.copytree(tiny_model(cache), tmp_path / "model"))
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    earlier = hash_folder(folder, (".safetensors", ".json"))
    # Then that fingerprint still names the folder, until Python code is added to it
    assert model_fingerprint(folder) != earlier and has_fingerprint(folder, earlier)
    (folder / "configuration_x.py").write_text("x = 1\n")
    assert not has_fingerprint(folder, earlier)
    assert has_fingerprint(folder, model_fingerprint(folder))


# Paths a checkpoint names ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["elsewhere", "dot-dot"])
def test_a_starting_model_outside_the_checkpoint_and_cache_is_refused(
    capsys, crafted, cache, data, tmp_path, where
):
    # Given a checkpoint whose starting model is an intact copy of the run's, outside the cache
    # (named directly, or through the cache folder and "..")
    outside = Path(shutil.copytree(tiny_model(cache), tmp_path / "outside-model"))
    named = outside if where == "elsewhere" else cache / ".." / ".." / tmp_path.name / outside.name
    rewrite_run_json(crafted, named, trust=False)
    # When it is evaluated
    code, lines, out = evaluate(capsys, crafted, data, cache)
    # Then one line refuses the path and says how to name the model yourself
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    assert (
        f"its starting model {named} lies outside the checkpoint and the cache folder" in lines[0]
    )
    assert "--start-model" in lines[0] and out == ""
    # And naming it yourself evaluates the checkpoint, step reported
    code, lines, out = evaluate(capsys, crafted, data, cache, "--start-model", outside)
    assert code == 0, lines
    assert f"checkpoint {crafted}: step 2" in out


def test_the_pipeline_worker_takes_the_starting_model_and_trust_from_its_request(
    crafted, cache, data, tmp_path
):
    # Given a checkpoint over a starting model outside the cache that asks for remote code
    outside = Path(shutil.copytree(tiny_model(cache), tmp_path / "outside-model"))
    rewrite_run_json(crafted, outside, trust=True)
    request = dict(checkpoint=str(crafted), data_dir=str(data), device="cpu", cache_dir=str(cache))
    # When the pipeline's worker evaluates it without the run config's word, it is refused
    with pytest.raises(UntrustedCheckpointError, match="trust_remote_code"):
        run_stage(EvaluateRequest(**request))
    with pytest.raises(UntrustedCheckpointError, match="lies outside the checkpoint"):
        run_stage(EvaluateRequest(**request, trust_remote_code=True))
    # Then with the run config's trust_remote_code and starting model it is evaluated
    result = run_stage(EvaluateRequest(**request, trust_remote_code=True, start_model=str(outside)))
    assert "eval/test/worst_group/loss" in result["metrics"]


def test_a_manifest_naming_a_file_outside_the_checkpoint_is_refused(
    capsys, crafted, cache, data, tmp_path
):
    # Given a manifest that names a file two folders up (with its true checksum)
    secret = tmp_path / "secret.txt"
    secret.write_text("not the checkpoint's")
    manifest = json.loads((crafted / MANIFEST).read_text())
    manifest["../secret.txt"] = hash_file(secret)
    (crafted / MANIFEST).write_text(json.dumps(manifest))
    # When it is evaluated
    code, lines, _ = evaluate(capsys, crafted, data, cache)
    # Then one line names the entry
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    assert "names '../secret.txt', which leads outside the checkpoint" in lines[0]


# A checkpoint that cannot be written -----------------------------------------------------------------


def _train_limited(trained: Path, output: Path, limit: int | None) -> subprocess.CompletedProcess:
    """``grpo train`` of the tiny config into ``output`` in a subprocess whose files may grow to
    ``limit`` bytes (RLIMIT_FSIZE: a larger write fails with EFBIG, "File too large")."""

    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    root = trained.parent
    return subprocess.run(
        [sys.executable, "-m", "grpo_cli.main", "train", "--config", str(root / "tiny.yaml"),
         "--output", str(output), "--cache-dir", str(root / "cache"), "--no-progress"],
        capture_output=True, text=True, preexec_fn=cap, timeout=300,
        env={**os.environ, "GRPO_DEBUG": ""},
    )  # fmt: skip


def _assert_one_line_and_nothing_half_written(result, output: Path, reason: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == EXIT_FAILED, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    target = output / "checkpoints" / "step-00000002"
    assert lines[0].startswith(f"grpo train: cannot write checkpoint {target} ("), lines
    assert reason in lines[0] and "free space" in lines[0] and "--output" in lines[0]
    left = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert left == [], f"a half-written checkpoint stayed behind: {left}"


def test_a_file_size_limit_during_a_checkpoint_ends_in_one_line(trained, tmp_path):
    # Given a process whose files may not grow past 200 kB (the weights file is ~590 kB)
    output = tmp_path / "limited"
    # When it trains up to its checkpoint
    result = _train_limited(trained, output, 200_000)
    # Then one line names the checkpoint folder and what to do, exit 1, and nothing is left of it
    _assert_one_line_and_nothing_half_written(result, output, "File too large")


def test_no_room_to_copy_a_checkpoint_for_evaluation_ends_in_one_line(trained, data, tmp_path):
    # Given a process whose files may not grow past 200 kB (the weights file is ~590 kB)
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    # When it evaluates the run
    result = subprocess.run(
        [sys.executable, "-m", "grpo_cli.main", "evaluate", "--checkpoint", str(trained),
         "--data", str(data), "--cache-dir", str(trained.parent / "cache"), "--no-progress"],
        capture_output=True, text=True, preexec_fn=cap, timeout=300,
        env={**os.environ, "GRPO_DEBUG": "", "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    # Then one line says where the copy had no room and what to do, exit 1, and no copy is left
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == EXIT_FAILED and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"grpo evaluate: no room to copy the checkpoint of {trained} into")
    assert "File too large" in lines[0] and "TMPDIR" in lines[0]
    assert list(tmp_path.iterdir()) == [], "the temporary copy stayed behind"


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 200 kB tmpfs (mounting needs root: skipped where it is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_during_a_checkpoint_ends_in_one_line(trained, small_disk):
    # Given an output folder on a disk of 200 kB
    output = small_disk / "run"
    # When a run checkpoints there
    result = _train_limited(trained, output, None)
    # Then one line names the checkpoint folder and what to do, exit 1, and nothing is left of it
    _assert_one_line_and_nothing_half_written(result, output, "No space left on device")
