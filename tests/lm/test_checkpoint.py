"""Checkpoints: safetensors + JSON only, atomic, refusing pickles; resume equals an uninterrupted run."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from grpo_core.atomic import atomic_directory
from grpo_core.config import OptimConfig, PlateauConfig
from grpo_core.groups import GroupWeights
from grpo_core.lm.checkpoint import (
    CorruptCheckpointError,
    decode_tree,
    encode_tree,
    latest_checkpoint,
    latest_intact_checkpoint,
    load_model_weights,
    load_trainer_state,
    read_run_info,
    save_checkpoint,
    verify_checkpoint,
)
from grpo_core.lm.config import LoraConfig
from grpo_core.lm.reference_cache import with_reference_logps
from grpo_core.lm.safe_loading import PickleRefusedError
from grpo_core.loop import TrainerState, train
from grpo_core.objective import Objective
from grpo_core.sampling import SamplerPosition
from tests.lm.helpers import opinion_frames, tiny_policy_and_data

FRAMES = opinion_frames({"Northland": 24, "Southland": 8})
OBJECTIVE = Objective("ipo", "robust", beta=0.1, step_size=0.05, halve_step_on_lr_cut=True)
# patience 0 and a flat validation value: the scheduler cuts, so its state matters for the resume.
OPTIM = OptimConfig(
    learning_rate=2e-3,
    batch_size=8,
    max_steps=6,
    plateau=PlateauConfig(enabled=True, patience=0, max_cuts=None),
)


def test_tree_round_trip_keeps_int_keys_tuples_tensors_and_infinity():
    value = {
        "state": {0: {"step": torch.tensor(3.0)}},
        "groups": [{"betas": (0.9, 0.999), "lr": 1e-3}],
        "best": float("inf"),
    }
    tensors: dict[str, torch.Tensor] = {}
    text = json.dumps(encode_tree(value, tensors))
    back = decode_tree(json.loads(text), tensors)
    assert back["state"][0]["step"] is tensors["state.0.step"]
    assert back["groups"][0]["betas"] == (0.9, 0.999) and back["best"] == float("inf")
    with pytest.raises(TypeError, match="without pickling"):
        encode_tree({"x": object()}, {})


def _state(step: int = 3) -> TrainerState:
    return TrainerState(
        step=step, weights=GroupWeights.uniform(2), sampler=SamplerPosition(1, 8), optimizer={"state": {}, "param_groups": []},
        scheduler=None, step_size=0.1, lr_cuts=0, rng_state=torch.get_rng_state(),
    )  # fmt: skip


def test_checkpoint_round_trip_and_keep_only_the_newest(tmp_path):
    policy, _, tokenizer = tiny_policy_and_data(tmp_path, FRAMES)
    for step in (3, 6):
        save_checkpoint(
            tmp_path / "run", _state(step), policy.model, tokenizer, {"step": step}, keep=1
        )
    found = latest_checkpoint(tmp_path / "run")
    assert found is not None and found.name == "step-00000006"
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000006"]
    state = load_trainer_state(found)
    assert state.step == 6 and state.sampler == SamplerPosition(1, 8)
    assert torch.equal(state.rng_state, _state().rng_state)
    suffixes = {p.suffix for p in found.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}, suffixes


@pytest.mark.parametrize(
    "name, payload",
    [
        ("optimizer.pt", None),
        ("model/pytorch_model.bin", None),
        ("extra_state", pickle.dumps({"a": 1}, protocol=4)),
    ],
)
def test_a_checkpoint_with_a_pickled_payload_is_refused(tmp_path, name, payload):
    # given: a valid checkpoint with a planted pickle (torch.save format or raw pickle bytes)
    policy, _, tokenizer = tiny_policy_and_data(tmp_path, FRAMES)
    folder = save_checkpoint(tmp_path / "run", _state(), policy.model, tokenizer, {})
    planted = folder / name
    if payload is None:
        torch.save({"evil": 1}, planted)
    else:
        planted.write_bytes(payload)
    # when / then: neither the state nor the weights load, and the message names the file
    with pytest.raises(PickleRefusedError, match=name.split("/")[-1]):
        load_trainer_state(folder)
    with pytest.raises(PickleRefusedError, match="pickled payload"):
        load_model_weights(policy.model, folder)


def test_a_failed_write_leaves_no_checkpoint(tmp_path):
    with (
        pytest.raises(RuntimeError),
        atomic_directory(tmp_path / "checkpoints" / "step-00000001") as tmp,
    ):
        (tmp / "run.json").write_text("{}")
        raise RuntimeError("killed mid-write")
    assert latest_checkpoint(tmp_path) is None
    assert not list((tmp_path / "checkpoints").iterdir()), "the temporary folder should be removed"


def _evaluate_on(policy, data):
    from grpo_core.evaluation import evaluate_policy

    def evaluate(step: int) -> float:
        # A real evaluation (eval mode, no grad) whose value never improves: every call cuts.
        evaluate_policy(policy, data, beta=0.1, loss_type="ipo", batch_size=16)
        return 1.0

    return evaluate


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "lora", [None, LoraConfig(enabled=True, r=4, alpha=8, dropout=0.1)], ids=["full", "lora"]
)
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run_bit_for_bit(tmp_path, lora):
    # given: an uninterrupted 6-step run
    policy, data, tokenizer = tiny_policy_and_data(tmp_path, FRAMES, lora=lora)
    data = with_reference_logps(policy, data, model_fingerprint="start", batch_size=16)
    full = train(
        policy, data, OBJECTIVE, OPTIM, seed=5, evaluate=_evaluate_on(policy, data), eval_every=1
    )
    expected = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    assert full.state is not None and full.state.lr_cuts > 0, "the test wants the scheduler to act"

    # when: a second run is killed at step 4, after its checkpoint at step 3 ...
    policy, _, tokenizer = tiny_policy_and_data(tmp_path, FRAMES, lora=lora)

    def kill(record):
        if record.step == 4:
            raise Interrupt

    def save(state):
        save_checkpoint(tmp_path / "run", state, policy.model, tokenizer, {})

    with pytest.raises(Interrupt):
        train(policy, data, OBJECTIVE, OPTIM, seed=5, evaluate=_evaluate_on(policy, data), eval_every=1,
              callbacks=[kill], checkpoint=save, checkpoint_every=3)  # fmt: skip
    # ... and a fresh policy continues from that checkpoint
    policy, _, _ = tiny_policy_and_data(tmp_path, FRAMES, lora=lora)
    found = latest_checkpoint(tmp_path / "run")
    assert found is not None and found.name == "step-00000003"
    load_model_weights(policy.model, found)
    resumed = train(policy, data, OBJECTIVE, OPTIM, seed=5, evaluate=_evaluate_on(policy, data), eval_every=1,
                    resume=load_trainer_state(found))  # fmt: skip

    # then: same weights, alpha, learning rate and eta_alpha, bit for bit
    for name, value in policy.model.named_parameters():
        assert torch.equal(value, expected[name]), f"{name} differs after resume"
    assert resumed.state is not None
    assert torch.equal(resumed.state.weights.log_alpha, full.state.weights.log_alpha)
    assert [float(r.loss) for r in resumed.history] == [float(r.loss) for r in full.history[3:]]
    assert (
        resumed.state.lr_cuts == full.state.lr_cuts
        and resumed.state.step_size == full.state.step_size
    )


def _truncate(path):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


@pytest.mark.parametrize(
    "damaged",
    ["model/model.safetensors", "trainer_state.safetensors", "trainer_state.json", "run.json"],
)
def test_a_damaged_file_is_named_and_resume_falls_back_to_the_newest_intact_checkpoint(
    tmp_path, damaged
):
    # Given two checkpoints, the newer one with a truncated file
    policy, _, tokenizer = tiny_policy_and_data(tmp_path, FRAMES)
    for step in (3, 6):
        save_checkpoint(tmp_path / "run", _state(step), policy.model, tokenizer, {"step": step})
    newest = tmp_path / "run" / "checkpoints" / "step-00000006"
    _truncate(newest / damaged)
    # Then checking it names the file, and the newest intact one is the older
    with pytest.raises(CorruptCheckpointError, match=f"{newest / damaged} is damaged"):
        verify_checkpoint(newest)
    found, skipped = latest_intact_checkpoint(tmp_path / "run")
    assert found is not None and found.name == "step-00000003"
    assert len(skipped) == 1 and str(newest / damaged) in skipped[0]


def test_a_damaged_checkpoint_without_a_manifest_still_names_its_file(tmp_path):
    # Given a checkpoint written before manifests, with a truncated state and an empty run.json
    policy, _, tokenizer = tiny_policy_and_data(tmp_path, FRAMES)
    folder = save_checkpoint(tmp_path / "run", _state(), policy.model, tokenizer, {"step": 3})
    (folder / "manifest.json").unlink()
    _truncate(folder / "trainer_state.safetensors")
    (folder / "run.json").write_text("")
    with pytest.raises(CorruptCheckpointError, match="trainer_state.safetensors cannot be read"):
        load_trainer_state(folder)
    with pytest.raises(CorruptCheckpointError, match="run.json cannot be read as JSON"):
        read_run_info(folder)
    _truncate(folder / "model" / "model.safetensors")
    with pytest.raises(CorruptCheckpointError, match="model.safetensors cannot be read"):
        load_model_weights(policy.model, folder)


def test_a_manifest_entry_that_leads_outside_the_checkpoint_is_refused_on_resume(tmp_path):
    from grpo_core.hashing import hash_file
    from grpo_core.lm.checkpoint import MANIFEST, CorruptCheckpointError, verify_checkpoint

    # Given a checkpoint whose manifest names a file beside it, with that file's true checksum
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000002"
    checkpoint.mkdir(parents=True)
    (tmp_path / "run" / "secret.txt").write_text("not the checkpoint's")
    digest = hash_file(tmp_path / "run" / "secret.txt")
    (checkpoint / MANIFEST).write_text(json.dumps({"../../secret.txt": digest}))
    # Then verifying it (what resuming does) refuses the entry, naming it
    with pytest.raises(CorruptCheckpointError, match="leads outside the checkpoint"):
        verify_checkpoint(checkpoint)
