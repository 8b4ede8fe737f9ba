"""The one training loop: every method (plain, importance-sampled, group robust), every policy.

One optimizer step is Algorithm 1 of Ramesh et al. 2024, "Group Robust Preference Optimization in
Reward-free RLHF" (https://arxiv.org/abs/2405.20304; written out in
docs/ALGORITHM.md#the-group-weight-update-mirror-ascent). For each of ``grad_accum_steps``
microbatches m of B pairs drawn uniformly from the training pairs:

1. per-pair losses l_i from the policy's and the reference's log-probs;
2. group-loss estimates Lhat_g (``estimate_group_losses``);
3. group-robust methods only: alpha <- mirror ascent on Lhat (detached);
4. theta loss = sum_g c_g Lhat_g with the NEW alpha (``theta_group_coefficients``), backward;

then gradient clipping and the optimizer step. With ``grad_accum_steps > 1`` alpha moves once per
microbatch, as in the paper's reference code (its eta_alpha is quoted per microbatch of 8).

The loop knows nothing of logging: it reports every step to callbacks and returns its history.
Leading "replica" dims (independent problems such as seeds) pass through untouched; the scalar
that is differentiated is the SUM over replicas, so each replica gets its own gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from grpo_core.config import OptimConfig
from grpo_core.distributed import DataParallel
from grpo_core.groups import (
    GroupWeights,
    estimate_group_losses,
    mirror_ascent_step,
    theta_group_coefficients,
)
from grpo_core.losses import log_ratio_margin, pair_loss, pair_weights
from grpo_core.objective import Objective
from grpo_core.policy import PairBatch, PairDataset, Policy, group_sizes_of
from grpo_core.sampling import EpochSampler, SamplerPosition


@dataclass(frozen=True)
class StepRecord:
    """What happened in one optimizer step (tensors detached, on the CPU).

    ``loss``: ``[...]`` theta loss (mean over microbatches); ``group_losses``: ``[..., K]`` the
    estimates Lhat_g (mean over microbatches); ``group_weights``: ``[..., K]`` alpha after the step;
    ``coefficients``: ``[..., K]`` the c_g the theta loss used; ``learning_rate``: current eta_theta;
    ``step_size``: the eta_alpha in force (a tensor when replicas have their own).
    """

    step: int
    loss: Tensor
    group_losses: Tensor
    group_weights: Tensor
    coefficients: Tensor
    learning_rate: float
    step_size: float | Tensor
    grad_norm: float | None = None


@dataclass(frozen=True)
class EvalRecord:
    """A validation result the plateau scheduler acted on."""

    step: int
    value: float
    learning_rate: float
    lr_cut: bool


@dataclass(frozen=True)
class TrainerState:
    """Everything needed to continue a run exactly where it stopped (all plain data and tensors).

    ``optimizer`` and ``scheduler`` are the ``state_dict()`` of the torch objects.
    """

    step: int
    weights: GroupWeights
    sampler: SamplerPosition
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    step_size: float | Tensor
    lr_cuts: int
    rng_state: Tensor
    stopped_early: bool = False
    cuda_rng_state: Tensor | None = None


@dataclass
class TrainResult:
    """The returned history (every ``history_every``-th step) and the final state."""

    history: list[StepRecord] = field(default_factory=list)
    evaluations: list[EvalRecord] = field(default_factory=list)
    state: TrainerState | None = None
    stopped_early: bool = False


class NonFiniteError(FloatingPointError):
    """Training met a value that is not finite; it stops at that step, before anything is saved.

    ``step`` is the optimizer step being computed, ``quantity`` what was not finite.
    """

    def __init__(self, step: int, quantity: str, value: float):
        self.step, self.quantity, self.value = step, quantity, value
        super().__init__(
            f"training stopped at step {step}: the {quantity} is not finite ({value}); nothing of "
            "this step was saved. Lower optim.learning_rate and train again, or check the data"
        )


def check_finite(step: int, quantity: str, tensors: Sequence[Tensor]) -> None:
    """Raise :class:`NonFiniteError` when any element of ``tensors`` is NaN or infinite."""
    for tensor in tensors:
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            raise NonFiniteError(step, quantity, float(tensor[bad].flatten()[0]))


Evaluate = Callable[[int], float]
"""Called with the step number; returns the validation value the plateau scheduler minimises."""


def make_optimizer(
    params: Sequence[torch.nn.Parameter], optim: OptimConfig
) -> torch.optim.Optimizer:
    """Plain gradient descent (``sgd``) or AdamW with the section's learning rate and weight decay."""
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)


