"""Language-model training step: this project against Hugging Face TRL's DPOTrainer, measured in one run.

The same model (SmolLM2-135M-Instruct), data (GlobalOpinionQA, the paper's five countries, the chat
template), batch (8 pairs), LoRA (r 8, alpha 32, no dropout, attention and MLP projections) and
precomputed reference log-probs, IPO at beta 0.01. Each variant runs in its own process (so each has
its own peak memory), interleaved round by round so that a machine slower at one moment slows all
of them alike:

- ``grpo``: this project's step (shared prompt, length-grouped chunks, bfloat16 autocast where the
  CPU has native bfloat16, and on a GPU) with the settings tuned for a CPU (:data:`TUNED`:
  ``model.compile: true``, ``attention: eager``, ``chunk_cost_tokens: 1024``), through
  ``grpo_core.loop.train``; the compiling first step is a warmup step, not timed;
- ``grpo-eager``: the step with the model defaults (no compile, SDPA, length-grouped chunks): the
  step before this tuning;
- ``grpo-fp32``: the compiled step in plain float32 (``dtype: float32``);
- ``grpo-before`` (not in the default set): the step as it was before, as configured before (one
  row per response, one padded batch, float32, LoRA dropout 0.05);
- ``trl``: ``trl.DPOTrainer`` as the bench always ran it: DPOConfig's defaults (gradient
  checkpointing on, as DPOConfig defaults it) but ``bf16`` on a GPU only (float32 on a CPU, where
  DPOConfig would default it on);
- ``trl-best``: DPOTrainer with what a TRL user would pick on this machine: ``bf16`` where the CPU
  has native bfloat16 (and on a GPU), ``gradient_checkpointing=False``, ``padding_free=True``
  (TRL 1.16 warns and falls back to padding: ``settings.padding_free_effective`` records what ran),
  ``precompute_ref_batch_size=16``;
- ``trl-best-fp32``: ``trl-best`` without bf16, the float32 baseline for ``grpo-fp32``.

Every result records its ``settings``, including the dtype a frozen linear layer actually produced
in the training forward passes (``training_matmul_dtype``: checks that the Trainer's bf16 autocast
really runs in bfloat16 on the CPU).

Each process times optimizer steps after ``--warmup`` (model loading and reference scoring excluded)
and reports pairs/s, real (unpadded) tokens/s and its peak memory (resident; on a GPU, allocated
GPU memory). ``grpo`` and ``grpo-fp32`` also time the forward pass alone, as the reference pass and
evaluation run it (``policy.pair_logps`` in eval mode without gradients, batches of 16 over the
subset, the LoRA adapters attached as when a trained policy is evaluated):
``forward_pairs_per_second``. ``reference_pairs_per_second`` times the whole reference
pass (ours: ``with_reference_logps``; TRL: its precompute in the trainer's constructor), first
batches included. The ratios use the median over rounds: ``grpo`` against ``trl`` and
``trl-best`` (speed, memory, reference pass), and ``grpo-fp32`` against ``trl-best-fp32`` (both
float32: the comparison a CPU without native bfloat16 would see).

Model FLOPs. With LoRA the base weights are frozen, so the backward pass needs only the input
gradients of the frozen matmuls (2N FLOPs a token), not their weight gradients. Per real token::

    forward + backward = 2N + 2N            (N non-embedding parameters: 106,203,456)
                       + 6 N_lora            (the adapters are trained: forward, input and weight grads)
    LM head            + 4 V d per target    (only at positions predicting a response token)
    attention          + 3 * 4 d_attn L      per (query, key) pair a causal mask lets through

(V 49152, d 576, d_attn = heads * head_dim = 576, L 30 layers; attention backward is twice its
forward.) Each variant is charged for its own encoding's real tokens (the shared prompt once for
``grpo``, twice for TRL) and nothing for padding or for logits at non-target positions: model FLOPs
per second over the step time is what the hardware did usefully. The same run measures the
machine's matmul peak at the step's shapes (``[T, 576] x [576, 1536]`` and ``[T, 1536] x [1536,
576]``, T 256 to 1024, best of several repetitions, in its own process) in float32 and, where
native (or on a GPU), bfloat16; each variant reports its achieved FLOP/s as a fraction of the peak
of the dtype its matmuls ran in. On a GPU the fraction of the card's datasheet bfloat16 peak
(``mfu``) is reported too.

``--profile`` runs the ``grpo-eager`` variant once more for ``--profile-steps`` steps under
``torch.profiler`` and prints where a step's time goes (self time, no double counting): matmuls,
attention, element-wise and normalisation, copies and indexing, the optimizer (AdamW's
``Optimizer.step`` and ``zero_grad`` records, their Python included), data collation (its
Python included) and Python/other (the step's wall time minus all of those: the loop's Python,
autograd's bookkeeping, the profiler's own cost), plus the top 15 operators. On a GPU the
categories are the operators' self GPU time, and Python/other is the time the GPU sat idle.

    python bench/lm_step.py --profile --json bench/results/lm_step.json  # make bench
    python bench/lm_step.py --variants grpo --rounds 1 --steps 2 --warmup 1 --pairs 16  # smoke
    python bench/lm_step.py --device cuda --profile ...                  # bench/gpu_check.sh

Needs ``pip install -e '.[bench]'`` (TRL) and the SmolLM2 preset (``make smollm2``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOQA = ROOT.parent / "shared" / "data" / "globalopinionqa_partial" / "goqa_partial_union.jsonl"
GROUPS = ("Nigeria", "Egypt", "India (Current national sample)", "China", "Japan")
VARIANTS = (
    "grpo", "grpo-eager", "grpo-fp32", "grpo-before", "trl", "trl-best", "trl-best-fp32"
)  # fmt: skip
DEFAULT_VARIANTS = ("grpo", "grpo-eager", "grpo-fp32", "trl", "trl-best", "trl-best-fp32")
WORKERS = (*VARIANTS, "peak", "profile")
NON_EMBEDDING_PARAMETERS = 106_203_456  # SmolLM2-135M without its (tied) 49152 x 576 embedding
GPU_PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
"""Dense bfloat16 peak of the cards the model FLOPs utilisation is reported for."""
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
BETA = 0.01
LEARNING_RATE = 3e-5
EVAL_BATCH = 16  # the reference pass's and evaluation's batch size
DATA_SCOPE = "bench::data.batch"


def lora_config(dropout: float = 0.0):
    from grpo_core.lm.config import LoraConfig

    return LoraConfig(enabled=True, r=8, alpha=32, dropout=dropout)


def prepare(data_dir: Path, cache_dir: Path) -> Path:
    """The GOQA train split, prepared once into ``data_dir`` (the pipeline's own preparation)."""
    from grpo_core.data.cache import prepared_data_dir
    from grpo_core.data.config import DataConfig

    if not GOQA.exists():
        sys.exit(f"bench/lm_step.py: {GOQA} is absent (see ../shared/data/README.md)")
    config = DataConfig(format="survey", path=str(GOQA), groups=GROUPS, split=(0.8, 0.1, 0.1))
    return prepared_data_dir(config, data_dir)[0]


# --- model FLOPs -------------------------------------------------------------------------------


class Shape:
    """The sizes of a Llama-style model that its FLOPs depend on (from its ``config.json``)."""

    def __init__(self, config: dict, lora_targets: tuple[str, ...], lora_r: int):
        self.d = config["hidden_size"]
        self.inter = config["intermediate_size"]
        self.layers = config["num_hidden_layers"]
        self.vocab = config["vocab_size"]
        head_dim = config.get("head_dim") or self.d // config["num_attention_heads"]
        self.q = config["num_attention_heads"] * head_dim
        self.kv = config["num_key_value_heads"] * head_dim
        # (in, out) of every projection of one decoder layer
        dims = {
            "q_proj": (self.d, self.q), "k_proj": (self.d, self.kv), "v_proj": (self.d, self.kv),
            "o_proj": (self.q, self.d), "gate_proj": (self.d, self.inter),
            "up_proj": (self.d, self.inter), "down_proj": (self.inter, self.d),
        }  # fmt: skip
        per_layer = sum(i * o for i, o in dims.values()) + 2 * self.d  # + two RMSNorms
        self.non_embedding = self.layers * per_layer + self.d  # + the final norm
        self.lora = self.layers * lora_r * sum(sum(dims[t]) for t in lora_targets if t in dims)

    def pair_flops(
        self, prompt: int, chosen: int, rejected: int, shared: bool, train: bool
    ) -> float:
        """Model FLOPs of one pair (the module docstring's formula); forward only unless ``train``."""
        if shared:  # one row: prompt, chosen, rejected; each response sees the prompt and itself
            tokens = prompt + chosen + rejected
            keys = (
                sum(prompt * n + n * (n + 1) / 2 for n in (chosen, rejected))
                + prompt * (prompt + 1) / 2
            )
        else:  # two causal rows, each with the prompt
            tokens = 2 * prompt + chosen + rejected
            keys = sum((prompt + n) * (prompt + n + 1) / 2 for n in (chosen, rejected))
        targets = chosen + rejected
        forward = (
            2 * (self.non_embedding + self.lora) * tokens
            + 2 * self.vocab * self.d * targets
            + 4 * self.q * self.layers * keys
        )
        if not train:
            return forward
        backward = (
            2 * self.non_embedding * tokens
            + 4 * self.lora * tokens
            + 2 * self.vocab * self.d * targets
            + 8 * self.q * self.layers * keys
        )
        return forward + backward


def model_shape(cache: Path) -> Shape:
    from grpo_core.lm.presets import smollm2_model_dir

    config = json.loads((smollm2_model_dir(cache) / "config.json").read_text())
    lora = lora_config()
    return Shape(config, tuple(lora.target_modules), lora.r)


def mean_flops(shape: Shape, lengths, shared: bool, train: bool) -> float:
    """Mean model FLOPs per pair over ``(prompt, chosen, rejected)`` lengths."""
    return statistics.fmean(shape.pair_flops(p, c, r, shared, train) for p, c, r in lengths)


# --- workers -----------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def watch_matmul_dtype(model) -> set[str]:
    """Dtypes the first (frozen) linear layer of ``model`` outputs in forward passes with gradients
    enabled (the training steps): what the matmuls really ran in."""
    import torch

    seen: set[str] = set()
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))

    def hook(_module, _inputs, output):
        if torch.is_grad_enabled():
            seen.add(str(output.dtype).removeprefix("torch."))

    linear.register_forward_hook(hook)
    return seen


