"""Resumable checkpoints: safetensors for every tensor, JSON for everything else, never a pickle.

Layout of ``<output>/checkpoints/step-<8 digits>/`` (written to a temporary folder, then renamed):

- ``model/``: ``save_pretrained`` of the full model (safetensors, config) or of the LoRA adapters,
  plus the tokenizer;
- ``trainer_state.json`` + ``trainer_state.safetensors``: the loop's :class:`TrainerState`
  (optimizer and scheduler ``state_dict``, log alpha, torch RNG state, step, sampler position,
  learning-rate cuts, eta_alpha), tensors replaced in the JSON by references into the safetensors;
- ``run.json``: what the run needs to rebuild the policy and its metrics (config, method, seed,
  starting model and its fingerprint, last step's metrics);
- ``manifest.json``, written last: the SHA-256 of every other file. A damaged checkpoint is named
  with the file at fault (:class:`CorruptCheckpointError`), and resuming falls back to the newest
  intact one (:func:`latest_intact_checkpoint`).

Loading first refuses any file that would unpickle (:func:`grpo_core.lm.safe_loading.refuse_pickles`).
A reader of a run that is still training first takes its own copy (:func:`snapshot_checkpoint`):
the run deletes all but its newest checkpoints as it goes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from grpo_core.atomic import atomic_directory
from grpo_core.groups import GroupWeights
from grpo_core.hashing import copy_and_hash, hash_file
from grpo_core.lm.safe_loading import refuse_pickles
from grpo_core.loop import TrainerState
from grpo_core.sampling import SamplerPosition

CHECKPOINTS = "checkpoints"
MODEL = "model"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
RUN_JSON = "run.json"
MANIFEST = "manifest.json"


class CorruptCheckpointError(ValueError):
    """A checkpoint file is missing, truncated or altered; the message names it."""


class CheckpointGoneError(FileNotFoundError):
    """A checkpoint was deleted (or replaced) while it was being read: a run still training keeps
    only its newest checkpoints."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a file-size limit, ...); nothing of it was
    kept. The message names the folder and what to do."""


NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
"""Write errors that more room would cure: no space left, file too large, disk quota exceeded."""


def encode_tree(value: Any, tensors: dict[str, Tensor], path: str = "") -> Any:
    """JSON-able copy of nested dicts, lists, tuples and scalars; tensors go to ``tensors``.

    Dicts become ``{"__dict__": [[key, value], ...]}`` (int keys survive), tuples ``{"__tuple__":
    [...]}`` and tensors ``{"__tensor__": name}``.
    """
    if isinstance(value, Tensor):
        name = path or "value"
        tensors[name] = value.detach().to("cpu").contiguous()
        return {"__tensor__": name}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise TypeError(
                    f"cannot store dict key {key!r} of type {type(key).__name__} at {path!r}"
                )
            items.append([key, encode_tree(item, tensors, f"{path}.{key}" if path else str(key))])
        return {"__dict__": items}
    if isinstance(value, list | tuple):
        items = [encode_tree(item, tensors, f"{path}.{i}") for i, item in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path!r} without pickling")


def decode_tree(value: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`encode_tree`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(decode_tree(item, tensors) for item in value["__tuple__"])
        return {key: decode_tree(item, tensors) for key, item in value["__dict__"]}
    if isinstance(value, list):
        return [decode_tree(item, tensors) for item in value]
    return value


def state_to_tree(state: TrainerState) -> dict[str, Any]:
    """The :class:`TrainerState` as plain nested data (tensors kept as tensors), field by field."""
    tree = {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
    tree["weights"] = {"log_alpha": state.weights.log_alpha}
    tree["sampler"] = {"epoch": state.sampler.epoch, "offset": state.sampler.offset}
    return tree


def tree_to_state(tree: dict[str, Any]) -> TrainerState:
    """Inverse of :func:`state_to_tree`."""
    values = dict(tree)
    if "group_step_size" in values:  # checkpoints written before eta_alpha had one name
        values["step_size"] = values.pop("group_step_size")
    values["weights"] = GroupWeights(values["weights"]["log_alpha"])
    values["sampler"] = SamplerPosition(**values["sampler"])
    return TrainerState(**values)


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints under ``output_dir``, oldest first (temporary folders are ignored)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("step-") and (p / RUN_JSON).exists()
    )


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(
    output_dir: str | Path,
    state: TrainerState,
    model,
    tokenizer,
    info: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/step-<step>`` atomically, then delete all but the ``keep`` newest.

    Args:
        state: the loop's state at this step.
        model: the transformers (or peft) model; peft models save only their adapters.
        tokenizer: saved next to the weights.
        info: JSON-able run information, stored as ``run.json``.
    """
    target = Path(output_dir) / CHECKPOINTS / checkpoint_name(state.step)
    tensors: dict[str, Tensor] = {}
    tree = encode_tree(state_to_tree(state), tensors)
    try:
        # the temporary folder is removed on any error: no half-written checkpoint stays behind
        with atomic_directory(target, replace=True) as tmp:
            model.save_pretrained(tmp / MODEL, safe_serialization=True)
            tokenizer.save_pretrained(tmp / MODEL)
            save_file(tensors, str(tmp / STATE_TENSORS))
            (tmp / STATE_JSON).write_text(json.dumps(tree))
            (tmp / RUN_JSON).write_text(json.dumps(info, indent=2, sort_keys=True))
            write_manifest(tmp)
    except (OSError, SafetensorError) as error:
        raise CheckpointWriteError(write_failure(target, error)) from error
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def write_failure(target: Path, error: BaseException) -> str:
    """One line for a checkpoint write that failed: the folder, the reason, what to do."""
    if isinstance(error, OSError):
        reason, code = error.strerror or str(error), error.errno
    else:  # safetensors reports the OS error inside its message: "... (os error 28)"
        reason, code = str(error).splitlines()[0] if str(error) else type(error).__name__, None
        for candidate in NO_SPACE:
            if f"os error {candidate})" in str(error):
                code = candidate
    if code in NO_SPACE:
        advice = (
            "free space on that disk (or raise the file-size limit), or train into another "
            "output folder (grpo train --output); a resume continues from the newest checkpoint "
            "written (grpo train --resume)"
        )
    else:
        advice = "check that the folder is writable, or train into another output folder"
    return f"cannot write checkpoint {target} ({reason}); nothing of it was kept: {advice}"


