"""Per-group evaluation of language-model policies: of a split, and of a checkpoint.

The metrics of docs/ALGORITHM.md#evaluation-metrics (Ramesh et al. 2024, arXiv:2405.20304).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from grpo_core import names
from grpo_core.data.storage import load_groups
from grpo_core.evaluation import (
    PairScores,
    group_metrics,
    pair_values,
    score_pairs,
    summarize,
    worst_group,
)
from grpo_core.lm.checkpoint import (
    RUN_JSON,
    CorruptCheckpointError,
    latest_checkpoint,
    latest_intact_checkpoint,
    load_model_weights,
    read_run_info,
    verify_checkpoint,
)
from grpo_core.lm.config import ModelConfig
from grpo_core.lm.dataset import LMPairDataset, uses_chat_template
from grpo_core.lm.policy import (
    CausalLMPolicy,
    add_lora,
    autocast_dtype,
    load_causal_lm,
)
from grpo_core.lm.recipe import TrainingRecipe
from grpo_core.lm.reference_cache import with_reference_logps
from grpo_core.lm.safe_loading import refuse_pickles
from grpo_core.lm.splits import load_tokenized_split
from grpo_core.lm.start_model import StartModel, model_fingerprint
from grpo_core.methods import LossType, loss_type_of
from grpo_core.progress import Progress, reporting


def split_metrics(
    policy: CausalLMPolicy,
    dataset: LMPairDataset,
    split: str,
    slugs: Sequence[str],
    *,
    beta: float,
    loss_type: LossType,
    batch_size: int,
    length_normalized: bool = False,
    progress: Progress | None = None,
    on_pairs: Callable[[dict[str, list]], None] | None = None,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Flat ``eval/<split>/...`` metrics and the raw per-group tensors (no gradients, no alpha).

    ``on_pairs`` receives the per-pair values (:func:`pair_document`), the evidence that
    promotion resamples.
    """
    scores = score_pairs(policy, reporting(dataset, f"evaluate {split}", progress), batch_size)
    raw = group_metrics(scores, dataset.num_groups, beta, loss_type, length_normalized)
    if on_pairs is not None:
        on_pairs(pair_document(scores, slugs, beta, loss_type, length_normalized))
    return summarize({k: v.cpu() for k, v in raw.items()}, slugs, split), raw


def pair_document(
    scores: PairScores,
    slugs: Sequence[str],
    beta: float,
    loss_type: LossType,
    length_normalized: bool = False,
) -> dict[str, list]:
    """The per-pair metrics with a direction, as JSON-ready lists: ``slugs``, ``group_ids`` and one
    list per metric of :data:`grpo_core.names.HIGHER_IS_BETTER` (non-finite values become None)."""
    values = pair_values(scores, beta, loss_type, length_normalized)
    document: dict[str, list] = {
        "slugs": list(slugs),
        "group_ids": scores.group_ids.cpu().tolist(),
    }
    for name in names.HIGHER_IS_BETTER:
        document[name] = [
            v if math.isfinite(v) else None for v in values[name].float().cpu().tolist()
        ]
    return document


def validation_value(raw: Mapping[str, torch.Tensor], metric: str, group_robust: bool) -> float:
    """What the plateau scheduler minimises: the worst group's ``metric`` for group-robust methods,
    the average over groups for the others; accuracies are negated (the scheduler minimises)."""
    values, counts = raw[metric].cpu(), raw[names.COUNT].cpu()
    higher = names.HIGHER_IS_BETTER[metric]
    if group_robust:
        value = float(worst_group(values, higher, counts)[0])
    else:
        value = float(values[counts > 0].mean())
    return -value if higher else value


UNKNOWN_TOKEN_LIMIT = 0.2
"""Above this share of response tokens unknown to the tokenizer, the scores say little."""


class DataMismatchError(ValueError):
    """The evaluation data does not suit the model (``strict`` evaluation refuses it)."""


def data_problems(
    dataset: LMPairDataset, tokenizer, groups: Sequence[str], trained_groups: Sequence[str] | None
) -> list[str]:
    """What makes an evaluation of ``dataset`` doubtful, each with its numbers (empty: nothing).

    - more than :data:`UNKNOWN_TOKEN_LIMIT` of the response tokens (EOS excluded) are the
      tokenizer's unknown token: the model cannot tell those responses apart;
    - the groups differ from those the model was trained on (``trained_groups``; None: unknown).
    """
    problems = []
    unknown = getattr(tokenizer, "unk_token_id", None)
    tokens = [t for p in dataset.pairs for t in (*p.chosen[:-1], *p.rejected[:-1])]
    if unknown is not None and tokens:
        share = sum(t == unknown for t in tokens) / len(tokens)
        if share > UNKNOWN_TOKEN_LIMIT:
            problems.append(
                f"{share:.0%} of the response tokens ({sum(t == unknown for t in tokens)} of "
                f"{len(tokens)}) are unknown to the model's tokenizer (limit "
                f"{UNKNOWN_TOKEN_LIMIT:.0%}): its scores cannot tell those responses apart"
            )
    if trained_groups is not None and set(groups) != set(trained_groups):
        new = sorted(set(groups) - set(trained_groups))
        missing = sorted(set(trained_groups) - set(groups))
        parts = [f"groups it was not trained on: {new}"] if new else []
        parts += [f"no data for groups it was trained on: {missing}"] if missing else []
        problems.append("the data's groups differ from the model's: " + "; ".join(parts))
    return problems


