"""Helpers of the language-model tests: a small grouped opinion data folder made by hand, tiny configs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from grpo_core.config import EvalConfig, OptimConfig
from grpo_core.lm.config import ModelConfig, SFTConfig, TinyModelConfig
from tasks.run_config import RunConfig

GROUPS = ("Northland", "Southland")
TOPICS = ("schools", "roads", "farms", "water", "parks", "trains", "music", "sport")


def opinion_frames(sizes: dict[str, int], seed: int = 0) -> dict[str, pd.DataFrame]:
    """Two-option questions; Northland prefers A on every topic, Southland prefers B on half of them.

    ``sizes``: pairs per group in the train split (validation and test get a quarter each).
    """
    rng = random.Random(seed)
    frames = {}
    for split, factor in (("train", 1.0), ("validation", 0.25), ("test", 0.25)):
        rows = []
        for group, size in sizes.items():
            for i in range(max(2, int(size * factor))):
                topic = rng.choice(TOPICS)
                prompt = f"Opinion of people in {group} on: more money for {topic}?\nA. Yes\nB. No"
                flip = group == "Southland" and TOPICS.index(topic) % 2 == 0
                chosen, rejected = ("B", "A") if flip else ("A", "B")
                rows.append(
                    {
                        "pair_id": f"{split}-{group}-{i}",
                        "question_id": f"q-{topic}",
                        "group": group,
                        "prompt": prompt,
                        "chosen": chosen,
                        "rejected": rejected,
                    }
                )
        frames[split] = pd.DataFrame(rows)
    return frames


def write_data_dir(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """A prepared data folder in the layout of ``grpo_core.data.storage`` (parquet splits, groups.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        frame.astype(str).to_parquet(folder / f"{split}.parquet")
    names = sorted({g for frame in frames.values() for g in frame["group"]})
    counts = {n: {s: int((f["group"] == n).sum()) for s, f in frames.items()} for n in names}
    train = [counts[n]["train"] for n in names]
    document = {
        "groups": names,
        "slugs": {n.lower(): n for n in names},
        "counts": counts,
        "imbalance_ratio": max(train) / min(train),
    }
    (folder / "groups.json").write_text(json.dumps(document))
    return folder


def tiny_run_config(**changes) -> RunConfig:
    """A fast config: 2-layer width-32 model, short SFT, IPO-scale beta."""
    base = RunConfig(
        model=ModelConfig(
            max_length=64, tiny=TinyModelConfig(hidden_size=32, num_heads=2, intermediate_size=64)
        ),
        sft=SFTConfig(epochs=1.0, learning_rate=1e-3, batch_size=8),
        optim=OptimConfig(learning_rate=1e-3, batch_size=8, max_steps=6),
        eval=EvalConfig(batch_size=16),
    )
    return base.model_copy(update=changes)


def tiny_policy_and_data(
    tmp_path: Path, frames: dict[str, pd.DataFrame], *, lora=None, seed: int = 0
):
    """A fresh tiny policy (same weights for the same ``seed``) and the tokenised train split."""
    import torch

    from grpo_core.lm.dataset import LMPairDataset, tokenize_pairs
    from grpo_core.lm.policy import CausalLMPolicy, add_lora, load_causal_lm
    from grpo_core.lm.presets import tiny_model_dir

    train = frames["train"]
    texts = [*train["prompt"], *train["chosen"], *train["rejected"]]
    tiny = TinyModelConfig(hidden_size=32, num_heads=2, intermediate_size=64, init_seed=seed)
    model, tokenizer = load_causal_lm(tiny_model_dir(tiny, texts, 64, tmp_path / "cache"))
    pairs = tokenize_pairs(
        train["pair_id"].tolist(), train["prompt"].tolist(), train["chosen"].tolist(), train["rejected"].tolist(),
        tokenizer, max_length=64,
    )  # fmt: skip
    names = sorted(set(train["group"]))
    group_ids = torch.tensor([names.index(g) for g in train["group"]])
    data = LMPairDataset(pairs, group_ids, len(names), tokenizer.pad_token_id)
    if lora is not None:
        model = add_lora(model, lora, seed=seed)
    return CausalLMPolicy(model, device="cpu"), data, tokenizer
