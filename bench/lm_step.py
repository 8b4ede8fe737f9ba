"""Language-model training step: this project against Hugging Face TRL's DPOTrainer, measured in one run.

The same model (SmolLM2-135M-Instruct), data (GlobalOpinionQA, the paper's five countries, the chat
template), batch (8 pairs), LoRA (r 8, alpha 32, no dropout, attention and MLP projections) and
precomputed reference log-probs, IPO at beta 0.01. Three variants, each in its own process (so each
has its own peak memory), interleaved round by round so that a machine slower at one moment slows
all of them alike:

- ``grpo``: this project's step (shared prompt, length-grouped chunks, bfloat16 autocast where the
  CPU has it), through ``grpo_core.loop.train``;
- ``grpo-before``: the step as it was before, as configured before (one row per response, one
  padded batch, float32, LoRA dropout 0.05);
- ``trl``: ``trl.DPOTrainer`` (its fused log-prob head; float32, as it runs on a CPU).

Each process times optimizer steps after ``--warmup`` (model loading and reference scoring excluded)
and reports pairs/s, tokens/s and its peak resident memory. The ratios use the median over rounds.

    python bench/lm_step.py --json bench/results/lm_step.json        # needs: pip install -e '.[bench]'
"""

from __future__ import annotations

import argparse
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
VARIANTS = ("grpo", "grpo-before", "trl")
NON_EMBEDDING_PARAMETERS = 106_203_456  # SmolLM2-135M without its (tied) 49152 x 576 embedding
GPU_PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
"""Dense bfloat16 peak of the cards the model FLOPs utilisation is reported for."""
BETA = 0.01
LEARNING_RATE = 3e-5


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


def tokenized(args, encoding: str, group_by_length: bool, dtype: str):
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
        pair_encoding=encoding, group_by_length=group_by_length,
    )  # fmt: skip
    model, tokenizer = load_causal_lm(path)
    data = load_tokenized_split(
        args.data, "train", load_groups(args.data), tokenizer, model_config,
        max_length=512, chat_template=True, device=torch.device(args.device),
    )  # fmt: skip
    keep = subset(data.num_pairs, args.pairs)
    data = LMPairDataset(
        [data.pairs[i] for i in keep], data.group_ids[keep], data.num_groups,
        data.pad_token_id, encoding=encoding, group_by_length=group_by_length, device=args.device,
    )  # fmt: skip
    return model, tokenizer, data, model_config


def subset(total: int, pairs: int) -> list[int]:
    """The same seeded random ``pairs`` of ``total`` training pairs for every variant (all groups)."""
    import numpy as np

    return sorted(int(i) for i in np.random.default_rng(0).permutation(total)[:pairs])


def run_grpo(args, encoding: str, group_by_length: bool, dtype: str, dropout: float = 0.0) -> dict:
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

    model, _, data, config = tokenized(args, encoding, group_by_length, dtype)
    device = torch.device(args.device)
    autocast = autocast_dtype(config.dtype, device)
    model.to(device)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    data = with_reference_logps(policy, data, model_fingerprint="bench", batch_size=16)  # no cache
    model = add_lora(model, lora_config(dropout), seed=0)
    keep_frozen_weights_in(model, autocast)  # as grpo_core.lm.training does
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    stamps: list[float] = []
    optim = OptimConfig(
        learning_rate=LEARNING_RATE, batch_size=args.batch, max_steps=args.warmup + args.steps
    )
    train(
        policy,
        data,
        Objective("ipo", "size", beta=BETA),
        optim,
        seed=0,
        callbacks=[lambda record: stamps.append(time.perf_counter())],
    )
    return _timing(stamps, _tokens_per_pair(data.pairs, encoding), args)