def batch_losses(policy: Policy, batch: PairBatch, objective: Objective) -> Tensor:
    """Per-pair losses of a minibatch, ``[..., B]`` (docs/ALGORITHM.md#per-pair-losses)."""
    chosen, rejected = policy.pair_logps(batch.inputs)
    lengths = (batch.chosen_lengths, batch.rejected_lengths) if objective.length_normalized else ()
    margin = log_ratio_margin(chosen, rejected, batch.ref_chosen, batch.ref_rejected, *lengths)
    return pair_loss(margin, objective.beta, objective.loss_type, objective.flip)


def train(
    policy: Policy,
    data: PairDataset,
    objective: Objective,
    optim: OptimConfig,
    *,
    seed: int,
    evaluate: Evaluate | None = None,
    eval_every: int | None = None,
    callbacks: Sequence[Callable[[StepRecord], None]] = (),
    checkpoint: Callable[[TrainerState], None] | None = None,
    checkpoint_every: int | None = None,
    resume: TrainerState | None = None,
    history_every: int = 1,
    loss_fn: Callable[[Policy, PairBatch, Objective], Tensor] = batch_losses,
    initial_weights: GroupWeights | None = None,
    parallel: DataParallel | None = None,
) -> TrainResult:
    """Train ``policy`` on ``data`` with ``objective`` for ``optim.max_steps`` optimizer steps.

    Args:
        policy: the policy; its :meth:`trainable_parameters` are optimised in place.
        data: the training pairs; N and N_g for the estimator are counted on it.
        objective: the method (loss type, group weighting, alpha step).
        optim: optimiser, batch size, accumulation, clipping, plateau scheduler.
        seed: seeds the minibatch order and torch's RNG (dropout), inside a forked RNG scope.
        evaluate: validation callback for the plateau scheduler, called every ``eval_every`` steps.
        callbacks: called with every :class:`StepRecord` (logging, progress bars).
        checkpoint: called with a :class:`TrainerState` every ``checkpoint_every`` steps and at the end.
        resume: a state from :func:`checkpoint` to continue from (the policy's weights must already
            be the ones saved with it).
        history_every: keep every n-th step record in the returned history (1: all).
        loss_fn: per-pair losses of a batch; the SFT stage swaps in the chosen-response NLL.
        initial_weights: alpha at step 0 (default uniform, the paper's). With a robust objective, a
            zero step size and alpha fixed at N_g/N or 1/K, a replica trains the plain or
            importance-sampled method: one call can then train a whole method family.
        parallel: data parallelism over ranks (:mod:`grpo_core.distributed`): this rank scores its
            shard of every global minibatch; group-loss sums and gradients are summed over ranks,
            so alpha and the parameters stay the same on every rank; only rank 0 checkpoints.
    Returns:
        :class:`TrainResult` with the history, the validations and the final state.
    """
    # Refuse what cannot train before anything moves; N_g is counted once, on the training pairs.
    params, group_sizes = _checked_inputs(policy, data, objective, optim, parallel)
    # Optimizer, plateau scheduler, alpha, eta_alpha and sampler: fresh, or as `resume` left them.
    run = _start(params, data, objective, optim, seed, group_sizes, initial_weights, resume)
    all_reduce = parallel.all_reduce if parallel is not None else None
    writes = checkpoint is not None and (parallel is None or parallel.is_main)
    result = TrainResult()
    with _seeded_rng(seed, resume, run.device):
        policy.train(True)
        while run.step < optim.max_steps and not run.stopped:
            # Algorithm 1 on each microbatch: l_i, Lhat_g, alpha by mirror ascent, theta backward.
            totals = None
            for _ in range(optim.grad_accum_steps):
                batch = _next_batch(data, run.sampler, parallel)
                parts = _microbatch_backward(
                    policy, batch, objective, loss_fn, group_sizes, run,
                    optim.grad_accum_steps, all_reduce,
                )  # fmt: skip
                totals = parts if totals is None else totals + parts
            # One theta step on the accumulated gradient: all-reduced, clipped, finite.
            grad_norm = _theta_step(run, params, optim, parallel, totals)
            run.step += 1
            # Report every step; keep every history_every-th one (and the last) in the history.
            record = _step_record(run, totals, optim.grad_accum_steps, grad_norm)
            for callback in callbacks:
                callback(record)
            if run.step % history_every == 0 or run.step == optim.max_steps:
                result.history.append(record)
            # Validation feeds the plateau scheduler: it may cut eta_theta (and eta_alpha), or stop.
            if evaluate is not None and eval_every and run.step % eval_every == 0:
                value = evaluate(run.step)
                policy.train(True)  # the evaluation may have switched dropout off
                result.evaluations.append(
                    _plateau_step(run, value, optim, objective.halve_step_on_lr_cut)
                )
            # A checkpoint every checkpoint_every steps (rank 0 only): everything to resume exactly.
            if writes and checkpoint_every and run.step % checkpoint_every == 0:
                checkpoint(run.snapshot())
        # The final state, saved unless the last step's checkpoint already holds it.
        result.stopped_early = run.stopped
        result.state = run.snapshot()
        if writes and not (checkpoint_every and run.step % checkpoint_every == 0):
            checkpoint(result.state)
    return result


