"""Tokenised preference pairs and the :class:`~grpo_core.policy.PairDataset` of a causal LM.

A sequence is prompt tokens, then response tokens, then EOS (docs/ALGORITHM.md#notation). Only the
response tokens and the EOS are scored; prompts longer than ``max_length`` allows are cut from the
LEFT, responses never (too long a response is an error naming the pair). How a minibatch becomes
token rows (the prompt shared by both responses, length-grouped chunks) is
:mod:`grpo_core.lm.batching`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from grpo_core.hashing import hash_json
from grpo_core.lm.batching import (
    FORWARD_COST_TOKENS,
    WIDTH_MULTIPLE,
    PairEncoding,
    collate_pairs,
)
from grpo_core.policy import PairBatch


@dataclass(frozen=True)
class TokenizedPair:
    """Token ids of one pair: the prompt, and each response INCLUDING its final EOS."""

    pair_id: str
    prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]


def render_prompt(prompt: str, tokenizer, chat_template: bool) -> str:
    """The prompt text to encode: as is, or one user turn followed by the assistant header
    (``apply_chat_template(add_generation_prompt=True)``); a rendered template already holds every
    special token, so it is encoded with ``add_special_tokens=False``."""
    if not chat_template:
        return prompt
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )


def uses_chat_template(tokenizer, mode: str, *, prompts_rendered: bool = False) -> bool:
    """Resolve ``ModelConfig.chat_template`` ('auto', 'always', 'never') for ``tokenizer``.

    ``prompts_rendered``: the prompts were rendered with a template when the data was prepared
    (conversational pairs), and must not get it a second time.
    """
    if prompts_rendered:
        return False
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "always" and not has_template:
        raise ValueError("model.chat_template='always' but the tokenizer has no chat template")
    return has_template if mode == "auto" else mode == "always"


def tokenize_pairs(
    pair_ids: Sequence[str],
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    tokenizer,
    *,
    max_length: int,
    chat_template: bool = False,
) -> list[TokenizedPair]:
    """Token ids of every pair, prompts left-truncated so that each sequence fits ``max_length``.

    Raises:
        ValueError: naming the pair, if a response plus EOS leaves no room for one prompt token,
            if a prompt encodes to nothing, or if the tokenizer has no EOS token.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; responses must end with one")
    eos = tokenizer.eos_token_id
    texts = [render_prompt(p, tokenizer, chat_template) for p in prompts]
    prompt_ids = tokenizer(texts, add_special_tokens=not chat_template)["input_ids"]
    chosen_ids = tokenizer(list(chosen), add_special_tokens=False)["input_ids"]
    rejected_ids = tokenizer(list(rejected), add_special_tokens=False)["input_ids"]
    pairs = []
    for pair_id, prompt, good, bad in zip(
        pair_ids, prompt_ids, chosen_ids, rejected_ids, strict=True
    ):
        longest = max(len(good), len(bad)) + 1
        if longest >= max_length:
            raise ValueError(
                f"pair {pair_id}: a response of {longest - 1} tokens plus EOS leaves no room for the "
                f"prompt within model.max_length={max_length}; responses are never truncated"
            )
        if not prompt:
            raise ValueError(f"pair {pair_id}: the prompt encodes to no tokens")
        room = max_length - longest
        pairs.append(TokenizedPair(str(pair_id), tuple(prompt[-room:]), (*good, eos), (*bad, eos)))
    return pairs


