"""On an NVIDIA GPU (skipped without one): the same log-probs as on the CPU, and training in bf16.

Run by bench/gpu_check.sh; ``pytest -m gpu`` selects them.
"""

from __future__ import annotations

import pytest
import torch

from grpo_core.lm.batching import collate_pairs
from grpo_core.lm.config import LoraConfig
from grpo_core.lm.policy import CausalLMPolicy
from tests.lm.helpers import opinion_frames, tiny_policy_and_data, tiny_run_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)"),
]


def test_cuda_log_probs_equal_the_cpu_ones(tmp_path):
    # given: the same tiny policy and pairs, float32 on both devices
    policy, data, tokenizer = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 6, "Southland": 4})
    )
    inputs = collate_pairs(data.pairs, tokenizer.pad_token_id)
    with torch.no_grad():
        cpu = torch.stack(policy.train(False).pair_logps(inputs))
        gpu_policy = CausalLMPolicy(policy.model.to("cuda"), device="cuda").train(False)
        gpu = torch.stack(gpu_policy.pair_logps(inputs)).cpu()
    # then: to float tolerance (different kernels)
    assert torch.allclose(cpu, gpu, atol=1e-3), f"{cpu} != {gpu}"


def test_a_lora_run_trains_on_cuda_in_bfloat16(tmp_path, data_dir):
    from grpo_core.lm.training import train_method

    config = tiny_run_config(
        model=tiny_run_config().model.model_copy(update={"lora": LoraConfig(enabled=True)})
    )
    metrics = train_method(
        config.recipe("gr_ipo"), "gr_ipo", 0, data_dir, tmp_path / "run", device="cuda",
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert all(v == v for v in metrics.values()), "no NaN"
    assert metrics["train/steps"] == config.optim.max_steps