def _checked_inputs(
    policy: Policy,
    data: PairDataset,
    objective: Objective,
    optim: OptimConfig,
    parallel: DataParallel | None,
) -> tuple[list[torch.nn.Parameter], Tensor]:
    """The parameters theta to train and the group sizes N_g (``[..., K]``), after refusing a run
    the loop cannot train (with a message that says what to change)."""
    params = [p for p in policy.trainable_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the policy has no trainable parameters")
    group_sizes = group_sizes_of(data)
    if optim.batch_size is not None and optim.batch_size > data.num_pairs:
        raise ValueError(
            f"optim.batch_size {optim.batch_size} is larger than the {data.num_pairs} training pairs; "
            "lower it, or set it to null for full-batch steps"
        )
    if optim.max_grad_norm is not None and data.group_ids[..., 0].numel() > 1:
        raise ValueError(
            "gradient clipping takes one norm over all replicas: set max_grad_norm=None with replicas"
        )
    batch_size = data.num_pairs if optim.batch_size is None else optim.batch_size
    if parallel is not None and batch_size < parallel.world_size:
        raise ValueError(
            f"a minibatch of {batch_size} pairs cannot be shared by {parallel.world_size} "
            "ranks; raise optim.batch_size or use fewer processes"
        )
    if parallel is not None and parallel.world_size > 1 and objective.reweights_pairs:
        raise ValueError(
            "dr_dpo and kl_dpo weight the pairs of the whole minibatch, which is not shared over "
            f"{parallel.world_size} processes yet: train them in one process"
        )
    return params, group_sizes


@dataclass
class _Run:
    """What moves while training: what a :class:`TrainerState` saves and a resume restores."""

    step: int
    weights: GroupWeights
    step_size: float | Tensor
    lr_cuts: int
    stopped: bool
    sampler: EpochSampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    device: torch.device

    @property
    def learning_rate(self) -> float:
        """eta_theta in force."""
        return self.optimizer.param_groups[0]["lr"]

    def snapshot(self) -> TrainerState:
        """The state now, to continue from exactly here (torch's RNG included)."""
        return TrainerState(
            step=self.step,
            weights=self.weights,
            sampler=self.sampler.position,
            # Copies: the optimizer keeps updating its own tensors after the snapshot.
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            scheduler=(
                copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None
            ),
            step_size=self.step_size,
            lr_cuts=self.lr_cuts,
            rng_state=torch.get_rng_state(),
            cuda_rng_state=(
                torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
            ),
            stopped_early=self.stopped,
        )


def _start(
    params: list[torch.nn.Parameter],
    data: PairDataset,
    objective: Objective,
    optim: OptimConfig,
    seed: int,
    group_sizes: Tensor,
    initial_weights: GroupWeights | None,
    resume: TrainerState | None,
) -> _Run:
    """Step 0 (alpha uniform, the paper's, unless ``initial_weights``; eta_alpha the objective's),
    or the step ``resume`` saved."""
    device = params[0].device
    optimizer = make_optimizer(params, optim)
    scheduler = None
    if optim.plateau.enabled:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=optim.plateau.factor, patience=optim.plateau.patience
        )
    batch_shape = tuple(group_sizes.shape[:-1]) or tuple(data.group_ids.shape[:-1])
    weights = GroupWeights.uniform(data.num_groups, batch_shape=batch_shape, device=device)
    if initial_weights is not None:
        weights = GroupWeights(initial_weights.log_alpha.to(device).expand_as(weights.log_alpha))
    position = SamplerPosition() if resume is None else resume.sampler
    sampler = EpochSampler(data.num_pairs, optim.batch_size, seed, position)
    run = _Run(0, weights, objective.step_size, 0, False, sampler, optimizer, scheduler, device)
    if resume is not None:
        optimizer.load_state_dict(copy.deepcopy(resume.optimizer))  # torch would share the tensors
        if scheduler is not None and resume.scheduler is not None:
            scheduler.load_state_dict(copy.deepcopy(resume.scheduler))
        run.step, run.step_size, run.lr_cuts = resume.step, resume.step_size, resume.lr_cuts
        run.weights = GroupWeights(resume.weights.log_alpha.to(device))
        run.stopped = resume.stopped_early
    return run