def finite_only(metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """``metrics`` without its non-finite values, and the keys dropped (never reported as results)."""
    kept = {k: v for k, v in metrics.items() if math.isfinite(v)}
    return kept, sorted(set(metrics) - set(kept))


def resolve_checkpoint(path: Path, warn: Callable[[str], None] = lambda m: None) -> Path:
    """A run folder -> its newest intact checkpoint (damaged ones are skipped with a warning); a
    checkpoint (verified against its manifest) or a model folder -> itself."""
    if (path / RUN_JSON).exists() or (path / "config.json").exists():
        verify_checkpoint(path)
        return path
    if latest_checkpoint(path) is None:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint, a model folder nor a run folder with checkpoints"
        )
    found, skipped = latest_intact_checkpoint(path)
    for message in skipped:
        warn(f"skipped a damaged checkpoint: {message}")
    if found is None:
        raise CorruptCheckpointError(
            f"no checkpoint in {path} is intact ({'; '.join(skipped[:2])})"
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
    strict: bool = False,
    on_warning: Callable[[str], None] | None = None,
    on_pairs: Callable[[dict[str, list]], None] | None = None,
) -> dict[str, float]:
    """Per-group metrics of a checkpoint on one split of a prepared data folder.

    The metrics of docs/ALGORITHM.md#evaluation-metrics.

    ``checkpoint_dir``: a run folder (its newest checkpoint), a checkpoint, or a plain model folder.
    For a checkpoint the reference is its run's starting model, and beta, loss type, ``max_length``
    and the chat template are the run's (``beta``/``loss_type`` override them). A plain model
    folder is its own reference (h = 0: only the log-prob accuracy is informative); it needs
    ``beta`` and ``loss_type``, or takes 0.1 and "ipo".

    Data that does not suit the model (:func:`data_problems`) is reported to ``on_warning``, or
    refused with :class:`DataMismatchError` when ``strict``. Metrics that are not finite are left
    out of the result (and reported the same way). ``on_pairs``: see :func:`split_metrics`.
    Returns flat ``eval/<split>/...`` keys (:func:`grpo_core.evaluation.summarize`).
    """
    warn = on_warning or (lambda message: None)
    device = torch.device(device)
    path = resolve_checkpoint(Path(checkpoint_dir), warn)
    refuse_pickles(path)
    groups = load_groups(data_dir)
    lora, trained_groups = None, None
    if (path / RUN_JSON).exists():
        info = read_run_info(path)
        trained_groups = info.get("group_names")
        recipe = TrainingRecipe.from_run_info(info)
        start = StartModel(info["start_model"], info["start_model_fingerprint"])
        if not Path(start.path).exists() and Path(start.path).is_absolute():
            raise FileNotFoundError(
                f"the run's starting model {start.path} is gone; re-create it (same cache) first"
            )
        if model_fingerprint(start.path) != start.fingerprint:
            raise ValueError(
                f"the starting model at {start.path} changed since the run; its reference is lost"
            )
        beta = recipe.loss.beta if beta is None else beta
        loss_type = loss_type_of(info["method"]) if loss_type is None else loss_type
        max_length, use_template, lora = (
            recipe.model.max_length,
            info["chat_template"],
            recipe.model.lora,
        )
        model_config, normalized = recipe.model, recipe.loss.length_normalized
    else:
        start = StartModel(str(path), model_fingerprint(path))
        beta, loss_type = (0.1 if beta is None else beta), (loss_type or "ipo")
        use_template, model_config, normalized = (
            None,
            ModelConfig(preset=None, path=str(path)),
            False,
        )
    model, tokenizer = load_causal_lm(
        start.path,
        trust_remote_code=model_config.trust_remote_code,
        attention=model_config.attention,
    )
    if use_template is None:
        use_template = uses_chat_template(tokenizer, chat_template)
    model.to(device)
    autocast = autocast_dtype(model_config.dtype, device)
    policy = CausalLMPolicy(model, device=device, autocast=autocast)
    data = load_tokenized_split(
        data_dir, split, groups, tokenizer, model_config,
        max_length=max_length, chat_template=use_template, device=device,
    )  # fmt: skip
    for problem in data_problems(data, tokenizer, groups.names, trained_groups):
        if strict:
            raise DataMismatchError(f"{data_dir} ({split}): {problem}")
        warn(f"{data_dir} ({split}): {problem}")
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
        policy, data, split, groups.slug_list, beta=beta, loss_type=loss_type,
        batch_size=batch_size, length_normalized=normalized, progress=progress, on_pairs=on_pairs,
    )  # fmt: skip
    flat, dropped = finite_only(flat)
    if dropped:
        warn(
            f"{len(dropped)} metrics were not finite and are not reported: {', '.join(dropped[:5])}"
        )
    return flat
