"""Evaluating a run that is still training: it keeps only its newest checkpoints and deletes the
older ones as it goes, so the checkpoint an evaluation chose may vanish under it.

An evaluation copies the checkpoint it chose before using it, reports the step it scored (printed
and in the JSON), and fails in one line when no consistent checkpoint can be had; it never scores
the starting model instead (every group's loss equal, every reward accuracy 0: h = 0 everywhere).

The deterministic cases delete a checkpoint at a chosen moment through a hook; the live case
evaluates a run training in a background process that writes a checkpoint every step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grpo_core.lm.evaluate as evaluate_module
from grpo_cli.main import EXIT_BAD_INPUT, EXIT_FAILED, main
from grpo_core.lm.evaluate import CHECKPOINT_STEP
from tests.lm.helpers import opinion_frames, write_data_dir
from tests.reliability.helpers import run, tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 4-step tiny run with checkpoints at steps 2 and 4, its data in ``<parent>/data``
    and its cache in ``<parent>/cache``."""
    root = tmp_path_factory.mktemp("live")
    write_data_dir(root / "data", opinion_frames({"Northland": 48, "Southland": 16}))
    (root / "tiny.yaml").write_text(tiny_config("live-test", steps=4, checkpoint_every=2))
    code = main(["train", "--config", str(root / "tiny.yaml"), "--data", str(root / "data"),
                 "--output", str(root / "run"), "--cache-dir", str(root / "cache"),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    return root / "run"


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    """A copy of the finished run, for a test to delete checkpoints from."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def evaluate(capsys, target: Path, finished: Path, out: Path):
    return run(capsys, "evaluate", "--checkpoint", target, "--data", finished.parent / "data",
               "--cache-dir", finished.parent / "cache", "--json", out, "--no-progress")  # fmt: skip


def group_losses(metrics: dict) -> list[float]:
    return [
        v for k, v in metrics.items() if k.startswith("eval/test/group/") and k.endswith("/loss")
    ]


def test_a_checkpoint_deleted_after_it_was_chosen_is_still_the_one_scored(
    capsys, finished, run_dir, tmp_path, monkeypatch
):
    # Given a run whose newest checkpoint (step 4) the run deletes once the evaluation has chosen
    # it and read its run.json: just when the starting model is loaded
    newest = run_dir / "checkpoints" / "step-00000004"
    load = evaluate_module.load_causal_lm

    def rotate_then_load(*args, **kwargs):
        shutil.rmtree(newest)
        return load(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "load_causal_lm", rotate_then_load)
    # When the run folder is evaluated
    code, lines, out = evaluate(capsys, run_dir, finished, tmp_path / "eval.json")
    # Then the step-4 weights were scored, the very numbers of the run's own test evaluation,
    # and the step is printed and in the JSON
    assert code == 0, lines
    assert not newest.exists()
    assert f"checkpoint {newest}: step 4" in out
    expected = json.loads((finished / "metrics.json").read_text())
    assert json.loads((tmp_path / "eval.json").read_text()) == {
        CHECKPOINT_STEP: 4,
        **{k: v for k, v in expected.items() if k.startswith("eval/test/")},
    }


def test_a_checkpoint_deleted_before_it_was_copied_gives_way_to_the_newest_one_left(
    capsys, finished, run_dir, tmp_path, monkeypatch
):
    # Given a run that deletes its newest checkpoint just as the evaluation starts copying it
    snapshot = evaluate_module.snapshot_checkpoint
    deleted = []

    def rotate_then_copy(source, into, **kwargs):
        if not deleted:
            deleted.append(Path(source).name)
            shutil.rmtree(source)
        return snapshot(source, into, **kwargs)

    monkeypatch.setattr(evaluate_module, "snapshot_checkpoint", rotate_then_copy)
    # When the run folder is evaluated
    code, lines, out = evaluate(capsys, run_dir, finished, tmp_path / "eval.json")
    # Then the checkpoint left (step 2) is scored and named
    assert code == 0, lines
    assert deleted == ["step-00000004"]
    assert f"checkpoint {run_dir / 'checkpoints' / 'step-00000002'}: step 2" in out
    scored = json.loads((tmp_path / "eval.json").read_text())
    assert scored[CHECKPOINT_STEP] == 2
    assert len(set(group_losses(scored))) == 2, f"the starting model's numbers: {scored}"


def test_a_named_checkpoint_deleted_while_copied_fails_in_one_line(
    capsys, finished, run_dir, tmp_path, monkeypatch
):
    # Given a checkpoint named directly, which the run deletes as it is copied
    chosen = run_dir / "checkpoints" / "step-00000002"
    snapshot = evaluate_module.snapshot_checkpoint

    def rotate_then_copy(source, into, **kwargs):
        shutil.rmtree(source)
        return snapshot(source, into, **kwargs)

    monkeypatch.setattr(evaluate_module, "snapshot_checkpoint", rotate_then_copy)
    # When it is evaluated
    code, lines, out = evaluate(capsys, chosen, finished, tmp_path / "eval.json")
    # Then one line says it was deleted while read (exit 1), and nothing was scored or written
    assert code == EXIT_FAILED and len(lines) == 1, lines
    assert lines[0].startswith(f"grpo evaluate: {chosen} was deleted while it was read")
    assert out == "" and not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("manifest", [True, False], ids=["with-manifest", "without-manifest"])
def test_a_checkpoint_without_its_weights_is_an_error_not_the_reference(
    capsys, finished, run_dir, tmp_path, manifest
):
    # Given a checkpoint whose weights file is gone (its manifest kept, or none at all)
    chosen = run_dir / "checkpoints" / "step-00000004"
    (weights,) = (chosen / "model").glob("*.safetensors")
    weights.unlink()
    if not manifest:
        (chosen / "manifest.json").unlink()
    # When it is evaluated
    code, lines, out = evaluate(capsys, chosen, finished, tmp_path / "eval.json")
    # Then one line names what is missing (exit 2); nothing was scored
    assert code == EXIT_BAD_INPUT and len(lines) == 1, lines
    says = (
        f"{weights} is missing from the checkpoint"
        if manifest
        else f"{chosen / 'model'} holds no model weights"
    )
    assert says in lines[0] and out == ""


def test_evaluating_a_run_while_it_trains_scores_a_named_step_or_fails_in_one_line(
    capsys, finished, tmp_path
):
    # Given a run training in the background, writing a checkpoint every step and keeping the
    # newest two (it is stopped once the evaluations are done)
    config = tmp_path / "live.yaml"
    config.write_text(tiny_config("live-test", steps=100_000, checkpoint_every=1))
    output = tmp_path / "live"
    log = (tmp_path / "train.log").open("w")
    trainer = subprocess.Popen(
        [sys.executable, "-m", "grpo_cli.main", "train", "--config", str(config),
         "--data", str(finished.parent / "data"), "--output", str(output),
         "--cache-dir", str(finished.parent / "cache"), "--no-progress"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    results = []
    try:
        deadline = time.monotonic() + 120
        while not len(list(output.glob("checkpoints/step-*"))) >= 2:
            assert trainer.poll() is None, (tmp_path / "train.log").read_text()
            assert time.monotonic() < deadline, "the run wrote no checkpoints in 2 minutes"
            time.sleep(0.2)
        # When it is evaluated again and again while it trains
        for i in range(4):
            out = tmp_path / f"eval-{i}.json"
            code, lines, printed = evaluate(capsys, output, finished, out)
            results.append(
                (code, lines, printed, json.loads(out.read_text()) if code == 0 else None)
            )
            assert trainer.poll() is None, "the run stopped before the evaluations were done"
    finally:
        trainer.terminate()
        trainer.wait(timeout=60)
        log.close()
    # Then every evaluation scored a trained checkpoint and named its step, or said in one line
    # that the run kept deleting them; and the checkpoint scored was often gone by the end
    gone = 0
    for code, lines, printed, scored in results:
        if code != 0:
            assert code == EXIT_FAILED and len(lines) == 1, lines
            assert "were deleted" in lines[0] or "was deleted" in lines[0], lines
            continue
        step = scored[CHECKPOINT_STEP]
        named = output / "checkpoints" / f"step-{step:08d}"
        assert f"checkpoint {named}: step {step}" in printed and step >= 1
        losses = group_losses(scored)
        assert len(losses) == 2 and len(set(losses)) == 2, f"the starting model's numbers: {scored}"
        gone += not named.exists()
    assert any(code == 0 for code, *_ in results), results
    assert gone >= 1, "no evaluation outlived its checkpoint: the run was not rotating them"