def _tokens_per_pair(pairs, encoding: str) -> float:
    """Real (unpadded) tokens a pair costs: the prompt once with a shared prompt, twice otherwise."""
    prompts = 1 if encoding == "shared_prompt" else 2
    return statistics.fmean(
        prompts * len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs
    )


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

    class Stamp(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    config = DPOConfig(
        output_dir=str(Path(tempfile.mkdtemp(prefix="trl-bench-"))),
        beta=BETA, loss_type=["ipo"], learning_rate=LEARNING_RATE, lr_scheduler_type="constant",
        per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps, max_grad_norm=10.0,
        precompute_ref_log_probs=True, bf16=args.device == "cuda", use_cpu=args.device == "cpu",
        report_to=[], logging_steps=10_000,
        save_strategy="no", max_length=512, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    trainer = DPOTrainer(
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
    per_pair = statistics.fmean(
        2 * len(p) + len(c) + len(r)
        for p, c, r in zip(
            rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"], strict=True
        )
    )
    return _timing(stamps, per_pair, args)


def _timing(stamps: list[float], tokens_per_pair: float, args) -> dict:
    """pairs/s and real tokens/s over the steps after the warmup; peak memory; on a GPU the model
    FLOPs utilisation (4 N FLOPs a token for LoRA: forward 2N, backward through frozen weights 2N)."""
    import torch

    timed = stamps[args.warmup - 1 :] if args.warmup else stamps
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    tokens_per_second = args.batch * tokens_per_pair / seconds
    out = {
        "seconds_per_step": seconds,
        "pairs_per_second": args.batch / seconds,
        "tokens_per_pair": tokens_per_pair,
        "tokens_per_second": tokens_per_second,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    if args.device == "cuda":
        out["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
        peak = GPU_PEAK_BF16_FLOPS.get(
            next((k for k in GPU_PEAK_BF16_FLOPS if k in torch.cuda.get_device_name()), "")
        )
        if peak:
            out["mfu"] = 4 * NON_EMBEDDING_PARAMETERS * tokens_per_second / peak
    return out


def worker(args) -> dict:
    import torch

    torch.manual_seed(0)
    if args.worker == "grpo":
        return run_grpo(args, "shared_prompt", True, "auto")
    if args.worker == "grpo-before":  # the code path and example config before this change
        return run_grpo(args, "separate", False, "float32", dropout=0.05)
    return run_trl(args)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three variants")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step")
    parser.add_argument(
        "--pairs",
        type=int,
        default=128,
        help="random training pairs used (the reference scores them)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from grpo_core.lm.presets import default_cache_dir, smollm2_model_dir

    cache = default_cache_dir()
    smollm2_model_dir(cache)  # convert once, outside the timed runs
    data = prepare(cache / "bench-data", cache)
    variants = [v for v in args.variants.split(",") if v]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            command = [
                sys.executable, __file__, "--worker", variant, "--data", str(data), "--cache", str(cache),
                "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
                "--pairs", str(args.pairs), "--device", args.device,
            ]  # fmt: skip
            env = {
                **os.environ,
                "TQDM_DISABLE": "1",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
            if done.returncode != 0:
                sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[variant].append(result)
            print(
                f"round {round_ + 1} {variant:<12} {result['pairs_per_second']:6.2f} pairs/s  "
                f"{result['tokens_per_second']:7.0f} tokens/s  peak {result['peak_rss_gb']:.2f} GB",
                flush=True,
            )
    median = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    ratios = {}
    if "grpo" in median and "trl" in median:
        ratios["grpo_vs_trl_pairs_per_second"] = (
            median["grpo"]["pairs_per_second"] / median["trl"]["pairs_per_second"]
        )
        ratios["grpo_vs_trl_peak_memory"] = (
            median["grpo"]["peak_rss_gb"] / median["trl"]["peak_rss_gb"]
        )
    if "grpo" in median and "grpo-before" in median:
        ratios["grpo_vs_before_pairs_per_second"] = (
            median["grpo"]["pairs_per_second"] / median["grpo-before"]["pairs_per_second"]
        )
        ratios["grpo_vs_before_peak_memory"] = (
            median["grpo"]["peak_rss_gb"] / median["grpo-before"]["peak_rss_gb"]
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.json:
        import torch

        document = {
            "command": "python bench/lm_step.py " + " ".join(sys.argv[1:]),
            "machine": {
                "cpu_count": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "native_bf16": __import__(
                    "grpo_core.lm.policy", fromlist=["x"]
                ).cpu_has_native_bf16(),
            },
            "setup": {
                "model": "SmolLM2-135M-Instruct",
                "data": "GlobalOpinionQA, 5 countries, train split",
                "batch": args.batch,
                "pairs": args.pairs,
                "lora": lora_config().model_dump(),
                "loss": f"IPO, beta {BETA}",
                "steps": args.steps,
                "warmup": args.warmup,
                "rounds": args.rounds,
            },  # fmt: skip
            "median": median,
            "ratios": ratios,
            "runs": runs,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