TUNED = {"attention": "eager", "chunk_cost_tokens": 1024}
"""Model settings of the tuned step (with ``compile: true``), as in examples/goqa_*.yaml: on a CPU
one pass per minibatch and attention that inductor fuses beat length-grouped chunks and SDPA."""
DEFAULTS = {"attention": "sdpa", "chunk_cost_tokens": 64}


def tokenized(args, encoding: str, group_by_length: bool, dtype: str, settings: dict = DEFAULTS):
    """SmolLM2, its tokenizer and :func:`subset` of the training pairs, batched as asked."""
    import torch

    from grpo_core.data.storage import load_groups
    from grpo_core.lm.config import ModelConfig
    from grpo_core.lm.dataset import LMPairDataset
    from grpo_core.lm.policy import load_causal_lm
    from grpo_core.lm.presets import smollm2_model_dir
    from grpo_core.lm.splits import load_tokenized_split

    path = smollm2_model_dir(args.cache)
    model_config = ModelConfig(
        preset=None, path=str(path), max_length=512, dtype=dtype,
        pair_encoding=encoding, group_by_length=group_by_length, **settings,
    )  # fmt: skip
    model, tokenizer = load_causal_lm(path, attention=model_config.attention)
    data = load_tokenized_split(
        args.data, "train", load_groups(args.data), tokenizer, model_config,
        max_length=512, chat_template=True, device=torch.device(args.device),
    )  # fmt: skip
    keep = subset(data.num_pairs, args.pairs)
    data = LMPairDataset(
        [data.pairs[i] for i in keep], data.group_ids[keep], data.num_groups,
        data.pad_token_id, encoding=encoding, group_by_length=group_by_length,
        chunk_cost_tokens=model_config.chunk_cost_tokens, device=args.device,
    )  # fmt: skip
    return model, tokenizer, data, model_config


