"""A prepared split (what ``grpo_core.data`` writes) tokenised for a causal language model."""

from __future__ import annotations

from pathlib import Path

import torch

from grpo_core.data.storage import GroupTable, load_split
from grpo_core.lm.config import ModelConfig
from grpo_core.lm.dataset import LMPairDataset, tokenize_pairs


def load_tokenized_split(
    data_dir: str | Path,
    split: str,
    groups: GroupTable,
    tokenizer,
    model: ModelConfig,
    *,
    max_length: int,
    chat_template: bool,
    device: torch.device,
) -> LMPairDataset:
    """Tokenised pairs of one prepared split, group ids in ``groups`` order, batched as ``model``
    says (pair encoding, length grouping)."""
    frame = load_split(data_dir, split)
    pairs = tokenize_pairs(
        frame["pair_id"].tolist(),
        frame["prompt"].tolist(),
        frame["chosen"].tolist(),
        frame["rejected"].tolist(),
        tokenizer,
        max_length=max_length,
        chat_template=chat_template,
    )
    group_ids = torch.tensor(frame["group_id"].to_numpy(), dtype=torch.long)
    return LMPairDataset(
        pairs,
        group_ids,
        len(groups.names),
        tokenizer.pad_token_id,
        encoding=model.pair_encoding,
        group_by_length=model.group_by_length,
        chunk_cost_tokens=model.chunk_cost_tokens,
        device=device,
    )


def train_texts(data_dir: str | Path) -> list[str]:
    """Every prompt and response of the training split (the tiny preset's vocabulary comes from them)."""
    frame = load_split(data_dir, "train")
    return [*frame["prompt"], *frame["chosen"], *frame["rejected"]]