def write_manifest(folder: str | Path) -> None:
    """Write ``manifest.json``: the SHA-256 of every other file of the checkpoint ``folder``
    (also how a checkpoint edited on purpose is sealed again)."""
    folder = Path(folder)
    checksums = {
        str(path.relative_to(folder)): hash_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps(checksums, indent=2, sort_keys=True))


def verify_checkpoint(checkpoint_dir: str | Path) -> None:
    """Raise :class:`CorruptCheckpointError` naming the first file that is missing, whose SHA-256
    differs from ``manifest.json``, or that leads outside the checkpoint, as
    :func:`snapshot_checkpoint` does (checkpoints written before manifests pass)."""
    checkpoint_dir = Path(checkpoint_dir)
    manifest = checkpoint_dir / MANIFEST
    if not manifest.exists():
        return
    expected = _read_json(manifest)
    root = checkpoint_dir.resolve()
    for name, digest in expected.items():
        path = checkpoint_dir / name
        if not _inside(path, root) or path.is_symlink():
            raise CorruptCheckpointError(
                f"{checkpoint_dir}: {MANIFEST} names {name!r}, which leads outside the checkpoint"
            )
        if not path.is_file():
            raise CorruptCheckpointError(f"{path} is missing from the checkpoint")
        if hash_file(path) != digest:
            raise CorruptCheckpointError(
                f"{path} is damaged (its checksum differs from {MANIFEST})"
            )


