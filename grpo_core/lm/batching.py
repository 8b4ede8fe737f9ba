"""How preference pairs become token rows for a causal language model (docs/ALGORITHM.md#notation).

A pair is a prompt x and two responses y_w (chosen) and y_l (rejected), each ending with EOS. Its
layouts:

- ``shared_prompt`` (default): one row ``[x, y_w, y_l]``. The tokens of y_l attend to x and to
  themselves, never to y_w (a 4D attention mask), and their position ids continue from x, so every
  token sees exactly what it sees in its own sequence ``[x, y_l]``: the prompt is encoded once.
- ``separate``: two rows ``[x, y_w]`` and ``[x, y_l]``, plain causal rows (the prompt encoded twice).
- chosen only: one row ``[x, y_w]`` (the SFT stage).

Every scored token is a *target*: its id, the position whose logits predict it (the previous token
of its own sequence, so the first token of y_l is predicted at the last prompt position), and the
pair and side it belongs to. Rows are right-padded.

Length grouping: the rows of a minibatch are sorted by length and cut into chunks, one forward pass
each, so as to minimise the padded tokens plus a fixed cost per pass (an exact dynamic programme).
Which pairs form the minibatch, and so the sampler's statistics, does not change: only their layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

PairEncoding = Literal["shared_prompt", "separate"]
CHOSEN, REJECTED = 0, 1
PAD, PROMPT, FIRST, SECOND = -1, 0, 1, 2
"""Segments of a row: padding, the prompt, the first response, the second response (shared rows)."""
FORWARD_COST_TOKENS = 64
"""The fixed cost of one forward pass, in padded tokens, that length grouping weighs chunks by."""
WIDTH_MULTIPLE = 32
"""Rows are padded to a multiple of this many tokens. Matmul libraries (oneDNN on a CPU, cuBLAS)
pick and cache a kernel per shape: fewer distinct shapes reuse them (measured: SmolLM2 steps on a
CPU 2.7 -> 2.35 s at batch 8), for a few padded tokens."""


class TokenizedPairLike(Protocol):
    prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]


@dataclass(frozen=True)
class SequenceBatch:
    """S right-padded token rows and the targets they score (one forward pass).

    Attributes:
        input_ids: ``[S, T]`` long; padding holds the pad token.
        position_ids: ``[S, T]`` long.
        segments: ``[S, T]`` int8: :data:`PAD`, :data:`PROMPT`, :data:`FIRST` or :data:`SECOND`.
        target_ids: ``[S, K]`` long, the scored tokens (0 where there is none).
        target_positions: ``[S, K]`` long, the positions whose logits predict them.
        target_pairs: ``[S, K]`` long, the pair (within the minibatch) of each target; -1: none.
        target_sides: ``[S, K]`` long, :data:`CHOSEN` or :data:`REJECTED`.
    """

    input_ids: Tensor
    position_ids: Tensor
    segments: Tensor
    target_ids: Tensor
    target_positions: Tensor
    target_pairs: Tensor
    target_sides: Tensor

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(
            *(getattr(self, f).to(device, non_blocking=True) for f in self.__dataclass_fields__)
        )

    @property
    def shares_prompts(self) -> bool:
        """Some row holds two responses after one prompt (it needs a 4D attention mask)."""
        return bool((self.segments == SECOND).any())

    def attention_mask(self) -> Tensor:
        """``[S, 1, T, T]`` bool, True where a query position may attend to a key position: causal,
        real keys only, never from the second response into the first; a padding position attends
        to itself only (no row of the mask is empty)."""
        segments = self.segments
        length = segments.shape[-1]
        causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
        query, key = segments.unsqueeze(-1), segments.unsqueeze(-2)
        allowed = causal & (key != PAD) & ~((query == SECOND) & (key == FIRST))
        allowed = allowed & (query != PAD)
        eye = torch.eye(length, dtype=torch.bool, device=segments.device)
        allowed = allowed | ((query == PAD) & eye)
        return allowed.unsqueeze(1)

    def padding_mask(self) -> Tensor:
        """``[S, T]`` long, 1 on real tokens (enough for rows without a second response)."""
        return (self.segments != PAD).long()


@dataclass(frozen=True)
class PairInputs:
    """The token rows of a minibatch of B pairs, in one or more forward passes (chunks).

    ``chosen_lengths`` / ``rejected_lengths``: ``[B]`` scored tokens of each response (EOS
    included; 0 for the rejected side of a chosen-only batch).
    """

    chunks: tuple[SequenceBatch, ...]
    num_pairs: int
    chosen_lengths: Tensor
    rejected_lengths: Tensor

    def to(self, device: torch.device | str) -> PairInputs:
        return PairInputs(
            tuple(c.to(device) for c in self.chunks),
            self.num_pairs,
            self.chosen_lengths.to(device),
            self.rejected_lengths.to(device),
        )

    @property
    def num_tokens(self) -> int:
        """Token slots over all chunks, padding included."""
        return sum(c.input_ids.numel() for c in self.chunks)


@dataclass(frozen=True)
class _Row:
    tokens: tuple[int, ...]
    segments: tuple[int, ...]
    positions: tuple[int, ...]
    targets: tuple[tuple[int, int, int, int], ...]
    """``(token id, position, pair, side)``."""


def _response_targets(
    response: Sequence[int], first_token_at: int, position: int, pair: int, side: int
) -> list[tuple[int, int, int, int]]:
    """Targets of a response placed at ``first_token_at`` whose first token is predicted at
    ``position`` and each later one at the previous token."""
    targets = [(response[0], position, pair, side)]
    targets += [(response[j], first_token_at + j - 1, pair, side) for j in range(1, len(response))]
    return targets


def pair_rows(
    pair: TokenizedPairLike, index: int, encoding: PairEncoding, chosen_only: bool = False
) -> list[_Row]:
    """The rows of one pair (number ``index`` of its minibatch) in ``encoding``."""
    prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
    n = len(prompt)
    first = _Row(
        tokens=(*prompt, *chosen),
        segments=(PROMPT,) * n + (FIRST,) * len(chosen),
        positions=tuple(range(n + len(chosen))),
        targets=tuple(_response_targets(chosen, n, n - 1, index, CHOSEN)),
    )
    if chosen_only:
        return [first]
    if encoding == "separate":
        second = _Row(
            tokens=(*prompt, *rejected),
            segments=(PROMPT,) * n + (FIRST,) * len(rejected),
            positions=tuple(range(n + len(rejected))),
            targets=tuple(_response_targets(rejected, n, n - 1, index, REJECTED)),
        )
        return [first, second]
    start = n + len(chosen)
    shared = _Row(
        tokens=(*first.tokens, *rejected),
        segments=first.segments + (SECOND,) * len(rejected),
        positions=first.positions + tuple(range(n, n + len(rejected))),
        targets=first.targets + tuple(_response_targets(rejected, start, n - 1, index, REJECTED)),
    )
    return [shared]


def length_chunks(
    lengths: Sequence[int], forward_cost: int = FORWARD_COST_TOKENS
) -> list[list[int]]:
    """Row indices grouped into chunks that minimise padded tokens + ``forward_cost`` per chunk.

    Rows are sorted by length (stable); a chunk is a run of consecutive sorted rows and costs
    ``rows * longest + forward_cost``. Exact dynamic programme, O(n^2) in the number of rows.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [lengths[i] for i in order]
    best = [0.0] + [float("inf")] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + (end - start) * sorted_lengths[end - 1] + forward_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    chunks, end = [], len(order)
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