def subset(total: int, pairs: int) -> list[int]:
    """The same seeded random ``pairs`` of ``total`` training pairs for every variant (all groups)."""
    import numpy as np

    return sorted(int(i) for i in np.random.default_rng(0).permutation(total)[:pairs])


def run_grpo(
    args, encoding: str, group_by_length: bool, dtype: str, dropout: float = 0.0,
    profile: bool = False, compile: bool = False,
) -> dict:  # fmt: skip
    """Our step through the one training loop: IPO, unbiased estimator, AdamW, clipping."""
    import torch

    from grpo_core.config import OptimConfig
    from grpo_core.lm.policy import (
        CausalLMPolicy,
        add_lora,
        autocast_dtype,
        keep_frozen_weights_in,
    )
    from grpo_core.lm.reference_cache import with_reference_logps
    from grpo_core.loop import train
    from grpo_core.objective import Objective

    settings = TUNED if compile else DEFAULTS
    model, _, data, config = tokenized(args, encoding, group_by_length, dtype, settings)
    device = torch.device(args.device)
    autocast = autocast_dtype(config.dtype, device)
    model.to(device)
    seen = watch_matmul_dtype(model)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    start = time.perf_counter()
    data = with_reference_logps(policy, data, model_fingerprint="bench", batch_size=EVAL_BATCH)
    sync(args.device)
    reference_seconds = time.perf_counter() - start
    model = add_lora(model, lora_config(dropout), seed=0)
    keep_frozen_weights_in(model, autocast)  # as grpo_core.lm.training does
    policy = CausalLMPolicy(model, device=device, autocast=autocast, compile=compile)
    stamps: list[float] = []
    steps = args.profile_steps if profile else args.steps
    optim = OptimConfig(
        learning_rate=LEARNING_RATE, batch_size=args.batch, max_steps=args.warmup + steps
    )
    profiler = None
    if profile:
        data.batch = scoped(data.batch, DATA_SCOPE)  # collation shows as its own category
        activities = [torch.profiler.ProfilerActivity.CPU]
        if args.device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        profiler = torch.profiler.profile(activities=activities, record_shapes=False)

    def stamp(_record) -> None:
        sync(args.device)
        stamps.append(time.perf_counter())
        if profiler is not None and len(stamps) == args.warmup:
            profiler.start()
        elif profiler is not None and len(stamps) == args.warmup + steps:
            profiler.stop()

    if profiler is not None and args.warmup == 0:
        profiler.start()
    train(policy, data, Objective("ipo", "size", beta=BETA), optim, seed=0, callbacks=[stamp])
    lengths = [(len(p.prompt), len(p.chosen), len(p.rejected)) for p in data.pairs]
    shared = encoding == "shared_prompt"
    if profile:
        wall = (stamps[-1] - (stamps[args.warmup - 1] if args.warmup else stamps[0])) / steps
        return profile_summary(profiler, wall, steps, args.device)
    out = _timing(stamps, _tokens_per_pair(data.pairs, encoding), args)
    out["model_flops_per_step"] = args.batch * mean_flops(args.shape, lengths, shared, True)
    out["achieved_flops_per_second"] = out["model_flops_per_step"] / out["seconds_per_step"]
    out["reference_pairs_per_second"] = data.num_pairs / reference_seconds
    out.update(forward_timing(policy, data, args))
    out["forward_flops_per_second"] = out["forward_pairs_per_second"] * mean_flops(
        args.shape, lengths, shared, False
    )
    out["settings"] = {
        "encoding": encoding,
        "group_by_length": group_by_length,
        "dtype": dtype,
        "compute_dtype": "bfloat16" if autocast == torch.bfloat16 else "float32",
        "training_matmul_dtype": sorted(seen),
        "lora_dropout": dropout,
        "compile": compile,
        "chunk_cost_tokens": config.chunk_cost_tokens,
        "attention": policy.attention,
        "torch_threads": torch.get_num_threads(),
    }
    return out


