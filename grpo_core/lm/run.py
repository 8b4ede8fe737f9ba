"""Entry points of the language-model pipeline: SFT, training one method, evaluating a checkpoint.

These are pure functions of a :class:`~grpo_core.run_config.RunConfig`, a prepared data folder (what
``grpo_core.data`` writes: parquet splits and ``groups.json``), a device and a cache folder, so
that the CLI and the Prefect tasks (in a subprocess) call the same code. Nothing here prints: runs
report through :class:`RunCallback` and an optional ``progress(stage, done, total)`` function.

One run (spec section 6):
1. the starting model: the preset or path, then the SFT stage (cached, shared by every method/seed);
2. reference log-probs of every split with that frozen model (cached), then optional LoRA adapters;
3. the one training loop with the method's objective, validation for the plateau scheduler, and
   atomic checkpoints; ``resume`` continues from the newest one;
4. per-group metrics of the evaluation splits, written to ``metrics.json`` and returned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo_core.data.storage import GroupTable, load_groups, load_split
from grpo_core.evaluation import HIGHER_IS_BETTER, evaluate_policy, summarize, worst_group
from grpo_core.lm.checkpoint import (
    RUN_JSON,
    latest_checkpoint,
    load_model_weights,
    load_trainer_state,
    read_run_info,
    save_checkpoint,
)
from grpo_core.lm.dataset import LMPairDataset, tokenize_pairs, uses_chat_template
from grpo_core.lm.files import (
    atomic_directory,
    hash_folder,
    hash_json,
    refuse_pickles,
    write_json_atomic,
)
from grpo_core.lm.policy import (
    CausalLMPolicy,
    add_lora,
    autocast_dtype,
    load_causal_lm,
    load_tokenizer,
)
from grpo_core.lm.presets import base_model_dir
from grpo_core.lm.progress import Progress, reporting
from grpo_core.lm.reference_cache import with_reference_logps
from grpo_core.lm.sft import run_sft, sft_optim
from grpo_core.loop import StepRecord, TrainerState, train
from grpo_core.methods import LossType, Method, is_group_robust, loss_type_of
from grpo_core.objective import Objective
from grpo_core.run_config import RunConfig

METRICS_JSON = "metrics.json"
SFT_JSON = "sft.json"
TIMING_JSON = "timing.json"


class RunCallback:
    """What a run reports, as flat metric keys (``[a-z0-9_./-]``). Override what you need.

    Step keys: ``train/loss``, ``train/learning_rate``, ``train/group_step_size``,
    ``train/grad_norm``, ``train/group_loss/<slug>``, ``train/group_weight/<slug>``, ``train/group_coefficient/<slug>``.
    Validation keys: ``eval/validation/...`` from :func:`grpo_core.evaluation.summarize`.
    """

    def on_step(self, record: StepRecord, metrics: Mapping[str, float]) -> None:
        """After every optimizer step: ``train/...`` keys, or ``sft/loss``, ``sft/learning_rate``
        and ``sft/grad_norm`` in :func:`prepare_sft_model` (the mean chosen NLL per token)."""

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """After every validation the plateau scheduler acts on (``eval.every_steps``)."""

    def on_end(self, metrics: Mapping[str, float]) -> None:
        """Once, with the final metrics (the content of ``metrics.json``)."""


@dataclass(frozen=True)
class StartModel:
    """The model the preference stage starts from, which is also the frozen reference."""

    path: str
    fingerprint: str


def model_fingerprint(path: str | Path) -> str:
    """sha256 of a local model folder's weights and configs; a hub name stands for itself."""
    return hash_folder(path) if Path(path).is_dir() else hash_json({"hub": str(path)})