def collate_rows(
    rows: Sequence[_Row], pad_token_id: int, width_multiple: int = WIDTH_MULTIPLE
) -> SequenceBatch:
    """Right-pad ``rows`` into one :class:`SequenceBatch` (on the CPU), to a multiple of
    ``width_multiple`` tokens."""
    width = max(len(r.tokens) for r in rows)
    width = -(-width // width_multiple) * width_multiple
    targets = max(len(r.targets) for r in rows)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    segments = torch.full(shape, PAD, dtype=torch.int8)
    target_ids = torch.zeros((len(rows), targets), dtype=torch.long)
    target_positions = torch.zeros((len(rows), targets), dtype=torch.long)
    target_pairs = torch.full((len(rows), targets), -1, dtype=torch.long)
    target_sides = torch.zeros((len(rows), targets), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.tokens)
        input_ids[i, :n] = torch.tensor(row.tokens)
        segments[i, :n] = torch.tensor(row.segments, dtype=torch.int8)
        # padding continues the positions, so that they stay inside the model's range
        last = max(row.positions) + 1
        position_ids[i, :n] = torch.tensor(row.positions)
        position_ids[i, n:] = torch.arange(last, last + width - n)
        if row.targets:
            ids, positions, pairs, sides = zip(*row.targets, strict=True)
            k = len(ids)
            target_ids[i, :k] = torch.tensor(ids)
            target_positions[i, :k] = torch.tensor(positions)
            target_pairs[i, :k] = torch.tensor(pairs)
            target_sides[i, :k] = torch.tensor(sides)
    return SequenceBatch(
        input_ids, position_ids, segments, target_ids, target_positions, target_pairs, target_sides
    )


def collate_pairs(
    pairs: Sequence[TokenizedPairLike],
    pad_token_id: int,
    *,
    encoding: PairEncoding = "shared_prompt",
    group_by_length: bool = True,
    chosen_only: bool = False,
    forward_cost: int = FORWARD_COST_TOKENS,
) -> PairInputs:
    """The rows of a minibatch of pairs, in length-grouped chunks (or one chunk); ``forward_cost``:
    the fixed cost of a pass that :func:`length_chunks` weighs chunks by."""
    rows = [row for i, p in enumerate(pairs) for row in pair_rows(p, i, encoding, chosen_only)]
    if group_by_length:
        groups = length_chunks([len(r.tokens) for r in rows], forward_cost)
        multiple = WIDTH_MULTIPLE
    else:  # one padded batch, as the step was before length grouping
        groups, multiple = [list(range(len(rows)))], 1
    chunks = tuple(
        collate_rows([rows[i] for i in group], pad_token_id, multiple) for group in groups
    )
    chosen_lengths = torch.tensor([len(p.chosen) for p in pairs])
    rejected = [0 if chosen_only else len(p.rejected) for p in pairs]
    return PairInputs(chunks, len(pairs), chosen_lengths, torch.tensor(rejected))