def scoped(function, name: str):
    """``function`` inside a ``torch.profiler.record_function`` scope called ``name``."""
    import torch

    def wrapper(*a, **k):
        with torch.profiler.record_function(name):
            return function(*a, **k)

    return wrapper


def forward_timing(policy, data, args) -> dict:
    """Pairs/s of ``policy.pair_logps`` alone, eval mode, no gradients, batches of 16 (as the
    reference pass and evaluation batch), over the collated subset after one warm batch."""
    import torch

    batches = [
        data.batch(torch.arange(s, min(s + EVAL_BATCH, data.num_pairs)))
        for s in range(0, data.num_pairs, EVAL_BATCH)
    ]
    was_training = policy.training
    policy.train(False)
    try:
        with torch.no_grad():
            policy.pair_logps(batches[0].inputs)
            sync(args.device)
            start = time.perf_counter()
            for batch in batches:
                policy.pair_logps(batch.inputs)
            sync(args.device)
            seconds = time.perf_counter() - start
    finally:
        policy.train(was_training)
    return {"forward_pairs_per_second": data.num_pairs / seconds}


def _tokens_per_pair(pairs, encoding: str) -> float:
    """Real (unpadded) tokens a pair costs: the prompt once with a shared prompt, twice otherwise."""
    prompts = 1 if encoding == "shared_prompt" else 2
    return statistics.fmean(
        prompts * len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs
    )


def trl_options(variant: str, device: str) -> dict:
    """The DPOConfig settings a TRL variant asks for (the rest is DPOConfig's defaults)."""
    from grpo_core.lm.policy import cpu_has_native_bf16

    if variant == "trl":  # as the bench always ran it: TRL's defaults, float32 on a CPU
        return {"bf16": device == "cuda"}
    bf16 = variant == "trl-best" and (device == "cuda" or cpu_has_native_bf16())
    return {
        "bf16": bf16,
        "gradient_checkpointing": False,
        "padding_free": True,
        "precompute_ref_batch_size": EVAL_BATCH,
    }