@contextmanager
def _seeded_rng(seed: int, resume: TrainerState | None, device: torch.device) -> Iterator[None]:
    """torch's RNG (dropout) seeded with ``seed``, or as ``resume`` saved it, in a forked scope."""
    # torch.manual_seed reseeds every CUDA device too: fork them all so the caller's state survives.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if resume is None:
            torch.manual_seed(seed)
        else:
            torch.set_rng_state(resume.rng_state)
            if resume.cuda_rng_state is not None and device.type == "cuda":
                torch.cuda.set_rng_state(resume.cuda_rng_state, device)
        yield


def _next_batch(
    data: PairDataset, sampler: EpochSampler, parallel: DataParallel | None
) -> PairBatch:
    """The next uniform minibatch; with data parallelism, this rank's shard of it."""
    indices = sampler.next_indices()
    if parallel is not None:
        indices = parallel.shard(indices)
    return data.batch(indices.to(data.group_ids.device))


@dataclass(frozen=True)
class _Sums:
    """Detached sums over a step's microbatches: theta loss ``[...]``, Lhat and c ``[..., K]``."""

    loss: Tensor
    group_losses: Tensor
    coefficients: Tensor

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(
            self.loss + other.loss,
            self.group_losses + other.group_losses,
            self.coefficients + other.coefficients,
        )