def latest_intact_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that verifies, and one line for each newer one skipped as damaged."""
    skipped = []
    for checkpoint in reversed(list_checkpoints(output_dir)):
        try:
            verify_checkpoint(checkpoint)
            _read_json(checkpoint / RUN_JSON)
        except CorruptCheckpointError as error:
            skipped.append(str(error))
            continue
        return checkpoint, skipped
    return None, skipped


def snapshot_checkpoint(
    checkpoint_dir: str | Path, into: str | Path, *, check_only: Collection[str] = ()
) -> None:
    """Copy the checkpoint ``checkpoint_dir`` into the empty folder ``into``, checking each file
    against ``manifest.json`` as it is copied (one read per file): the copy is one consistent
    checkpoint, and stays so when the run that wrote it deletes or replaces the original.

    Only the files the manifest names are copied (all files of a checkpoint written before
    manifests); names that lead outside the checkpoint, symbolic links included, are refused, and
    so is a folder that holds a pickle (:func:`refuse_pickles`). Files named in ``check_only``
    (e.g. the optimizer state, twice the size of the weights, for a reader that only scores) are
    checked but not copied.

    Raises:
        CheckpointGoneError: the checkpoint, or one of its files, disappeared or changed while it
            was read (the run rotated it away).
        CorruptCheckpointError: a file is missing, damaged or leads outside the checkpoint, or the
            checkpoint holds no ``run.json``, trainer state or model weights; the message names
            the file in ``checkpoint_dir``.
    """
    source, into = Path(checkpoint_dir), Path(into)
    root = source.resolve()
    try:  # a pickle left in the folder is refused, even one the manifest does not name
        refuse_pickles(source)
    except FileNotFoundError:
        _raise_unless_present(source, f"{source} lost a file while it was read")
    manifest = source / MANIFEST
    try:
        expected = json.loads(manifest.read_bytes()) if manifest.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        _raise_unless_present(source, f"{manifest} cannot be read as JSON ({error})")
    if expected is None:  # a checkpoint written before manifests: every file, unchecked
        if not (source / RUN_JSON).is_file():
            _raise_unless_present(source, f"{source} holds no {RUN_JSON}")
        names = {
            str(path.relative_to(source)): None
            for path in sorted(source.rglob("*"))
            if path.is_file() and not path.name.startswith(".")
        }
    elif isinstance(expected, dict):
        names = expected
    else:
        raise CorruptCheckpointError(f"{manifest} is not a manifest (a JSON object)")
    for name, digest in names.items():
        path = source / name
        if not _inside(path, root) or path.is_symlink():
            raise CorruptCheckpointError(
                f"{source}: {MANIFEST} names {name!r}, which leads outside the checkpoint"
            )
        copy = into / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            copied = hash_file(path) if name in check_only else copy_and_hash(path, copy)
        except FileNotFoundError:
            _raise_unless_present(source, f"{path} is missing from the checkpoint")
        except IsADirectoryError:
            raise CorruptCheckpointError(f"{path} is a folder, not a file") from None
        if digest is not None and copied != digest:
            _raise_unless_present(
                source, f"{path} is damaged (its checksum differs from {MANIFEST})"
            )
    if expected is not None:
        (into / MANIFEST).write_text(json.dumps(expected, indent=2, sort_keys=True))
    for needed in (RUN_JSON, STATE_JSON):
        if not (into / needed).is_file():
            raise CorruptCheckpointError(f"{source / needed} is missing from the checkpoint")
    if not sorted((into / MODEL).glob("*.safetensors")):
        raise CorruptCheckpointError(
            f"{source / MODEL} holds no model weights (*.safetensors): the checkpoint is incomplete"
        )


def _inside(path: Path, root: Path) -> bool:
    """``path`` (links followed) lies under ``root`` (already resolved)."""
    return path.resolve().is_relative_to(root)


def _raise_unless_present(source: Path, damage: str):
    """Raise :class:`CorruptCheckpointError` with ``damage``, or :class:`CheckpointGoneError` when
    the checkpoint itself is gone (the run deleted it while it was read)."""
    if not (source / RUN_JSON).is_file():
        raise CheckpointGoneError(
            f"{source} was deleted while it was read (a run still training keeps only its "
            "newest checkpoints)"
        )
    raise CorruptCheckpointError(damage)


def checkpoint_step(checkpoint_dir: str | Path) -> int:
    """The training step a checkpoint holds (from its trainer state, not from its folder name)."""
    path = Path(checkpoint_dir) / STATE_JSON
    tree = _read_json(path)
    try:
        step = dict(tree["__dict__"])["step"]
    except (KeyError, TypeError, ValueError):
        step = None
    if not isinstance(step, int) or isinstance(step, bool):
        raise CorruptCheckpointError(f"{path} holds no training step")
    return step


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptCheckpointError(f"{path} cannot be read as JSON ({error})") from None


def _load_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError on damaged files
        raise CorruptCheckpointError(f"{path} cannot be read as safetensors ({error})") from None


def read_run_info(checkpoint_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a checkpoint (after refusing pickled payloads)."""
    checkpoint_dir = Path(checkpoint_dir)
    refuse_pickles(checkpoint_dir)
    return _read_json(checkpoint_dir / RUN_JSON)


def load_trainer_state(checkpoint_dir: str | Path) -> TrainerState:
    """The :class:`TrainerState` of a checkpoint; tensors from safetensors, the rest from JSON."""
    checkpoint_dir = Path(checkpoint_dir)
    refuse_pickles(checkpoint_dir)
    tensors = _load_tensors(checkpoint_dir / STATE_TENSORS)
    tree = decode_tree(_read_json(checkpoint_dir / STATE_JSON), tensors)
    return tree_to_state(tree)


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").exists()


def load_model_weights(model, folder: str | Path) -> None:
    """Copy the safetensors weights of ``folder`` (a checkpoint or its ``model/``) into ``model``.

    LoRA adapters go into a peft model; full weights into a plain model, where keys absent from the
    files must be tied to a loaded one (e.g. ``lm_head`` tied to the embeddings). Any unexpected or
    missing key raises.
    """
    folder = Path(folder)
    refuse_pickles(folder)
    if (folder / MODEL).is_dir():
        folder = folder / MODEL
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no safetensors weights")
    weights: dict[str, Tensor] = {}
    for file in files:
        weights.update(_load_tensors(file))
    if is_adapter_folder(folder):
        from peft import set_peft_model_state_dict

        if not hasattr(model, "peft_config"):
            raise ValueError(f"{folder} holds LoRA adapters but the model has none")
        result = set_peft_model_state_dict(model, weights)
        if result.unexpected_keys:
            raise ValueError(
                f"{folder}: adapter keys the model lacks: {result.unexpected_keys[:5]}"
            )
        return
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{folder}: weights the model lacks: {result.unexpected_keys[:5]}")
    untied = _untied(model, result.missing_keys, set(weights))
    if untied:
        raise ValueError(f"{folder}: weights missing from the files: {untied[:5]}")


def _untied(model: torch.nn.Module, missing: list[str], loaded: set[str]) -> list[str]:
    """The missing keys that do not share storage with a loaded tensor."""
    state = model.state_dict(keep_vars=True)
    loaded_storage = {state[name].data_ptr() for name in loaded if name in state}
    return [name for name in missing if state[name].data_ptr() not in loaded_storage]