def step_metrics(record: StepRecord, slugs: Sequence[str]) -> dict[str, float]:
    """Flat ``train/...`` keys of one :class:`StepRecord` (unreplicated run)."""
    metrics = {
        "train/loss": float(record.loss),
        "train/learning_rate": float(record.learning_rate),
        "train/group_step_size": float(record.group_step_size),
    }
    if record.grad_norm is not None:
        metrics["train/grad_norm"] = float(record.grad_norm)
    for name, values in (
        ("group_loss", record.group_losses),
        ("group_weight", record.group_weights),
        ("group_coefficient", record.coefficients),
    ):
        for slug, value in zip(slugs, values.tolist(), strict=True):
            metrics[f"train/{name}/{slug}"] = value
    return metrics


def _chat_template(config: RunConfig, tokenizer) -> bool:
    # Conversational data rendered with the template when it was prepared must not get it twice.
    if config.data.format == "pairs" and config.data.pairs.chat_template:
        return False
    return uses_chat_template(tokenizer, config.model.chat_template)


def load_dataset(
    data_dir: str | Path,
    split: str,
    groups: GroupTable,
    tokenizer,
    *,
    max_length: int,
    chat_template: bool,
    device: torch.device,
) -> LMPairDataset:
    """Tokenised pairs of one prepared split, group ids in ``groups`` order."""
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
    return LMPairDataset(pairs, group_ids, len(groups.names), tokenizer.pad_token_id, device=device)


def _train_texts(data_dir: str | Path) -> list[str]:
    frame = load_split(data_dir, "train")
    return [*frame["prompt"], *frame["chosen"], *frame["rejected"]]


def prepare_sft_model(
    config: RunConfig,
    data_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    device: torch.device | str,
    cache_dir: str | Path,
    callbacks: Sequence[RunCallback] = (),
    progress: Progress | None = None,
) -> StartModel:
    """The model the preference stage starts from: the base model, fine-tuned on the chosen responses.

    Without SFT (``config.sft.enabled`` False) that is the base model itself. With LoRA the SFT stage
    trains adapters and merges them into the weights. The result is a plain folder, written
    atomically to ``output_dir`` or, by default, to ``<cache_dir>/sft/<key>``, where the key covers
    the base model, the tokenised training data (so ``max_length`` and the chat template), ``config.sft``,
    LoRA and the numerics; a folder that already holds the same key (``sft.json``) is returned at once.
    """
    device = torch.device(device)
    base = base_model_dir(config.model, _train_texts(data_dir), cache_dir)
    base_print = model_fingerprint(base)
    if not config.sft.enabled:
        return StartModel(base, base_print)
    tokenizer = load_tokenizer(base, trust_remote_code=config.model.trust_remote_code)
    data = load_dataset(
        data_dir, "train", load_groups(data_dir), tokenizer,
        max_length=config.model.max_length, chat_template=_chat_template(config, tokenizer), device=device,
    )  # fmt: skip
    autocast = autocast_dtype(config.model.dtype, device)
    key = hash_json(
        {
            "base": base_print,
            "data": data.fingerprint(),
            "sft": config.sft.model_dump(mode="json"),
            "lora": config.model.lora.model_dump(mode="json"),
            "max_grad_norm": config.optim.max_grad_norm,
            "numerics": [device.type, str(autocast)],
        }
    )
    target = Path(output_dir) if output_dir is not None else Path(cache_dir) / "sft" / key[:16]
    marker = target / SFT_JSON
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return StartModel(str(target), model_fingerprint(target))
    model, _ = load_causal_lm(base, trust_remote_code=config.model.trust_remote_code)
    model.to(device)
    if config.model.lora.enabled:
        model = add_lora(model, config.model.lora, seed=config.sft.seed)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    total = sft_optim(config.sft, data.num_pairs, config.optim.max_grad_norm).max_steps

    def report(record: StepRecord) -> None:
        metrics = {"sft/loss": float(record.loss), "sft/learning_rate": float(record.learning_rate)}
        if record.grad_norm is not None:
            metrics["sft/grad_norm"] = float(record.grad_norm)
        for callback in callbacks:
            callback.on_step(record, metrics)
        if progress is not None:
            progress("sft", record.step, total)

    run_sft(policy, data, config.sft, max_grad_norm=config.optim.max_grad_norm, callbacks=[report])
    if config.model.lora.enabled:
        model = model.merge_and_unload()
    model.to("cpu")
    with atomic_directory(target, replace=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SFT_JSON).write_text(
            json.dumps({"key": key, "base": base, "sft": config.sft.model_dump(mode="json")})
        )
    return StartModel(str(target), model_fingerprint(target))