def _microbatch_backward(
    policy: Policy,
    batch: PairBatch,
    objective: Objective,
    loss_fn: Callable[[Policy, PairBatch, Objective], Tensor],
    group_sizes: Tensor,
    run: _Run,
    grad_accum_steps: int,
    all_reduce: Callable[[Tensor], Tensor] | None,
) -> _Sums:
    """Algorithm 1 on one microbatch: l_i, Lhat_g, alpha by mirror ascent (``run.weights`` moves,
    robust methods only), then the backward pass of the theta loss sum_g c_g Lhat_g, divided by
    ``grad_accum_steps`` so that the accumulated gradient is the microbatches' mean."""
    losses = loss_fn(policy, batch, objective)
    if objective.reweights_pairs:  # dr_dpo, kl_dpo: weights over this batch
        losses = losses * pair_weights(
            losses, objective.pair_sign, objective.pair_temperature, objective.pair_weight_cap
        )
    group_losses = estimate_group_losses(
        losses, batch.group_ids, group_sizes, objective.estimator, all_reduce=all_reduce
    )
    if objective.updates_weights:
        run.weights = mirror_ascent_step(run.weights, group_losses, run.step_size)
    coefficients = theta_group_coefficients(
        objective.weighting, group_sizes, run.weights, objective.robust_mix
    )
    loss = (coefficients * group_losses).sum(-1)
    (loss.sum() / grad_accum_steps).backward()
    return _Sums(loss.detach(), group_losses.detach(), coefficients.detach())


def _theta_step(
    run: _Run,
    params: list[torch.nn.Parameter],
    optim: OptimConfig,
    parallel: DataParallel | None,
    totals: _Sums,
) -> float | None:
    """The optimizer step of step ``run.step + 1`` on the accumulated gradient; returns the gradient
    norm before clipping (None without clipping). Nothing non-finite goes into the step or out of it,
    so the caller saves nothing of a bad step."""
    step = run.step + 1
    check_finite(step, "loss", [totals.loss])
    check_finite(step, "group loss estimate", [totals.group_losses])
    check_finite(step, "group weight", [run.weights.log_alpha])
    if parallel is not None:  # the global batch's gradient on every rank
        for p in params:
            if p.grad is not None:
                p.grad.copy_(parallel.all_reduce(p.grad))
    grad_norm = None
    if optim.max_grad_norm is not None:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, optim.max_grad_norm))
    check_finite(step, "gradient", [p.grad for p in params if p.grad is not None])
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    check_finite(step, "parameter", [p.detach() for p in params])
    return grad_norm


def _step_record(
    run: _Run, totals: _Sums, grad_accum_steps: int, grad_norm: float | None
) -> StepRecord:
    """The :class:`StepRecord` of the step just taken: microbatch means, alpha after the step."""
    return StepRecord(
        step=run.step,
        loss=(totals.loss / grad_accum_steps).cpu(),
        group_losses=(totals.group_losses / grad_accum_steps).cpu(),
        group_weights=run.weights.alpha.detach().cpu(),
        coefficients=(totals.coefficients / grad_accum_steps).cpu(),
        learning_rate=run.learning_rate,
        step_size=run.step_size,
        grad_norm=grad_norm,
    )


def _plateau_step(
    run: _Run, value: float, optim: OptimConfig, halve_step_on_lr_cut: bool
) -> EvalRecord:
    """Hand a validation ``value`` to the plateau scheduler (if enabled). A learning-rate cut is
    counted, halves eta_alpha when the objective asks, and stops the run at ``plateau.max_cuts``."""
    cut = False
    if run.scheduler is not None:
        before = run.learning_rate
        run.scheduler.step(value)
        cut = run.learning_rate < before
    if cut:
        run.lr_cuts += 1
        if halve_step_on_lr_cut:
            run.step_size = run.step_size / 2  # a new value: the objective's stays as given
        max_cuts = optim.plateau.max_cuts
        run.stopped = max_cuts is not None and run.lr_cuts >= max_cuts
    return EvalRecord(run.step, value, run.learning_rate, cut)