def run_trl(args) -> dict:
    """TRL's DPOTrainer on the same rendered prompts and letters, IPO, precomputed reference."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig as PeftLoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from grpo_core.data.storage import load_split
    from grpo_core.lm.dataset import render_prompt
    from grpo_core.lm.policy import load_causal_lm
    from grpo_core.lm.presets import smollm2_model_dir

    path = smollm2_model_dir(args.cache)
    model, tokenizer = load_causal_lm(path)
    seen = watch_matmul_dtype(model)
    frame = load_split(args.data, "train")
    frame = frame.iloc[subset(len(frame), args.pairs)]
    dataset = Dataset.from_dict(
        {
            "prompt": [render_prompt(p, tokenizer, True) for p in frame["prompt"]],
            "chosen": list(frame["chosen"]),
            "rejected": list(frame["rejected"]),
        }
    )
    lora = lora_config()
    stamps: list[float] = []
    reference: dict[str, float] = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            sync(args.device)
            stamps.append(time.perf_counter())

    class TimedDPOTrainer(DPOTrainer):
        """Times TRL's reference precompute (it runs inside the constructor)."""

        def _precompute_ref_logps(self, dataset, name, batch_size):
            start = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            sync(args.device)
            reference[name] = time.perf_counter() - start
            return out

    options = trl_options(args.worker, args.device)
    config = DPOConfig(
        output_dir=str(Path(tempfile.mkdtemp(prefix="trl-bench-"))),
        beta=BETA, loss_type=["ipo"], learning_rate=LEARNING_RATE, lr_scheduler_type="constant",
        per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps, max_grad_norm=10.0,
        precompute_ref_log_probs=True, use_cpu=args.device == "cpu",
        report_to=[], logging_steps=10_000,
        save_strategy="no", max_length=512, dataloader_num_workers=0, seed=0, **options,
    )  # fmt: skip
    trainer = TimedDPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Stamp()],
        peft_config=PeftLoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        ),  # fmt: skip
    )
    torch.manual_seed(0)
    trainer.train()
    rows = trainer.train_dataset
    lengths = [
        (len(p), len(c), len(r))
        for p, c, r in zip(
            rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], strict=True
        )
    ]
    out = _timing(stamps, statistics.fmean(2 * p + c + r for p, c, r in lengths), args)
    out["model_flops_per_step"] = args.batch * mean_flops(args.shape, lengths, False, True)
    out["achieved_flops_per_second"] = out["model_flops_per_step"] / out["seconds_per_step"]
    if "train" in reference:
        out["reference_pairs_per_second"] = len(lengths) / reference["train"]
    out["settings"] = {
        "requested": options,
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "padding_free_effective": bool(getattr(trainer, "padding_free", False)),
        "precompute_ref_log_probs": config.precompute_ref_log_probs,
        "precompute_ref_batch_size": config.precompute_ref_batch_size
        or config.per_device_train_batch_size,
        "compute_dtype": "bfloat16" if config.bf16 else "float32",
        "training_matmul_dtype": sorted(seen),
        "attention": getattr(model.config, "_attn_implementation", None),
        "torch_threads": torch.get_num_threads(),
    }
    return out


