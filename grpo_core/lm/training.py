"""Training one method with one seed on a causal language model: the pipeline's and the CLI's entry.

A pure function of a :class:`TrainingRecipe`, a prepared data folder (what ``grpo_core.data``
writes), a device and a cache folder. Nothing here prints: a run reports through
:class:`~grpo_core.lm.callbacks.RunCallback` and an optional ``progress(stage, done, total)``.

One run (as in the language-model experiments of Ramesh et al. 2024, arXiv:2405.20304;
docs/ALGORITHM.md#language-model-experiments):
1. the starting model (:mod:`grpo_core.lm.start_model`), shared by every method and seed;
2. reference log-probs of every split it needs with that frozen model (cached), then LoRA adapters;
3. the one training loop with the method's objective, validation for the plateau scheduler, and
   atomic checkpoints; ``resume`` continues from the newest one;
4. per-group metrics of the final splits, written to ``metrics.json`` and returned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo_core import names
from grpo_core.atomic import write_json_atomic
from grpo_core.config import flatten
from grpo_core.data.storage import GroupTable, load_groups
from grpo_core.distributed import DataParallel
from grpo_core.lm.callbacks import RunCallback, step_metrics
from grpo_core.lm.checkpoint import (
    CorruptCheckpointError,
    latest_checkpoint,
    latest_intact_checkpoint,
    load_model_weights,
    load_trainer_state,
    read_run_info,
    save_checkpoint,
)
from grpo_core.lm.dataset import LMPairDataset, uses_chat_template
from grpo_core.lm.evaluate import split_metrics, validation_value
from grpo_core.lm.policy import (
    CausalLMPolicy,
    add_lora,
    autocast_dtype,
    keep_frozen_weights_in,
    load_causal_lm,
)
from grpo_core.lm.recipe import TrainingRecipe
from grpo_core.lm.reference_cache import with_reference_logps
from grpo_core.lm.splits import load_tokenized_split
from grpo_core.lm.start_model import StartModel, prepare_sft_model
from grpo_core.lock import own_folder
from grpo_core.loop import StepRecord, TrainerState, train
from grpo_core.methods import Method, is_group_robust
from grpo_core.objective import Objective
from grpo_core.progress import Progress

METRICS_JSON = "metrics.json"
TIMING_JSON = "timing.json"
KEEP_CHECKPOINTS = 2
"""Checkpoints kept per run (the newest ones; every one was written from finite values)."""
RESUME_MAY_CHANGE = frozenset(
    {
        "checkpoint_every",
        "optim.max_steps",
        "eval.splits",
        "model.compile",
        "model.chunk_cost_tokens",
    }
)
"""Recipe fields a resumed run may change: none changes the steps already taken, nor the next ones
beyond float tolerance (compiling, and passes of other widths, round differently; a new chunk cost
also changes the reference cache key, so the resumed run scores its reference again)."""
RESUME_MUST_MATCH = (
    "recipe",
    "method",
    "seed",
    "start_model_fingerprint",
    "train_data_fingerprint",
)
"""What a checkpoint and the run resuming it must agree on."""


def train_method(
    recipe: TrainingRecipe,
    method: Method,
    seed: int,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    device: torch.device | str,
    cache_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[RunCallback] = (),
    progress: Progress | None = None,
    start_model: StartModel | None = None,
    final_splits: Sequence[str] | None = None,
    parallel: DataParallel | None = None,
) -> dict[str, float]:
    """Train ``method`` with ``seed``; return its final metrics (also in ``output_dir/metrics.json``).

    Args:
        recipe: model, SFT, loss, group weights, optimisation (with this method's learning rate)
            and evaluation.
        method: e.g. "ipo" or "gr_ipo".
        seed: seeds the minibatch order, LoRA's initial adapters and dropout.
        data_dir: a prepared data folder (parquet splits, ``groups.json``).
        output_dir: where checkpoints (``checkpoints/step-*``), ``metrics.json`` and ``timing.json`` go.
            The run owns it meanwhile (:func:`grpo_core.lock.own_folder`): while another live
            process trains into it, :class:`grpo_core.lock.FolderInUse` names that process.
        device: where the model runs (resolve "auto" before calling).
        cache_dir: models, SFT outputs and reference log-probs are cached under it.
        resume: continue from the newest checkpoint in ``output_dir`` (start afresh if there is none).
            Without it, an ``output_dir`` that holds a checkpoint is an error.
        callbacks: receive every step, every validation and the final metrics.
        progress: ``progress(stage, done, total)`` for progress bars.
        start_model: the starting model (:func:`prepare_sft_model`); prepared here if None.
        final_splits: splits evaluated at the end (default ``recipe.eval.splits``; the pipeline
            passes ``()`` and evaluates each split in a task of its own).
        parallel: data parallelism over ranks (:mod:`grpo_core.distributed`, e.g. under
            ``torchrun``): rank 0 prepares the cached starting model and reference log-probs while
            the others wait, then every rank trains on its shard of each minibatch; only rank 0
            writes checkpoints, ``metrics.json`` and ``timing.json``.
    Returns:
        Flat metrics: ``eval/<split>/...`` of ``final_splits``, ``train/...`` of the last step, and
        ``train/steps``, ``train/lr_cuts`` and ``train/stopped_early``.
    """
    device = torch.device(device)
    output_dir = Path(output_dir)
    main = parallel is None or parallel.is_main
    # the run folder has one owner: two runs into it at once would mix their checkpoints
    with own_folder(output_dir) if main else contextlib.nullcontext() as note:
        if note is not None:
            for callback in callbacks:
                callback.on_warning(note)
        return _train_owned(
            recipe, method, seed, data_dir, output_dir,
            device=device, cache_dir=cache_dir, resume=resume, callbacks=callbacks,
            progress=progress, start_model=start_model, final_splits=final_splits,
            parallel=parallel,
        )  # fmt: skip


def _train_owned(
    recipe: TrainingRecipe,
    method: Method,
    seed: int,
    data_dir: str | Path,
    output_dir: Path,
    *,
    device: torch.device,
    cache_dir: str | Path,
    resume: bool,
    callbacks: Sequence[RunCallback],
    progress: Progress | None,
    start_model: StartModel | None,
    final_splits: Sequence[str] | None,
    parallel: DataParallel | None,
) -> dict[str, float]:
    """:func:`train_method` in a run folder this process owns."""
    found = latest_checkpoint(output_dir)
    if found is not None and not resume:
        raise FileExistsError(
            f"{output_dir} already holds a checkpoint ({found.name}); resume it (grpo train --resume) "
            "or use a new output folder"
        )
    main = parallel is None or parallel.is_main
    started = time.perf_counter()
    if start_model is None:
        with _main_rank_first(parallel, device):
            start_model = prepare_sft_model(
                recipe.model, recipe.sft, data_dir,
                max_grad_norm=recipe.optim.max_grad_norm, prompts_rendered=recipe.prompts_rendered,
                device=device, cache_dir=cache_dir, callbacks=callbacks, progress=progress,
            )  # fmt: skip
    start_seconds = time.perf_counter() - started
    final_splits = recipe.eval.splits if final_splits is None else tuple(final_splits)
    with _main_rank_first(parallel, device):
        run = _MethodRun.start(
            recipe, method, seed, data_dir, output_dir, start_model, final_splits,
            device=device, cache_dir=cache_dir, callbacks=callbacks, progress=progress,
        )  # fmt: skip
    state = None
    if found is not None:
        intact, skipped = latest_intact_checkpoint(output_dir)
        for message in skipped:
            for callback in callbacks:
                callback.on_warning(f"skipped a damaged checkpoint: {message}")
        if intact is None:
            raise CorruptCheckpointError(
                f"no checkpoint in {output_dir} is intact ({'; '.join(skipped[:2])}); "
                "train again in a new output folder"
            )
        state = run.resume_from(intact)
    steps_before = 0 if state is None else state.step
    train_started = time.perf_counter()
    result = train(
        run.policy,
        run.datasets["train"],
        run.objective,
        recipe.optim,
        seed=seed,
        evaluate=run.evaluate if recipe.eval.every_steps is not None else None,
        eval_every=recipe.eval.every_steps,
        callbacks=[run.on_step],
        checkpoint=run.checkpoint,
        checkpoint_every=recipe.checkpoint_every,
        resume=state,
        history_every=max(1, recipe.optim.max_steps),
        parallel=parallel,
    )
    train_seconds = time.perf_counter() - train_started
    assert result.state is not None
    metrics = run.final_metrics(result.state, final_splits)
    if not main:
        return metrics
    write_json_atomic(output_dir / METRICS_JSON, metrics)
    steps_run = result.state.step - steps_before
    pairs = steps_run * recipe.optim.grad_accum_steps * (recipe.optim.batch_size or 0)
    write_json_atomic(
        output_dir / TIMING_JSON,
        {
            "start_model_seconds": start_seconds,
            "train_seconds": train_seconds,
            "steps_run": steps_run,
            "seconds_per_step": train_seconds / steps_run if steps_run else None,
            "pairs_per_second": pairs / train_seconds if steps_run else None,
            **peak_memory(device),
            "device": str(device),
            "processes": parallel.world_size if parallel is not None else 1,
        },
    )
    for callback in callbacks:
        callback.on_end(dict(metrics))
    return metrics


@contextlib.contextmanager
def _main_rank_first(parallel: DataParallel | None, device: torch.device) -> Iterator[None]:
    """Rank 0 runs the block first (it fills the caches); the other ranks wait for it, then run
    the block themselves and find the caches full."""
    if parallel is None:
        yield
        return
    if not parallel.is_main:
        parallel.all_reduce(torch.zeros(1, device=device))  # wait for rank 0
    yield
    if parallel.is_main:
        parallel.all_reduce(torch.zeros(1, device=device))  # rank 0 is done: release the others


def peak_memory(device: torch.device) -> dict[str, float]:
    """The process's peak resident memory (``peak_rss_gb``), and on CUDA the peak allocated by torch
    (``peak_cuda_gb``), in GB. Wall times above include the periodic validation and checkpoints."""
    import resource
    import sys

    scale = 1e9 if sys.platform == "darwin" else 1e6  # ru_maxrss: bytes on macOS, KB elsewhere
    out = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale}
    if device.type == "cuda":
        out["peak_cuda_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return out


def recipe_changes(saved: TrainingRecipe, current: TrainingRecipe) -> list[str]:
    """``field old -> new`` for every recipe field that differs, except :data:`RESUME_MAY_CHANGE`."""
    before, after = flatten(saved), flatten(current)
    return [
        f"{key} {before.get(key)} -> {after.get(key)}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and key not in RESUME_MAY_CHANGE
    ]


@dataclass
class _MethodRun:
    """One method's policy, scored datasets and reporting, as the training loop's callbacks see them."""

    recipe: TrainingRecipe
    policy: CausalLMPolicy
    tokenizer: Any
    datasets: dict[str, LMPairDataset]
    groups: GroupTable
    objective: Objective
    group_robust: bool
    output_dir: Path
    info: dict[str, Any]
    callbacks: Sequence[RunCallback]
    progress: Progress | None
    last: dict[str, float]

    @classmethod
    def start(
        cls,
        recipe: TrainingRecipe,
        method: Method,
        seed: int,
        data_dir: str | Path,
        output_dir: Path,
        start_model: StartModel,
        final_splits: Sequence[str],
        *,
        device: torch.device,
        cache_dir: str | Path,
        callbacks: Sequence[RunCallback],
        progress: Progress | None,
    ) -> _MethodRun:
        """Load the starting model, score the reference log-probs, attach LoRA adapters."""
        groups = load_groups(data_dir)
        model, tokenizer = load_causal_lm(
            start_model.path,
            trust_remote_code=recipe.model.trust_remote_code,
            attention=recipe.model.attention,
        )
        model.to(device)
        autocast = autocast_dtype(recipe.model.dtype, device)
        policy = CausalLMPolicy(model, device=device, autocast=autocast)
        chat_template = uses_chat_template(
            tokenizer, recipe.model.chat_template, prompts_rendered=recipe.prompts_rendered
        )
        needed = ["train"]
        if recipe.eval.every_steps is not None:
            needed.append("validation")
        needed += [s for s in final_splits if s not in needed]
        datasets = {}
        for split in needed:
            data = load_tokenized_split(
                data_dir, split, groups, tokenizer, recipe.model,
                max_length=recipe.model.max_length, chat_template=chat_template, device=device,
            )  # fmt: skip
            datasets[split] = with_reference_logps(
                policy, data, model_fingerprint=start_model.fingerprint,
                batch_size=recipe.eval.batch_size, cache_dir=cache_dir, progress=progress,
            )  # fmt: skip
        if recipe.model.lora.enabled:
            model = add_lora(model, recipe.model.lora, seed=seed)
            keep_frozen_weights_in(model, autocast)
        if recipe.model.lora.enabled or recipe.model.compile:
            policy = CausalLMPolicy(
                model, device=device, autocast=autocast, compile=recipe.model.compile
            )
        info = {
            "recipe": recipe.model_dump(mode="json"),
            "method": method,
            "seed": seed,
            "start_model": start_model.path,
            "start_model_fingerprint": start_model.fingerprint,
            "chat_template": chat_template,
            "train_data_fingerprint": datasets["train"].fingerprint(),
            "group_names": list(groups.names),
            "group_slugs": list(groups.slug_list),
        }
        return cls(
            recipe=recipe,
            policy=policy,
            tokenizer=tokenizer,
            datasets=datasets,
            groups=groups,
            objective=Objective.for_method(method, recipe.loss, recipe.group_weights),
            group_robust=is_group_robust(method),
            output_dir=output_dir,
            info=info,
            callbacks=callbacks,
            progress=progress,
            last={},
        )

    def resume_from(self, checkpoint: Path) -> TrainerState:
        """Load a checkpoint's weights and loop state, after checking it belongs to this run."""
        saved = read_run_info(checkpoint)
        changed = recipe_changes(TrainingRecipe.from_run_info(saved), self.recipe)
        changed += [
            f"{key} {saved[key]!r} -> {self.info[key]!r}"
            for key in RESUME_MUST_MATCH
            if key != "recipe" and saved[key] != self.info[key]
        ]
        if changed:
            raise ValueError(
                f"cannot resume {checkpoint}: it was trained with other settings ({'; '.join(changed[:4])}"
                f"{'; ...' if len(changed) > 4 else ''}); use the same ones, or a new output folder"
            )
        load_model_weights(self.policy.model, checkpoint)
        self.last.update(saved.get("last_step_metrics", {}))
        return load_trainer_state(checkpoint)

    def on_step(self, record: StepRecord) -> None:
        self.last.clear()
        self.last.update(step_metrics(record, self.groups.slug_list))
        for callback in self.callbacks:
            callback.on_step(record, dict(self.last))
        if self.progress is not None:
            self.progress("train", record.step, self.recipe.optim.max_steps)

    def evaluate(self, step: int) -> float:
        """Validate for the plateau scheduler (and the callbacks); the value it minimises."""
        flat, raw = self.split_metrics("validation")
        for callback in self.callbacks:
            callback.on_evaluation(step, flat)
        return validation_value(raw, self.recipe.eval.worst_group_metric, self.group_robust)

    def checkpoint(self, state: TrainerState) -> None:
        save_checkpoint(
            self.output_dir,
            state,
            self.policy.model,
            self.tokenizer,
            {**self.info, "last_step_metrics": dict(self.last)},
            keep=KEEP_CHECKPOINTS,
        )

    def split_metrics(self, split: str, progress: Progress | None = None):
        return split_metrics(
            self.policy, self.datasets[split], split, self.groups.slug_list,
            beta=self.objective.beta, loss_type=self.objective.loss_type,
            batch_size=self.recipe.eval.batch_size,
            length_normalized=self.objective.length_normalized, progress=progress,
        )  # fmt: skip

    def final_metrics(self, state: TrainerState, splits: Sequence[str]) -> dict[str, float]:
        """The last step's keys, the final alpha, the outcome of training and each split's metrics."""
        metrics: dict[str, float] = dict(self.last)
        alpha = state.weights.alpha.cpu().tolist()
        for slug, weight in zip(self.groups.slug_list, alpha, strict=True):
            metrics[names.train_group_key("group_weight", slug)] = weight
        metrics[names.TRAIN_STEPS] = float(state.step)
        metrics[names.TRAIN_LR_CUTS] = float(state.lr_cuts)
        metrics[names.TRAIN_STOPPED_EARLY] = float(state.stopped_early)
        for split in splits:
            metrics.update(self.split_metrics(split, self.progress)[0])
        return metrics