def split_metrics(
    policy: CausalLMPolicy,
    dataset: LMPairDataset,
    split: str,
    slugs: Sequence[str],
    *,
    beta: float,
    loss_type: LossType,
    batch_size: int,
    progress: Progress | None = None,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Flat ``eval/<split>/...`` metrics and the raw per-group tensors (no gradients, no alpha)."""
    raw = evaluate_policy(
        policy,
        reporting(dataset, f"eval/{split}", progress),
        beta=beta,
        loss_type=loss_type,
        batch_size=batch_size,
    )
    return summarize({k: v.cpu() for k, v in raw.items()}, slugs, f"eval/{split}"), raw


def validation_value(raw: Mapping[str, torch.Tensor], metric: str, group_robust: bool) -> float:
    """What the plateau scheduler minimises: the worst group's ``metric`` for group-robust methods,
    the average over groups for the others; accuracies are negated (the scheduler minimises)."""
    values, counts = raw[metric].cpu(), raw["count"].cpu()
    higher = HIGHER_IS_BETTER[metric]
    if group_robust:
        value = float(worst_group(values, higher, counts)[0])
    else:
        value = float(values[counts > 0].mean())
    return -value if higher else value


def _needed_splits(config: RunConfig, final_splits: Sequence[str]) -> list[str]:
    splits = ["train"]
    if config.eval.every_steps is not None:
        splits.append("validation")
    splits += [s for s in final_splits if s not in splits]
    return splits


def train_method(
    config: RunConfig,
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
) -> dict[str, float]:
    """Train one method with one seed and return its final metrics (also in ``output_dir/metrics.json``).

    Args:
        config: the run config; ``config.methods`` and ``config.seeds`` are not read (the caller picks).
        method: e.g. "ipo" or "gr_ipo"; its learning rate is ``config.learning_rate_for(method)``.
        seed: seeds the minibatch order and dropout.
        data_dir: a prepared data folder (parquet splits, ``groups.json``).
        output_dir: where checkpoints (``checkpoints/step-*``), ``metrics.json`` and ``timing.json`` go.
        device: where the model runs (resolve "auto" before calling).
        cache_dir: models, SFT outputs and reference log-probs are cached under it.
        resume: continue from the newest checkpoint in ``output_dir`` (start afresh if there is none).
            Without it, an ``output_dir`` that holds a checkpoint is an error.
        callbacks: receive every step, every validation and the final metrics.
        progress: ``progress(stage, done, total)`` for progress bars.
        start_model: the SFT output to start from (from :func:`prepare_sft_model`); computed if None.
        final_splits: splits evaluated at the end (default ``config.eval.splits``; the pipeline
            passes ``()`` and evaluates each split in a task of its own).
    Returns:
        Flat metrics: ``eval/<split>/...`` for ``final_splits``, ``train/...`` of the last step,
        ``train/steps``, ``train/lr_cuts`` and ``train/stopped_early``.
    """
    device = torch.device(device)
    output_dir = Path(output_dir)
    found = latest_checkpoint(output_dir)
    if found is not None and not resume:
        raise FileExistsError(
            f"{output_dir} already holds a checkpoint ({found.name}); pass resume=True or use a new folder"
        )
    started = time.perf_counter()
    if start_model is None:
        start_model = prepare_sft_model(
            config,
            data_dir,
            device=device,
            cache_dir=cache_dir,
            callbacks=callbacks,
            progress=progress,
        )
    sft_seconds = time.perf_counter() - started
    groups = load_groups(data_dir)
    model, tokenizer = load_causal_lm(
        start_model.path, trust_remote_code=config.model.trust_remote_code
    )
    model.to(device)
    autocast = autocast_dtype(config.model.dtype, device)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    chat_template = _chat_template(config, tokenizer)
    datasets = {}
    final_splits = config.eval.splits if final_splits is None else tuple(final_splits)
    for split in _needed_splits(config, final_splits):
        data = load_dataset(
            data_dir,
            split,
            groups,
            tokenizer,
            max_length=config.model.max_length,
            chat_template=chat_template,
            device=device,
        )
        datasets[split] = with_reference_logps(
            policy,
            data,
            model_fingerprint=start_model.fingerprint,
            batch_size=config.eval.batch_size,
            cache_dir=cache_dir,
            progress=progress,
        )
    if config.model.lora.enabled:
        policy = CausalLMPolicy(
            add_lora(model, config.model.lora, seed=seed), device=device, autocast=autocast
        )

    objective = Objective.for_method(method, config.loss, config.group_weights)
    optim = config.optim.model_copy(update={"learning_rate": config.learning_rate_for(method)})
    info: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "method": method,
        "seed": seed,
        "start_model": start_model.path,
        "start_model_fingerprint": start_model.fingerprint,
        "chat_template": chat_template,
        "train_data_fingerprint": datasets["train"].fingerprint(),
        "group_names": list(groups.names),
        "group_slugs": list(groups.slug_list),
    }
    state: TrainerState | None = None
    last: dict[str, float] = {}
    if found is not None:
        saved = read_run_info(found)
        for key in (
            "config",
            "method",
            "seed",
            "start_model_fingerprint",
            "train_data_fingerprint",
        ):
            if saved[key] != info[key]:
                raise ValueError(f"cannot resume {found}: its {key} differs from this run's")
        load_model_weights(policy.model, found)
        state = load_trainer_state(found)
        last = dict(saved.get("last_step_metrics", {}))

    def on_step(record: StepRecord) -> None:
        last.clear()
        last.update(step_metrics(record, groups.slug_list))
        for callback in callbacks:
            callback.on_step(record, dict(last))
        if progress is not None:
            progress("train", record.step, optim.max_steps)

    def evaluate(step: int) -> float:
        flat, raw = split_metrics(
            policy, datasets["validation"], "validation", groups.slug_list,
            beta=objective.beta, loss_type=objective.loss_type, batch_size=config.eval.batch_size,
        )  # fmt: skip
        for callback in callbacks:
            callback.on_evaluation(step, flat)
        return validation_value(raw, config.eval.worst_group_metric, is_group_robust(method))

    def checkpoint(trainer_state: TrainerState) -> None:
        save_checkpoint(
            output_dir,
            trainer_state,
            policy.model,
            tokenizer,
            {**info, "last_step_metrics": dict(last)},
            keep=1,
        )

    steps_before = 0 if state is None else state.step
    train_started = time.perf_counter()
    result = train(
        policy,
        datasets["train"],
        objective,
        optim,
        seed=seed,
        evaluate=evaluate if config.eval.every_steps is not None else None,
        eval_every=config.eval.every_steps,
        callbacks=[on_step],
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        resume=state,
        history_every=max(1, optim.max_steps),
    )
    train_seconds = time.perf_counter() - train_started
    final = result.state
    assert final is not None
    metrics: dict[str, float] = dict(last)
    for slug, weight in zip(groups.slug_list, final.weights.alpha.cpu().tolist(), strict=True):
        metrics[f"train/group_weight/{slug}"] = weight
    metrics["train/steps"] = float(final.step)
    metrics["train/lr_cuts"] = float(final.lr_cuts)
    metrics["train/stopped_early"] = float(final.stopped_early)
    for split in final_splits:
        flat, _ = split_metrics(
            policy, datasets[split], split, groups.slug_list,
            beta=objective.beta, loss_type=objective.loss_type, batch_size=config.eval.batch_size, progress=progress,
        )  # fmt: skip
        metrics.update(flat)
    write_json_atomic(output_dir / METRICS_JSON, metrics)
    steps_run = final.step - steps_before
    write_json_atomic(
        output_dir / TIMING_JSON,
        {
            "start_model_seconds": sft_seconds,
            "train_seconds": train_seconds,
            "steps_run": steps_run,
            "seconds_per_step": train_seconds / steps_run if steps_run else None,
            "device": str(device),
        },
    )
    for callback in callbacks:
        callback.on_end(dict(metrics))
    return metrics


def _resolve_checkpoint(path: Path) -> Path:
    """A run folder -> its newest checkpoint; a checkpoint or a model folder -> itself."""
    if (path / RUN_JSON).exists() or (path / "config.json").exists():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint, a model folder nor a run folder with checkpoints"
        )
    return found


def evaluate_checkpoint(
    checkpoint_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    *,
    device: torch.device | str,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    beta: float | None = None,
    loss_type: LossType | None = None,
    max_length: int = 256,
    chat_template: str = "auto",
) -> dict[str, float]:
    """Per-group metrics (spec section 7) of a checkpoint on one split of a prepared data folder.

    ``checkpoint_dir``: a run folder (its newest checkpoint), a checkpoint, or a plain model folder.
    For a checkpoint the reference is its run's starting model, and beta, loss type, ``max_length``
    and the chat template are the run's (``beta``/``loss_type`` override them). A plain model
    folder is its own reference (h = 0: only the log-prob accuracy is informative); it needs
    ``beta`` and ``loss_type``, or takes 0.1 and "ipo".
    Returns flat ``eval/<split>/...`` keys (:func:`grpo_core.evaluation.summarize`).
    """
    device = torch.device(device)
    path = _resolve_checkpoint(Path(checkpoint_dir))
    refuse_pickles(path)
    groups = load_groups(data_dir)
    if (path / RUN_JSON).exists():
        info = read_run_info(path)
        run = RunConfig.model_validate(info["config"])
        start = StartModel(info["start_model"], info["start_model_fingerprint"])
        if not Path(start.path).exists() and Path(start.path).is_absolute():
            raise FileNotFoundError(
                f"the run's starting model {start.path} is gone; re-create it (same cache) first"
            )
        if model_fingerprint(start.path) != start.fingerprint:
            raise ValueError(
                f"the starting model at {start.path} changed since the run; its reference is lost"
            )
        beta = run.loss.beta if beta is None else beta
        loss_type = loss_type_of(info["method"]) if loss_type is None else loss_type
        max_length, use_template, lora = run.model.max_length, info["chat_template"], run.model.lora
        trust, dtype = run.model.trust_remote_code, run.model.dtype
    else:
        start = StartModel(str(path), model_fingerprint(path))
        beta, loss_type = (0.1 if beta is None else beta), (loss_type or "ipo")
        use_template, lora, trust, dtype = None, None, False, "auto"
    model, tokenizer = load_causal_lm(start.path, trust_remote_code=trust)
    if use_template is None:
        use_template = uses_chat_template(tokenizer, chat_template)
    model.to(device)
    autocast = autocast_dtype(dtype, device)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    data = load_dataset(
        data_dir,
        split,
        groups,
        tokenizer,
        max_length=max_length,
        chat_template=use_template,
        device=device,
    )
    data = with_reference_logps(
        policy,
        data,
        model_fingerprint=start.fingerprint,
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    if (path / RUN_JSON).exists():
        if lora is not None and lora.enabled:
            policy = CausalLMPolicy(add_lora(model, lora, seed=0), device=device, autocast=autocast)
        load_model_weights(policy.model, path)
    flat, _ = split_metrics(
        policy,
        data,
        split,
        groups.slug_list,
        beta=beta,
        loss_type=loss_type,
        batch_size=batch_size,
        progress=progress,
    )
    return flat