def _timing(stamps: list[float], tokens_per_pair: float, args) -> dict:
    """pairs/s and real tokens/s over the steps after the warmup; peak memory."""
    import torch

    timed = stamps[args.warmup - 1 :] if args.warmup else stamps
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    out = {
        "seconds_per_step": seconds,
        "pairs_per_second": args.batch / seconds,
        "tokens_per_pair": tokens_per_pair,
        "tokens_per_second": args.batch * tokens_per_pair / seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    if args.device == "cuda":
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
        out["device_name"] = torch.cuda.get_device_name()
    return out


def matmul_peak(args) -> dict:
    """Best TFLOP/s of plain matmuls at the step's MLP shapes, float32 and bfloat16 (where native)."""
    import torch

    from grpo_core.lm.policy import cpu_has_native_bf16

    device = torch.device(args.device)
    d, inter = args.shape.d, args.shape.inter
    dtypes = [torch.float32]
    if args.device == "cuda" or cpu_has_native_bf16():
        dtypes.append(torch.bfloat16)
    out: dict[str, object] = {}
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        shapes = {}
        for tokens in (256, 512, 1024):
            for k, n in ((d, inter), (inter, d)):
                a = torch.randn(tokens, k, device=device, dtype=dtype)
                b = torch.randn(k, n, device=device, dtype=dtype)
                flops = 2 * tokens * k * n
                a @ b  # warm (kernel choice, thread pool)
                sync(args.device)
                best, repeats = float("inf"), 1
                while True:  # enough repeats for a measurable interval
                    start = time.perf_counter()
                    for _ in range(repeats):
                        a @ b
                    sync(args.device)
                    if time.perf_counter() - start > 0.1:
                        break
                    repeats *= 4
                for _ in range(7):
                    start = time.perf_counter()
                    for _ in range(repeats):
                        a @ b
                    sync(args.device)
                    best = min(best, (time.perf_counter() - start) / repeats)
                shapes[f"[{tokens},{k}]x[{k},{n}]"] = flops / best
        out[name] = max(shapes.values())
        out[f"{name}_by_shape"] = shapes
    out["torch_threads"] = torch.get_num_threads()
    return out


CATEGORIES = (
    "matmuls",
    "attention",
    "element-wise/normalisation",
    "copies/indexing",
    "optimizer",
    "data/collation",
    "Python/other",
)
MATMULS = {
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul",
    "aten::mv", "aten::addmv", "aten::dot", "aten::_addmm_activation", "aten::addbmm",
    "aten::_mm_dtype", "mkldnn::_linear_pointwise",
}  # fmt: skip
COPIES = {
    "copy_", "to", "_to_copy", "clone", "contiguous", "cat", "index", "index_select", "gather",
    "scatter", "scatter_add_", "slice", "select", "view", "reshape", "_reshape_alias", "expand",
    "transpose", "t", "permute", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
    "zero_", "fill_", "ones", "ones_like", "full", "arange", "unsqueeze", "squeeze", "as_strided",
    "narrow", "split", "split_with_sizes", "chunk", "stack", "embedding", "embedding_backward",
    "embedding_dense_backward", "index_put_", "_index_put_impl_", "masked_select", "resize_",
    "detach", "detach_", "_unsafe_view", "lift_fresh", "alias", "new_zeros", "new_empty", "item",
    "_local_scalar_dense", "nonzero", "repeat", "flatten", "unbind", "set_", "new_empty_strided",
    "unfold", "constant_pad_nd", "pad", "masked_scatter", "select_backward", "slice_backward",
    "index_select_backward", "unsafe_split", "lift_fresh_copy", "_copy_from", "_foreach_zero_",
}  # fmt: skip


def category(event) -> str | None:
    """The category of a profiler event's self time (None: Python/other). Everything inside the
    optimizer's and the collation's scopes counts as theirs; else an operator by its name, or by an
    attention operator above it (the math fallback's matmuls and softmax)."""
    chain, parent = [event.name], event.cpu_parent
    while parent is not None:
        chain.append(parent.name)
        parent = parent.cpu_parent
    if any(name.startswith("Optimizer.") for name in chain):  # its Python time included
        return "optimizer"
    if DATA_SCOPE in chain:  # collation's Python time included
        return "data/collation"
    if "::" not in event.name or event.name.startswith("autograd::"):
        return None
    if any("scaled_dot_product" in n or "attention" in n.lower() for n in chain):
        return "attention"
    if event.name in MATMULS:
        return "matmuls"
    if event.name.split("::", 1)[-1] in COPIES:
        return "copies/indexing"
    return "element-wise/normalisation"


def profile_summary(profiler, wall: float, steps: int, device: str) -> dict:
    """Self time per category and the top operators, per step (ms), from a finished profile."""
    from torch.autograd import DeviceType

    on_gpu = device == "cuda"
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in profiler.events():
        if event.device_type != DeviceType.CPU:
            continue  # kernels are counted through the operator that launched them
        name = category(event)
        if name is not None:
            self_us = event.self_device_time_total if on_gpu else event.self_cpu_time_total
            totals[name] += self_us / 1e3 / steps
    wall_ms = wall * 1e3
    totals["Python/other"] = max(wall_ms - sum(totals.values()), 0.0)
    averages = profiler.key_averages()
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    tables = {"cpu": averages.table(sort_by="self_cpu_time_total", row_limit=15)}
    if on_gpu:
        try:
            tables["device"] = averages.table(sort_by="self_device_time_total", row_limit=15)
        except (KeyError, AttributeError):  # torch before 2.4 calls it CUDA time
            tables["device"] = averages.table(sort_by="self_cuda_time_total", row_limit=15)
    return {
        "time": "self device time (GPU)" if on_gpu else "self CPU time",
        "steps": steps,
        "wall_ms_per_step": wall_ms,
        "ms_per_step": totals,
        "percent": {k: 100 * v / wall_ms for k, v in totals.items()},
        "top_ops": [
            {
                "name": e.key,
                "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                "self_device_ms_per_step": getattr(e, "self_device_time_total", 0) / 1e3 / steps,
                "calls_per_step": e.count / steps,
            }
            for e in top
        ],
        "tables": tables,
    }


def worker(args) -> dict:
    import torch

    torch.manual_seed(0)
    args.shape = model_shape(args.cache)
    if args.worker == "peak":
        return matmul_peak(args)
    if args.worker == "profile":
        return run_grpo(args, "shared_prompt", True, "auto", profile=True)
    if args.worker == "grpo":
        return run_grpo(args, "shared_prompt", True, "auto", compile=True)
    if args.worker == "grpo-eager":  # the step before torch.compile
        return run_grpo(args, "shared_prompt", True, "auto")
    if args.worker == "grpo-fp32":
        return run_grpo(args, "shared_prompt", True, "float32", compile=True)
    if args.worker == "grpo-before":  # the code path and example config before this change
        return run_grpo(args, "separate", False, "float32", dropout=0.05)
    return run_trl(args)


# --- the parent --------------------------------------------------------------------------------


def machine_facts() -> dict:
    """CPU model and the instruction-set flags that decide matmul speed; torch's threads."""
    import torch

    from grpo_core.lm.policy import cpu_has_native_bf16

    cpuinfo: dict[str, str] = {}  # the first processor's fields
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            cpuinfo.setdefault(key.strip(), value.strip())
    model = cpuinfo.get("model name") or platform.processor() or platform.machine()
    flags = set(cpuinfo.get("flags", "").split())
    facts = {
        "cpu_model": model,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "native_bf16": cpu_has_native_bf16(),
        "python": platform.python_version(),
    }
    for package in ("transformers", "trl", "peft"):
        with contextlib.suppress(ImportError):
            facts[package] = __import__(package).__version__
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


def run_worker(name: str, args, data: Path, cache: Path, steps: int | None = None) -> dict:
    command = [
        sys.executable, __file__, "--worker", name, "--data", str(data), "--cache", str(cache),
        "--steps", str(steps or args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
        "--pairs", str(args.pairs), "--device", args.device,
        "--profile-steps", str(args.profile_steps),
    ]  # fmt: skip
    env = {
        **os.environ,
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_fractions(result: dict, peak: dict) -> None:
    """Achieved model FLOP/s as a fraction of the measured peak of the dtype the matmuls ran in."""
    dtype = result.get("settings", {}).get("compute_dtype")
    if peak.get(dtype) and "achieved_flops_per_second" in result:
        result["fraction_of_matmul_peak"] = result["achieved_flops_per_second"] / peak[dtype]
        if "forward_flops_per_second" in result:
            result["forward_fraction_of_matmul_peak"] = (
                result["forward_flops_per_second"] / peak[dtype]
            )
    name = result.get("device_name", "")
    card = next((k for k in GPU_PEAK_BF16_FLOPS if k in name), None)
    if card and "achieved_flops_per_second" in result:
        result["mfu"] = result["achieved_flops_per_second"] / GPU_PEAK_BF16_FLOPS[card]


RATIOS = (  # (name, numerator, denominator)
    ("grpo_vs_trl", "grpo", "trl"),
    ("grpo_vs_trl_best", "grpo", "trl-best"),
    ("grpo_fp32_vs_trl_best_fp32", "grpo-fp32", "trl-best-fp32"),
    ("grpo_vs_eager", "grpo", "grpo-eager"),
    ("grpo_vs_before", "grpo", "grpo-before"),
)


def ratios_of(median: dict, memory: str) -> dict:
    out = {}
    for name, ours, theirs in RATIOS:
        if ours not in median or theirs not in median:
            continue
        a, b = median[ours], median[theirs]
        out[f"{name}_pairs_per_second"] = a["pairs_per_second"] / b["pairs_per_second"]
        out[f"{name}_peak_memory"] = a[memory] / b[memory]
        if "reference_pairs_per_second" in a and "reference_pairs_per_second" in b:
            out[f"{name}_reference_pairs_per_second"] = (
                a["reference_pairs_per_second"] / b["reference_pairs_per_second"]
            )
    return out


def print_profile(profile: dict) -> None:
    print(
        f"\nprofile of the grpo step ({profile['time']}, {profile['steps']} steps, "
        f"{profile['wall_ms_per_step']:.0f} ms a step):"
    )
    for name in CATEGORIES:
        print(
            f"  {name:<28} {profile['ms_per_step'][name]:8.1f} ms  "
            f"{profile['percent'][name]:5.1f} %"
        )
    for kind, table in profile["tables"].items():
        print(f"\ntop 15 operators by self {kind} time (whole profile, {profile['steps']} steps):")
        print(table)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run (8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps per run (2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all the variants (2)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (8)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=128,
        help="random training pairs used: the reference pass and the forward timing score them "
        "all (128)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the grpo step (torch.profiler) and print where its time goes",
    )
    parser.add_argument(
        "--profile-steps", type=int, default=3, help="profiled steps, after --warmup (3)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.profile and args.warmup < 1:
        parser.error("--profile needs --warmup 1 or more")

    from grpo_core.lm.presets import default_cache_dir, smollm2_model_dir

    cache = default_cache_dir()
    smollm2_model_dir(cache)  # convert once, outside the timed runs
    data = prepare(cache / "bench-data", cache)
    shape = model_shape(cache)
    if shape.non_embedding != NON_EMBEDDING_PARAMETERS:
        sys.exit(
            f"SmolLM2 has {shape.non_embedding} non-embedding parameters, not {NON_EMBEDDING_PARAMETERS}"
        )
    machine = machine_facts()
    flags = " ".join(f for f, present in machine["cpu_flags"].items() if present) or "none"
    print(
        f"{machine['cpu_model']}; flags: {flags}; {machine['cpu_count']} CPUs, "
        f"torch {machine['torch']} with {machine['torch_threads']} threads"
        + (f"; {machine['gpu']}" if "gpu" in machine else ""),
        flush=True,
    )
    peak = run_worker("peak", args, data, cache)
    print(
        "matmul peak at the step's shapes: "
        + ", ".join(
            f"{k} {peak[k] / 1e12:.2f} TFLOP/s" for k in ("float32", "bfloat16") if k in peak
        ),
        flush=True,
    )
    memory = "peak_gpu_gb" if args.device == "cuda" else "peak_rss_gb"
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            result = run_worker(variant, args, data, cache)
            add_fractions(result, peak)
            runs[variant].append(result)
            print(
                f"round {round_ + 1} {variant:<14} {result['pairs_per_second']:6.2f} pairs/s  "
                f"{result['tokens_per_second']:7.0f} tokens/s  peak {result[memory]:.2f} GB  "
                f"{result['achieved_flops_per_second'] / 1e12:.3f} TFLOP/s"
                + (
                    f" ({100 * result['fraction_of_matmul_peak']:.0f} % of "
                    f"{result['settings']['compute_dtype']} peak)"
                    if "fraction_of_matmul_peak" in result
                    else ""
                ),
                flush=True,
            )
    median = {
        v: {
            k: statistics.median(r[k] for r in rs)
            for k, value in rs[0].items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        for v, rs in runs.items()
    }
    settings = {v: rs[0].get("settings", {}) for v, rs in runs.items()}
    print("\nmedian over rounds:")
    for variant, m in median.items():
        line = (
            f"  {variant:<14} {m['pairs_per_second']:6.2f} pairs/s  "
            f"{m['model_flops_per_step'] / 1e9:6.1f} GFLOP/step  "
            f"{m['achieved_flops_per_second'] / 1e12:.3f} TFLOP/s"
        )
        if "fraction_of_matmul_peak" in m:
            line += f" = {100 * m['fraction_of_matmul_peak']:.1f} % of peak"
        if "mfu" in m:
            line += f"  MFU {100 * m['mfu']:.1f} %"
        if "forward_pairs_per_second" in m:
            line += f"  forward {m['forward_pairs_per_second']:.1f} pairs/s"
            if "forward_fraction_of_matmul_peak" in m:
                line += f" ({100 * m['forward_fraction_of_matmul_peak']:.1f} % of peak)"
        if "reference_pairs_per_second" in m:
            line += f"  reference pass {m['reference_pairs_per_second']:.1f} pairs/s"
        print(line)
        s = settings[variant]
        print(
            f"  {'':<14} settings: "
            + ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("torch_threads",))
        )
    ratios = ratios_of(median, memory)
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    profile = None
    if args.profile:
        profile = run_worker("profile", args, data, cache)
        print_profile(profile)
    if args.json:
        document = {
            "command": "python bench/lm_step.py " + " ".join(sys.argv[1:]),
            "machine": machine,
            "setup": {
                "model": "SmolLM2-135M-Instruct",
                "data": "GlobalOpinionQA, 5 countries, train split",
                "device": args.device,
                "batch": args.batch,
                "pairs": args.pairs,
                "lora": lora_config().model_dump(),
                "loss": f"IPO, beta {BETA}",
                "steps": args.steps,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "model_flops": "per real token 4N + 6 N_lora; 4Vd per target; "
                "12 d_attn L per causal (query, key) pair",
                "non_embedding_parameters": shape.non_embedding,
                "lora_parameters": shape.lora,
            },  # fmt: skip
            "matmul_peak_flops_per_second": peak,
            "median": median,
            "settings": settings,
            "ratios": ratios,
            "runs": runs,
        }
        if profile is not None:
            document["profile"] = profile
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
