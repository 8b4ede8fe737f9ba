"""A causal language model as a :class:`~grpo_core.policy.Policy` of the one training loop."""

from __future__ import annotations

import contextlib
import inspect
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from grpo_core.lm.batching import PairInputs, SequenceBatch
from grpo_core.lm.config import LoraConfig
from grpo_core.lm.logprobs import kept_positions, pair_sums, target_logps


def cpu_has_native_bf16() -> bool:
    """The CPU computes bfloat16 matmuls natively (AVX-512 BF16 or AMX): several times float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """Resolve ``ModelConfig.dtype``: bfloat16 autocast for 'bfloat16', and for 'auto' on CUDA and on
    CPUs with native bfloat16; None (plain float32) otherwise and for 'float32'."""
    if dtype == "float32":
        return None
    if dtype == "bfloat16" or device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; any other name as given. For the edges (CLI, tasks).

    Raises:
        ValueError: a name torch does not know, or a CUDA device where this torch has none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
            "use device 'cpu' or 'auto'"
        )
    return device


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """The tokenizer of a model folder (or hub name), with a pad token (EOS if it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # Padding is masked everywhere; any id will do, and EOS is always in the vocabulary.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    path: str | Path, *, trust_remote_code: bool = False, attention: str | None = None
):
    """A float32 ``AutoModelForCausalLM`` and its tokenizer from a folder (or a hub name, if given).

    Weights are read from safetensors only (``use_safetensors=True``): nothing is unpickled.
    ``attention``: the attention implementation (None: transformers' default).
    """
    from transformers import AutoModelForCausalLM

    extra = {} if attention is None else {"attn_implementation": attention}
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=torch.float32,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
        **extra,
    )
    return model, load_tokenizer(path, trust_remote_code=trust_remote_code)


def keep_frozen_weights_in(model: torch.nn.Module, dtype: torch.dtype | None) -> None:
    """Store the frozen weights of ``model``'s linear layers in ``dtype``, autocast's compute dtype.

    Autocast rounds every matmul weight to ``dtype`` anyway, but caches only trainable ones, so a
    frozen base model under LoRA would be cast again at every use: storing it rounded computes the
    very same numbers without the copies. Weights tied to the embeddings (an output head) and
    trainable weights (LoRA adapters, full fine-tuning) keep float32. None: nothing changes.
    """
    if dtype is None:
        return
    embeddings = model.get_input_embeddings().weight
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, torch.nn.Linear)
            and not weight.requires_grad
            and weight is not embeddings
        ):
            weight.data = weight.data.to(dtype)


def restore_float32(model: torch.nn.Module) -> None:
    """Undo :func:`keep_frozen_weights_in` (before merging adapters into the weights and saving)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype != torch.float32:
            module.weight.data = module.weight.data.float()


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


def compile_blocks(model: torch.nn.Module) -> int:
    """Compile ``model``'s decoder layers in place with ``torch.compile``; return how many.

    Regional compilation: the layers share their code, so one graph (dynamic shapes: any row count
    and width) serves every layer and compiling costs about one layer's time rather than the whole
    model's. The rest of the model (embeddings, final norm, head) stays eager. The layers are the
    ``layers`` of the base model's decoder (transformers' causal LMs; under peft too).

    Raises:
        ValueError: the model has no such list of layers, or it is on a CPU and no C++ compiler
            (which inductor's CPU code needs) is on the PATH.
    """
    on_cpu = next(model.parameters()).device.type == "cpu"
    if on_cpu and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError(
            "model.compile on a CPU needs a C++ compiler (c++, g++ or clang++) on the PATH: "
            "install one (Debian: apt install g++) or set model.compile: false"
        )
    base = getattr(model, "get_base_model", lambda: model)()
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ValueError(
            f"model.compile: {type(base).__name__} has no decoder layers to compile "
            "(get_decoder().layers); set model.compile: false"
        )
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


class CausalLMPolicy:
    """Per-pair sequence log-probs of a causal LM (docs/ALGORITHM.md#notation), from the token
    rows of a :class:`~grpo_core.lm.batching.PairInputs`: one forward pass per chunk.

    Args:
        model: a transformers causal LM (possibly a peft model), already on ``device``.
        device: where the forward pass runs; inputs are moved there.
        autocast: ``torch.bfloat16`` for mixed precision, None for plain float32.
        compile: compile the model's decoder layers in place (:func:`compile_blocks`): the first
            pass compiles (training and no-grad passes each once), later ones run the graph.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: torch.device | str,
        autocast: torch.dtype | None = None,
        compile: bool = False,
    ):
        self.model = model
        self.device = torch.device(device)
        self.autocast = autocast
        base = getattr(model, "get_base_model", lambda: model)()
        self._keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        self.attention = getattr(base.config, "_attn_implementation", "eager")
        self._additive_mask = self.attention == "eager"
        if compile:
            compile_blocks(model)

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

    def _mask(self, chunk: SequenceBatch) -> tuple[Tensor, Tensor | None]:
        """The attention mask and position ids of a chunk: 2D padding for plain causal rows (the
        model builds its own causal mask), 4D for rows that share a prompt."""
        if not chunk.shares_prompts:
            return chunk.padding_mask(), None
        mask = chunk.attention_mask()
        if self._additive_mask:  # eager attention adds the mask to its scores
            mask = torch.zeros(mask.shape, device=mask.device).masked_fill(
                ~mask, torch.finfo(torch.float32).min
            )
        return mask, chunk.position_ids

    def _chunk_logps(self, chunk: SequenceBatch) -> Tensor:
        """``[S, K]`` float32 log-probs of the targets of one chunk on the device (one forward pass)."""
        mask, position_ids = self._mask(chunk)
        kwargs = {}
        positions = None
        if self._keeps_logits:
            positions = kept_positions(chunk)
            kwargs["logits_to_keep"] = positions
        with self._autocast():
            logits = self.model(
                input_ids=chunk.input_ids,
                attention_mask=mask,
                position_ids=position_ids,
                use_cache=False,
                **kwargs,
            ).logits
        return target_logps(logits, chunk, positions)

    def pair_logps(self, inputs: PairInputs) -> tuple[Tensor, Tensor]:
        """``(log pi(y_w|x), log pi(y_l|x))``, each ``[B]`` float32 (rejected 0 for chosen-only rows)."""
        chosen = torch.zeros(inputs.num_pairs, device=self.device)
        rejected = torch.zeros(inputs.num_pairs, device=self.device)
        for chunk in inputs.chunks:
            chunk = chunk.to(self.device)
            part_chosen, part_rejected = pair_sums(
                self._chunk_logps(chunk), chunk, inputs.num_pairs
            )
            chosen, rejected = chosen + part_chosen, rejected + part_rejected
        return chosen, rejected

    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Inside: the model without its LoRA adapters (the reference), if it has any."""
        if hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                yield
        else:
            yield
