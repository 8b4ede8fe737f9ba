"""A causal language model as a :class:`~grpo_core.policy.Policy` of the one training loop."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from grpo_core.lm.config import LoraConfig
from grpo_core.lm.dataset import SequenceBatch
from grpo_core.lm.logprobs import gather_logps, scored_positions


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """Resolve ``ModelConfig.dtype``: bfloat16 autocast for 'bfloat16' (or 'auto' on CUDA), else None."""
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; any other name as given. For the edges (CLI, tasks)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """The tokenizer of a model folder (or hub name), with a pad token (EOS if it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # Padding is masked everywhere; any id will do, and EOS is always in the vocabulary.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str | Path, *, trust_remote_code: bool = False):
    """A float32 ``AutoModelForCausalLM`` and its tokenizer from a folder (or a hub name, if given).

    Weights are read from safetensors only (``use_safetensors=True``): nothing is unpickled.
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code
    )
    return model, load_tokenizer(path, trust_remote_code=trust_remote_code)


def add_lora(model, lora: LoraConfig, *, seed: int):
    """Wrap ``model`` with fresh LoRA adapters (B = 0, so the policy starts equal to the model).

    ``seed`` fixes the random A matrices, without touching the caller's random state.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in lora.target_modules if t in present]
    if not targets:
        raise ValueError(
            f"none of the LoRA target modules {list(lora.target_modules)} is in the model"
        )
    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


class CausalLMPolicy:
    """Per-pair sequence log-probs of a causal LM (spec section 1): one forward pass over the 2B
    rows (chosen, then rejected) of a :class:`SequenceBatch`.

    Args:
        model: a transformers causal LM (possibly a peft model), already on ``device``.
        device: where the forward pass runs; inputs are moved there.
        autocast: ``torch.bfloat16`` for mixed precision (CUDA), None for plain float32.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: torch.device | str,
        autocast: torch.dtype | None = None,
    ):
        self.model = model
        self.device = torch.device(device)
        self.autocast = autocast
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self._keeps_logits = "logits_to_keep" in inspect.signature(forward).parameters

    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> CausalLMPolicy:
        self.model.train(mode)
        return self

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def sequence_logps(self, inputs: SequenceBatch) -> Tensor:
        """``[S]`` float32 summed log-probs of the scored tokens of each row."""
        inputs = inputs.to(self.device)
        kwargs = {}
        positions = None
        if self._keeps_logits:
            positions = scored_positions(inputs.response_mask)
            kwargs["logits_to_keep"] = positions
        with self._autocast():
            logits = self.model(
                input_ids=inputs.input_ids,
                attention_mask=inputs.attention_mask,
                use_cache=False,
                **kwargs,
            ).logits
        return gather_logps(logits, inputs.input_ids, inputs.response_mask, positions)

    def pair_logps(self, inputs: SequenceBatch) -> tuple[Tensor, Tensor]:
        """``(log pi(y_w|x), log pi(y_l|x))``, each ``[B]``, from one forward pass over 2B rows."""
        logps = self.sequence_logps(inputs)
        half = logps.shape[0] // 2
        return logps[:half], logps[half:]

    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Inside: the model without its LoRA adapters (the reference), if it has any."""
        if hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                yield
        else:
            yield
