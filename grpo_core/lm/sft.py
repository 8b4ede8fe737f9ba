"""The SFT stage: the chosen-response NLL, trained by the one training loop.

SFT precedes preference training in the paper's language-model experiments
(docs/ALGORITHM.md#language-model-experiments).

The loop's ``loss_fn`` hook swaps the preference loss for the per-pair, per-token negative
log-likelihood of the chosen response. With the "size" weighting and the unbiased estimator the loop
then minimises the plain minibatch mean: sum_g (N_g/N) * N/(B N_g) * sum_{i in g} l_i = mean_i l_i.
No alpha moves and no reference is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor

from grpo_core.config import OptimConfig, PlateauConfig
from grpo_core.lm.config import SFTConfig
from grpo_core.lm.dataset import LMPairDataset
from grpo_core.lm.policy import CausalLMPolicy
from grpo_core.loop import StepRecord, TrainResult, train
from grpo_core.losses import sft_loss
from grpo_core.objective import Objective
from grpo_core.policy import PairBatch

SFT_OBJECTIVE = Objective(loss_type="dpo", weighting="size", beta=1.0)
"""Plain mean over pairs; loss_type and beta are unused by :func:`chosen_nll`."""


def chosen_nll(policy: CausalLMPolicy, batch: PairBatch, objective: Objective) -> Tensor:
    """``[B]`` mean NLL per token of each chosen response (EOS included); ``batch.inputs`` holds the
    chosen rows only (:meth:`LMPairDataset.sft_view`)."""
    logps, _ = policy.pair_logps(batch.inputs)
    return sft_loss(logps, batch.chosen_lengths.to(logps.device))


def sft_optim(sft: SFTConfig, num_pairs: int, max_grad_norm: float | None) -> OptimConfig:
    """AdamW at the SFT learning rate for ``epochs`` passes (at least one step), no plateau cuts."""
    batch_size = min(sft.batch_size, num_pairs)
    steps = max(1, math.floor(sft.epochs * num_pairs / batch_size))
    return OptimConfig(
        optimizer="adamw",
        learning_rate=sft.learning_rate,
        batch_size=batch_size,
        max_steps=steps,
        max_grad_norm=max_grad_norm,
        plateau=PlateauConfig(enabled=False),
    )


def run_sft(
    policy: CausalLMPolicy,
    data: LMPairDataset,
    sft: SFTConfig,
    *,
    max_grad_norm: float | None = None,
    callbacks: Sequence[Callable[[StepRecord], None]] = (),
) -> TrainResult:
    """Fine-tune ``policy`` in place on the chosen responses of ``data`` (the training pairs)."""
    optim = sft_optim(sft, data.num_pairs, max_grad_norm)
    return train(
        policy,
        data.sft_view(),
        SFT_OBJECTIVE,
        optim,
        seed=sft.seed,
        callbacks=callbacks,
        loss_fn=chosen_nll,
    )
