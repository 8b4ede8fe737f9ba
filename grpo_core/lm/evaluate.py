"""Per-group evaluation of language-model policies: of a split, and of a checkpoint.

The metrics of docs/ALGORITHM.md#evaluation-metrics (Ramesh et al. 2024, arXiv:2405.20304).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    MANIFEST,
    NO_SPACE,
    RUN_JSON,
    STATE_JSON,
    STATE_TENSORS,
    CheckpointGoneError,
    CorruptCheckpointError,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    load_model_weights,
    read_run_info,
    snapshot_checkpoint,
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
from grpo_core.lm.safe_loading import (
    UntrustedCheckpointError,
    refuse_pickles,
    refuse_untrusted_code,
)
from grpo_core.lm.splits import load_tokenized_split
from grpo_core.lm.start_model import StartModel, has_fingerprint, model_fingerprint
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


@dataclass(frozen=True)
class EvaluatedCheckpoint:
    """What an evaluation scored: the folder it read and the training step it holds (None for a
    plain model folder, which is its own reference)."""

    path: str
    step: int | None


CHECKPOINT_STEP = "checkpoint/step"
"""The key under which a report of an evaluation names the step of the checkpoint it scored."""

SCORING_SKIPS = frozenset({STATE_TENSORS})
"""Checkpoint files an evaluation checks but does not copy: the optimizer state is not scored."""

MAX_ROTATIONS = 5
"""How often a run folder's newest checkpoint may be rotated away under an evaluation before it
gives up (a run writes a checkpoint at most every step)."""


def is_checkpoint(path: Path) -> bool:
    """A checkpoint folder (what :func:`save_checkpoint` writes), even one missing some files."""
    return any((path / name).exists() for name in (RUN_JSON, MANIFEST, STATE_JSON))


def hold_checkpoint(
    path: Path, into: Path, warn: Callable[[str], None] = lambda m: None
) -> EvaluatedCheckpoint:
    """Copy the checkpoint to evaluate into the empty folder ``into`` (:func:`snapshot_checkpoint`),
    so that everything read afterwards comes from one consistent checkpoint.

    ``path``: a checkpoint (copied), a plain model folder (read in place: its own reference) or a
    run folder, whose newest intact checkpoint is copied; damaged ones are skipped with a warning,
    and one the run deletes while it is copied is replaced by the newest one then.

    Raises:
        CheckpointGoneError: the checkpoint ``path`` was deleted while it was copied, or a run
            folder's checkpoints kept being rotated away.
        CorruptCheckpointError: a damaged or incomplete checkpoint (the file is named), or no
            intact checkpoint in a run folder.
    """
    if is_checkpoint(path):
        snapshot_checkpoint(path, into, check_only=SCORING_SKIPS)
        return EvaluatedCheckpoint(str(path), checkpoint_step(into))
    if (path / "config.json").exists():
        return EvaluatedCheckpoint(str(path), None)
    if latest_checkpoint(path) is None:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint, a model folder nor a run folder with checkpoints"
        )
    damaged: dict[Path, str] = {}
    for _ in range(MAX_ROTATIONS):
        candidates = [c for c in reversed(list_checkpoints(path)) if c not in damaged]
        for candidate in candidates:
            shutil.rmtree(into, ignore_errors=True)
            into.mkdir()
            try:
                snapshot_checkpoint(candidate, into, check_only=SCORING_SKIPS)
            except CorruptCheckpointError as error:
                damaged[candidate] = str(error)
                warn(f"skipped a damaged checkpoint: {error}")
                continue
            except CheckpointGoneError:
                break  # rotated away: start again from the newest
            return EvaluatedCheckpoint(str(candidate), checkpoint_step(into))
        else:
            if not damaged:
                raise CheckpointGoneError(f"no checkpoint is left in {path}")
            reasons = "; ".join(list(damaged.values())[:2])
            raise CorruptCheckpointError(f"no checkpoint in {path} is intact ({reasons})")
    raise CheckpointGoneError(
        f"the checkpoints of {path} were deleted {MAX_ROTATIONS} times while being read: the run "
        "rotates them faster than they can be copied; evaluate one checkpoint it keeps, or wait "
        "until it has finished"
    )


def trusted_start_model(
    info: Mapping, checkpoint: Path, cache_dir: str | Path | None, given: str | Path | None
) -> StartModel:
    """The starting model a checkpoint's ``run.json`` names, if it may be used, at the fingerprint
    recorded there.

    Only folders inside the checkpoint or the cache folder (where the pipeline puts the models it
    prepares) are taken from ``run.json``; any other folder, or a hub name, only when the user
    names it (``given``): a checkpoint made elsewhere must not pick what gets loaded.

    Raises:
        UntrustedCheckpointError: the recorded model lies elsewhere and ``given`` is None.
        FileNotFoundError: the starting model is gone.
        ValueError: its files differ from the recorded fingerprint.
    """
    recorded = str(info["start_model"])
    if given is None:
        folder = Path(recorded).resolve()
        homes = [checkpoint.resolve()] + ([Path(cache_dir).resolve()] if cache_dir else [])
        if not any(folder.is_relative_to(home) for home in homes):
            where = f"the cache folder {cache_dir}" if cache_dir else "a cache folder"
            raise UntrustedCheckpointError(
                f"{checkpoint}: its starting model {recorded} lies outside the checkpoint and "
                f"{where}; evaluate with the cache the run used (grpo evaluate --cache-dir), or, "
                f"if you trust that model, name it yourself (grpo evaluate --start-model)"
            )
    start = StartModel(
        str(given if given is not None else recorded), info["start_model_fingerprint"]
    )
    # a name given that is no folder here may be a hub name: its fingerprint says if it is the run's
    if not Path(start.path).exists() and (given is None or Path(start.path).is_absolute()):
        raise FileNotFoundError(
            f"the run's starting model {start.path} is gone; re-create it (same cache) first"
        )
    if not has_fingerprint(start.path, start.fingerprint):
        raise ValueError(
            f"the starting model at {start.path} changed since the run; its reference is lost"
        )
    return start


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
    trust_remote_code: bool = False,
    start_model: str | Path | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_pairs: Callable[[dict[str, list]], None] | None = None,
    on_checkpoint: Callable[[EvaluatedCheckpoint], None] | None = None,
) -> dict[str, float]:
    """Per-group metrics of a checkpoint on one split of a prepared data folder.

    The metrics of docs/ALGORITHM.md#evaluation-metrics.

    ``checkpoint_dir``: a run folder (its newest checkpoint), a checkpoint, or a plain model folder.
    A checkpoint is first copied (:func:`hold_checkpoint`, into a temporary folder: ``TMPDIR``), so
    a run that is still training may delete it meanwhile; ``on_checkpoint`` then learns which one
    and its step.
    For a checkpoint the reference is its run's starting model (:func:`trusted_start_model`;
    ``start_model`` names it instead), and beta, loss type, ``max_length`` and the chat template
    are the run's (``beta``/``loss_type`` override them). A plain model folder is its own reference
    (h = 0: only the log-prob accuracy is informative); it needs ``beta`` and ``loss_type``, or
    takes 0.1 and "ipo".

    ``trust_remote_code``: let transformers run the model folder's own Python code. Only the
    caller grants it: a checkpoint whose ``run.json`` asks for it is refused without it
    (:class:`UntrustedCheckpointError`).

    Data that does not suit the model (:func:`data_problems`) is reported to ``on_warning``, or
    refused with :class:`DataMismatchError` when ``strict``. Metrics that are not finite are left
    out of the result (and reported the same way). ``on_pairs``: see :func:`split_metrics`.
    Returns flat ``eval/<split>/...`` keys (:func:`grpo_core.evaluation.summarize`).
    """
    warn = on_warning or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="grpo-evaluate-") as held:
        try:
            chosen = hold_checkpoint(Path(checkpoint_dir), Path(held), warn)
        except OSError as error:
            if error.errno not in NO_SPACE:
                raise
            raise OSError(
                f"no room to copy the checkpoint of {checkpoint_dir} into {held} "
                f"({error.strerror}): free space there, or point TMPDIR at a folder with room"
            ) from error
        if on_checkpoint is not None:
            on_checkpoint(chosen)
        path = Path(held) if chosen.step is not None else Path(chosen.path)
        return _evaluate_held(
            path, Path(chosen.path), data_dir, split, device=torch.device(device),
            batch_size=batch_size, cache_dir=cache_dir, progress=progress, beta=beta,
            loss_type=loss_type, max_length=max_length, chat_template=chat_template,
            strict=strict, trust_remote_code=trust_remote_code, start_model=start_model,
            warn=warn, on_pairs=on_pairs,
        )  # fmt: skip


def _evaluate_held(
    path: Path,
    source: Path,
    data_dir: str | Path,
    split: str,
    *,
    device: torch.device,
    batch_size: int,
    cache_dir: str | Path | None,
    progress: Progress | None,
    beta: float | None,
    loss_type: LossType | None,
    max_length: int,
    chat_template: str,
    strict: bool,
    trust_remote_code: bool,
    start_model: str | Path | None,
    warn: Callable[[str], None],
    on_pairs: Callable[[dict[str, list]], None] | None,
) -> dict[str, float]:
    """:func:`evaluate_checkpoint` of the held copy ``path`` of ``source`` (or of a model folder)."""
    refuse_pickles(path)
    groups = load_groups(data_dir)
    lora, trained_groups = None, None
    checkpoint = (path / RUN_JSON).exists()
    if checkpoint:
        info = read_run_info(path)
        trained_groups = info.get("group_names")
        recipe = TrainingRecipe.from_run_info(info)
        refuse_untrusted_code(
            recipe.model.trust_remote_code, trust_remote_code, source, "--trust-remote-code"
        )
        start = trusted_start_model(info, source, cache_dir, start_model)
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
    # the caller's word alone decides whether the model folder's own code may run
    model, tokenizer = load_causal_lm(
        start.path, trust_remote_code=trust_remote_code, attention=model_config.attention
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
    if checkpoint:
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