class LMPairDataset:
    """N tokenised pairs with their groups and reference log-probs, as a ``PairDataset``.

    ``batch(indices)`` returns a :class:`PairBatch` whose ``inputs`` are the
    :class:`~grpo_core.lm.batching.PairInputs` of those pairs in ``encoding`` (chosen rows only when
    ``chosen_only``: the SFT stage). ``group_ids`` and the reference log-probs live on ``device``.
    """

    def __init__(
        self,
        pairs: Sequence[TokenizedPair],
        group_ids: Tensor,
        num_groups: int,
        pad_token_id: int,
        *,
        ref_chosen: Tensor | None = None,
        ref_rejected: Tensor | None = None,
        chosen_only: bool = False,
        encoding: PairEncoding = "shared_prompt",
        group_by_length: bool = True,
        chunk_cost_tokens: int = FORWARD_COST_TOKENS,
        device: torch.device | str = "cpu",
    ):
        if len(pairs) != group_ids.shape[-1]:
            raise ValueError(f"{len(pairs)} pairs but {group_ids.shape[-1]} group ids")
        self.pairs = tuple(pairs)
        self.pad_token_id = pad_token_id
        self.chosen_only = chosen_only
        self.encoding: PairEncoding = encoding
        self.group_by_length = group_by_length
        self.chunk_cost_tokens = chunk_cost_tokens
        self.device = torch.device(device)
        self._num_groups = num_groups
        self._group_ids = group_ids.to(self.device, torch.long)
        zeros = torch.zeros(len(pairs), device=self.device)
        self.ref_chosen = zeros if ref_chosen is None else ref_chosen.to(self.device, torch.float32)
        self.ref_rejected = (
            zeros if ref_rejected is None else ref_rejected.to(self.device, torch.float32)
        )
        self.has_reference = ref_chosen is not None and ref_rejected is not None

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    @property
    def num_groups(self) -> int:
        return self._num_groups

    @property
    def group_ids(self) -> Tensor:
        """``[N]`` group of every pair."""
        return self._group_ids

    def batch(self, indices: Tensor) -> PairBatch:
        """The pairs at ``indices`` (``[B]``): tokens collated on the CPU, the rest on ``device``."""
        inputs = collate_pairs(
            [self.pairs[i] for i in indices.tolist()],
            self.pad_token_id,
            encoding=self.encoding,
            group_by_length=self.group_by_length,
            chosen_only=self.chosen_only,
            forward_cost=self.chunk_cost_tokens,
        )
        indices = indices.to(self.device)
        return PairBatch(
            indices=indices,
            group_ids=self._group_ids[indices],
            ref_chosen=self.ref_chosen[indices],
            ref_rejected=self.ref_rejected[indices],
            inputs=inputs,
            chosen_lengths=inputs.chosen_lengths.to(self.device),
            rejected_lengths=inputs.rejected_lengths.to(self.device),
        )

    @property
    def layout(self) -> dict[str, object]:
        """How batches are laid out (part of every numerics-dependent cache key)."""
        layout: dict[str, object] = {
            "encoding": self.encoding,
            "group_by_length": self.group_by_length,
            "width_multiple": WIDTH_MULTIPLE if self.group_by_length else 1,
        }
        if self.group_by_length and self.chunk_cost_tokens != FORWARD_COST_TOKENS:
            layout["chunk_cost_tokens"] = self.chunk_cost_tokens  # the default keeps older keys
        return layout

    def with_reference(self, ref_chosen: Tensor, ref_rejected: Tensor) -> LMPairDataset:
        """The same pairs with reference log-probs ``[N]`` each."""
        return replace_view(self, ref_chosen=ref_chosen, ref_rejected=ref_rejected)

    def sft_view(self) -> LMPairDataset:
        """The same pairs serving chosen sequences only (for the chosen-response NLL)."""
        return replace_view(self, chosen_only=True)

    def fingerprint(self) -> str:
        """sha256 of the token ids and groups: changes with the data, the tokenizer or max_length."""
        return hash_json(
            {
                "pad": self.pad_token_id,
                "groups": self._group_ids.tolist(),
                "pairs": [[p.prompt, p.chosen, p.rejected] for p in self.pairs],
            }
        )


def replace_view(dataset: LMPairDataset, **changes) -> LMPairDataset:
    """A copy of ``dataset`` with some of its constructor arguments changed."""
    arguments = {
        "ref_chosen": dataset.ref_chosen if dataset.has_reference else None,
        "ref_rejected": dataset.ref_rejected if dataset.has_reference else None,
        "chosen_only": dataset.chosen_only,
        "encoding": dataset.encoding,
        "group_by_length": dataset.group_by_length,
        "chunk_cost_tokens": dataset.chunk_cost_tokens,
        "device": dataset.device,
    }
    arguments.update(changes)
    return LMPairDataset(
        dataset.pairs, dataset.group_ids, dataset.num_groups, dataset.pad_token_id, **arguments
    )
