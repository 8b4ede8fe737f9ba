"""The model the preference stage starts from, which is also its frozen reference.

As in the language-model experiments of Ramesh et al. 2024 (arXiv:2405.20304): SFT first, then the
SFT model is both the start and the reference (docs/ALGORITHM.md#language-model-experiments).

The base model (a preset or a path), fine-tuned on the chosen responses when SFT is on. The SFT
output is cached under a key of everything it depends on, so every method and seed of a run, and
later runs, share it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from grpo_core.atomic import atomic_directory
from grpo_core.data.storage import load_groups
from grpo_core.hashing import hash_folder, hash_json
from grpo_core.lm.callbacks import RunCallback, sft_step_metrics
from grpo_core.lm.config import ModelConfig, SFTConfig
from grpo_core.lm.dataset import uses_chat_template
from grpo_core.lm.policy import (
    CausalLMPolicy,
    add_lora,
    autocast_dtype,
    keep_frozen_weights_in,
    load_causal_lm,
    load_tokenizer,
    restore_float32,
)
from grpo_core.lm.presets import base_model_dir
from grpo_core.lm.sft import run_sft, sft_optim
from grpo_core.lm.splits import load_tokenized_split, train_texts
from grpo_core.loop import StepRecord
from grpo_core.progress import Progress

SFT_JSON = "sft.json"


@dataclass(frozen=True)
class StartModel:
    """The starting (and reference) model: its folder and the fingerprint of its files."""

    path: str
    fingerprint: str


def model_fingerprint(path: str | Path) -> str:
    """sha256 of every file of a local model folder (hidden ones too); a hub name stands for itself.

    Every file, not only weights and configs: a folder's Python code (``configuration_*.py``,
    ``modeling_*.py``), its chat template and anything else transformers may read change it.
    """
    if Path(path).is_dir():
        return hash_folder(path, hidden=True)
    return hash_json({"hub": str(path)})


EARLIER_FINGERPRINT_FILES = (".safetensors", ".json")
"""What fingerprints covered before they covered every file (equal for folders of only these)."""


def has_fingerprint(path: str | Path, fingerprint: str) -> bool:
    """``path`` holds the files ``fingerprint`` was taken of: :func:`model_fingerprint`, or, for
    runs recorded before it covered every file, the weights and configs of a folder that holds no
    Python code (a ``.py`` file added since always breaks the match)."""
    if model_fingerprint(path) == fingerprint:
        return True
    folder = Path(path)
    return (
        folder.is_dir()
        and not any(folder.rglob("*.py"))
        and hash_folder(folder, EARLIER_FINGERPRINT_FILES) == fingerprint
    )


def prepare_sft_model(
    model: ModelConfig,
    sft: SFTConfig,
    data_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    max_grad_norm: float | None,
    prompts_rendered: bool = False,
    device: torch.device | str,
    cache_dir: str | Path,
    callbacks: Sequence[RunCallback] = (),
    progress: Progress | None = None,
) -> StartModel:
    """The base model of ``model``, fine-tuned on the chosen responses of the training split.

    Without SFT (``sft.enabled`` False) that is the base model itself. With LoRA the SFT stage
    trains adapters and merges them into the weights. The result is a plain folder, written
    atomically to ``output_dir`` or, by default, to ``<cache_dir>/sft/<key>``, where the key covers
    the base model, the tokenised training data (so ``max_length`` and the chat template), ``sft``,
    LoRA, the clipping and the numerics; a folder that already holds the same key is returned at once.
    """
    device = torch.device(device)
    base = base_model_dir(model, train_texts(data_dir), cache_dir)
    base_print = model_fingerprint(base)
    if not sft.enabled:
        return StartModel(base, base_print)
    tokenizer = load_tokenizer(base, trust_remote_code=model.trust_remote_code)
    chat_template = uses_chat_template(
        tokenizer, model.chat_template, prompts_rendered=prompts_rendered
    )
    data = load_tokenized_split(
        data_dir, "train", load_groups(data_dir), tokenizer, model,
        max_length=model.max_length, chat_template=chat_template, device=device,
    )  # fmt: skip
    autocast = autocast_dtype(model.dtype, device)
    key = hash_json(
        {
            "base": base_print,
            "data": data.fingerprint(),
            "sft": sft.model_dump(mode="json"),
            "lora": model.lora.model_dump(mode="json"),
            "max_grad_norm": max_grad_norm,
            "numerics": [device.type, str(autocast), data.layout, model.attention],
        }
    )
    target = Path(output_dir) if output_dir is not None else Path(cache_dir) / "sft" / key[:16]
    marker = target / SFT_JSON
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return StartModel(str(target), model_fingerprint(target))
    network, _ = load_causal_lm(
        base, trust_remote_code=model.trust_remote_code,
        attention=model.attention,
    )  # fmt: skip
    network.to(device)
    if model.lora.enabled:
        network = add_lora(network, model.lora, seed=sft.seed)
        keep_frozen_weights_in(network, autocast)
    policy = CausalLMPolicy(network, device=device, autocast=autocast)
    total = sft_optim(sft, data.num_pairs, max_grad_norm).max_steps

    def report(record: StepRecord) -> None:
        metrics = sft_step_metrics(record)
        for callback in callbacks:
            callback.on_step(record, metrics)
        if progress is not None:
            progress("sft", record.step, total)

    run_sft(policy, data, sft, max_grad_norm=max_grad_norm, callbacks=[report])
    if model.lora.enabled:
        restore_float32(network)
        network = network.merge_and_unload()
    network.to("cpu")
    with atomic_directory(target, replace=True) as tmp:
        network.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SFT_JSON).write_text(
            json.dumps({"key": key, "base": base, "sft": sft.model_dump(mode="json")})
        )
    return StartModel(str(target), model_fingerprint(target))
