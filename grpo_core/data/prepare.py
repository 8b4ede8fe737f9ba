"""From a :class:`DataConfig` to grouped, split, validated pairs on disk.

:func:`build_dataset` does the work in memory: read (or generate), validate, select and rename
groups, make pairs, split per group, check group sizes. :func:`prepare_dataset` writes the result
atomically (see :mod:`grpo_core.data.storage`) and returns a small summary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_core.data.chat import ChatTemplateTokenizer
from grpo_core.data.config import DataConfig
from grpo_core.data.opinions import SOURCE_LABEL, generate_opinion_survey
from grpo_core.data.pairs import pairs_from_records
from grpo_core.data.raters import choices_as_pairs, pairs_view, with_group_columns
from grpo_core.data.readers import open_source
from grpo_core.data.schema import SPLITS, PreferencePair
from grpo_core.data.selection import GroupSelector
from grpo_core.data.splits import assign_splits
from grpo_core.data.stats import imbalance_ratio, split_counts, unique_slugs
from grpo_core.data.storage import (
    FILES_KEY,
    GROUPS_FILE,
    QUARANTINE_FILE,
    SPLIT_FILES,
    SUMMARY_FILE,
    check_replaceable,
    split_file_records,
    write_atomically,
    write_json,
    write_jsonl,
    write_pairs_table,
)
from grpo_core.data.survey import (
    SurveyRow,
    check_duplicate_row,
    pairs_from_survey_rows,
    survey_rows_from_records,
)
from grpo_core.data.validation import (
    GROUP_TOO_SMALL,
    DataValidationError,
    Location,
    RecordProblem,
    Rejection,
    RejectionLog,
    count_reasons,
    quarantine_policy,
)


@dataclass(frozen=True)
class GroupedPairs:
    """Validated pairs split per group, with everything that was not kept."""

    source: str
    groups: tuple[str, ...]
    """Group names in group-id order."""
    slugs: dict[str, str]
    """``{name: slug}``."""
    splits: dict[str, list[PreferencePair]]
    """``{split: pairs}``, ordered by group id, then source order."""
    rejections: tuple[Rejection, ...]
    dropped_groups: dict[str, str]
    """Groups left out, with why (e.g. too small for the splits)."""
    rows_outside_groups: int
    """Rows of groups that were not selected (counted, not rejected)."""
    pairs_below_min_groups: int = 0
    """Pairs dropped because fewer than ``min_groups_per_question`` groups have their question."""

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """``{group: {split: pairs}}``."""
        return split_counts(
            self.groups, ((p.group, s) for s, ps in self.splits.items() for p in ps)
        )

    @property
    def rejected_rows(self) -> dict[str, int]:
        """Rejected records per reason."""
        return count_reasons(self.rejections)


@dataclass(frozen=True)
class PreparedData:
    """What :func:`prepare_dataset` wrote (small, safe to pass between pipeline tasks)."""

    out_dir: Path
    source: str
    format: str
    groups: tuple[str, ...]
    slugs: dict[str, str]
    """``{slug: name}``."""
    counts: dict[str, dict[str, int]]
    imbalance_ratio: float
    rejected_rows: dict[str, int]
    dropped_groups: dict[str, str]
    rows_outside_groups: int
    pairs_below_min_groups: int = 0

    @property
    def totals(self) -> dict[str, int]:
        """Pairs per split over all groups, and ``pairs`` in all."""
        totals = {split: sum(c[split] for c in self.counts.values()) for split in SPLITS}
        return {**totals, "pairs": sum(totals.values())}

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` (and CLI ``--json``) document."""
        slug_of = {name: slug for slug, name in self.slugs.items()}
        return {
            "groups": {name: {"slug": slug_of[name], **self.counts[name]} for name in self.groups},
            "total": self.totals,
            "rejected_rows": dict(self.rejected_rows),
            "dropped_groups": dict(self.dropped_groups),
            "rows_outside_selected_groups": self.rows_outside_groups,
            "pairs_below_min_groups": self.pairs_below_min_groups,
            "imbalance_ratio": self.imbalance_ratio,
            "quarantine": QUARANTINE_FILE,
            "source": self.source,
            "format": self.format,
        }


def _collect_pairs(
    config: DataConfig,
    log: RejectionLog,
    selector: GroupSelector,
    *,
    chat_template_tokenizer: ChatTemplateTokenizer | None = None,
) -> tuple[str, list[PreferencePair]]:
    """Read (or generate) and validate the source: ``(source label, pairs in source order)``."""
    if config.format == "synthetic":
        survey = generate_opinion_survey(config.synthetic, seed=config.seed)
        rows = _selected_rows(survey.rows, selector, log)
        return SOURCE_LABEL, list(pairs_from_survey_rows(rows, config, log))
    source = open_source(config.path or "", config.file_type, config.hf_split)
    if config.format == "survey":
        rows = survey_rows_from_records(source, config, selector, log)
        return source.label, list(pairs_from_survey_rows(rows, config, log))
    if config.format == "raters":
        records = choices_as_pairs(source, config, log)
        pairs = pairs_from_records(records, pairs_view(config), selector, log, votes=True)
        return source.label, list(pairs)
    if config.intersectional:
        source, config = with_group_columns(source, config, log), pairs_view(config)
    pairs = pairs_from_records(source, config, selector, log, chat_template_tokenizer)
    return source.label, list(pairs)


def load_pairs(
    config: DataConfig, *, chat_template_tokenizer: ChatTemplateTokenizer | None = None
) -> tuple[list[PreferencePair], tuple[Rejection, ...]]:
    """Validated pairs of the selected groups, unsplit, in source order, and the rejections.

    Raises:
        DataValidationError: an invalid record the policy does not quarantine, or a selected
            group that does not occur.
    """
    _, pairs, log, _ = _load(config, chat_template_tokenizer)
    return pairs, tuple(log.rejections)


def build_dataset(
    config: DataConfig, *, chat_template_tokenizer: ChatTemplateTokenizer | None = None
) -> GroupedPairs:
    """Validated pairs of the configured source, split per group.

    Args:
        config: the data section of the run config.
        chat_template_tokenizer: renders conversational prompts when ``config.pairs.chat_template``.
    Raises:
        DataValidationError: an invalid record (unless quarantined), a selected group that does
            not occur, a group too small for the splits, or no pair left at all.
    """
    source, pairs, log, selector = _load(config, chat_template_tokenizer)
    pairs, below = _shared_questions(pairs, config.min_groups_per_question)
    if below and not pairs:
        raise DataValidationError(
            f"{source}: no question has pairs of {config.min_groups_per_question} or more groups "
            f"(data.min_groups_per_question); all {below} pairs were dropped"
        )
    candidates = selector.order(selector.seen, first_seen=config.format == "synthetic")
    split_names = assign_splits(
        pairs, config.split, seed=config.seed, by_question=config.split_by_question
    )
    counts = split_counts(candidates, zip((p.group for p in pairs), split_names, strict=True))
    dropped = _drop_small_groups(pairs, counts, config, log, source)
    groups = tuple(name for name in candidates if name not in dropped)
    if not pairs and not log.rejections:
        raise DataValidationError(f"{source}: the source holds no records (an empty file?)")
    if len(groups) == 1 and not config.allow_single_group:
        raise DataValidationError(
            f"{source}: only one group ({groups[0]}) has pairs; group-robust training needs two or "
            "more. Check the group column, or set data.allow_single_group: true "
            "(grpo data prepare --allow-single-group) to prepare it anyway"
        )
    if not groups:
        raise DataValidationError(
            f"{source}: no group has enough valid pairs for the splits {config.split} "
            f"(rejected rows per reason: {log.counts() or 'none'}; "
            f"dropped groups: {dropped or 'none'})"
        )
    group_id = {name: i for i, name in enumerate(groups)}
    splits: dict[str, list[PreferencePair]] = {split: [] for split in SPLITS}
    for pair, split in sorted(
        ((p, s) for p, s in zip(pairs, split_names, strict=True) if p.group in group_id),
        key=lambda item: group_id[item[0].group],
    ):
        splits[split].append(pair)
    return GroupedPairs(
        source=source,
        groups=groups,
        slugs=unique_slugs(groups),
        splits=splits,
        rejections=tuple(log.rejections),
        dropped_groups=dropped,
        rows_outside_groups=selector.outside,
        pairs_below_min_groups=below,
    )


def prepare_dataset(
    config: DataConfig,
    out_dir: str | Path,
    *,
    chat_template_tokenizer: ChatTemplateTokenizer | None = None,
) -> PreparedData:
    """Build the dataset and write it to ``out_dir`` atomically (nothing is written on error).

    Writes ``train/validation/test.parquet``, ``groups.json`` (group names in group-id order,
    ``slugs`` {slug: name}, ``counts``, ``imbalance_ratio`` = max/min train pairs, the config, and
    each split file's rows and sha256),
    ``summary.json`` (:meth:`PreparedData.summary`) and ``quarantine.jsonl``.

    Raises:
        DataValidationError: see :func:`build_dataset`.
        FileExistsError: ``out_dir`` holds something other than a prepared dataset.
    """
    out_dir = Path(out_dir)
    check_replaceable(out_dir)
    data = build_dataset(config, chat_template_tokenizer=chat_template_tokenizer)
    counts = data.counts
    prepared = PreparedData(
        out_dir=out_dir,
        source=data.source,
        format=config.format,
        groups=data.groups,
        slugs={slug: name for name, slug in data.slugs.items()},
        counts=counts,
        imbalance_ratio=imbalance_ratio(counts),
        rejected_rows=data.rejected_rows,
        dropped_groups=data.dropped_groups,
        rows_outside_groups=data.rows_outside_groups,
        pairs_below_min_groups=data.pairs_below_min_groups,
    )
    groups_document = {
        "groups": list(data.groups),
        "slugs": prepared.slugs,
        "counts": counts,
        "totals": prepared.totals,
        "imbalance_ratio": prepared.imbalance_ratio,
        "split": list(config.split),
        "split_by_question": config.split_by_question,
        "seed": config.seed,
        "format": config.format,
        "source": data.source,
        "data_config": config.model_dump(mode="json"),
    }

    def write(folder: Path) -> None:
        for split, file_name in SPLIT_FILES.items():
            write_pairs_table(folder / file_name, data.splits[split])
        groups_document[FILES_KEY] = split_file_records(folder)
        write_json(folder / GROUPS_FILE, groups_document)
        write_json(folder / SUMMARY_FILE, prepared.summary())
        write_jsonl(folder / QUARANTINE_FILE, (r.as_json() for r in data.rejections))

    write_atomically(out_dir, write)
    return prepared


def _load(
    config: DataConfig, tokenizer: ChatTemplateTokenizer | None
) -> tuple[str, list[PreferencePair], RejectionLog, GroupSelector]:
    if config.format == "pairs" and config.pairs.chat_template and tokenizer is None:
        raise ValueError("pairs.chat_template is on but no chat_template_tokenizer was given")
    log = RejectionLog(quarantine_policy(config.on_invalid, config.format))
    selector = GroupSelector(config.groups, config.group_map, config.merge_label_variants)
    source, pairs = _collect_pairs(config, log, selector, chat_template_tokenizer=tokenizer)
    selector.check_found(source, config.group_field)
    return source, pairs, log, selector


def _shared_questions(
    pairs: list[PreferencePair], min_groups: int
) -> tuple[list[PreferencePair], int]:
    """The pairs whose question at least ``min_groups`` groups have pairs for, in order, and how
    many pairs were dropped (``DataConfig.min_groups_per_question``)."""
    if min_groups <= 1:
        return pairs, 0
    groups_of: dict[str, set[str]] = {}
    for pair in pairs:
        groups_of.setdefault(pair.question_id, set()).add(pair.group)
    kept = [p for p in pairs if len(groups_of[p.question_id]) >= min_groups]
    return kept, len(pairs) - len(kept)


def _selected_rows(
    rows: tuple[SurveyRow, ...], selector: GroupSelector, log: RejectionLog
) -> Iterator[SurveyRow]:
    seen: dict[tuple[str, str], Location] = {}
    for row in rows:
        group = selector.resolve(row.group, row.location)
        if group is None:
            continue
        try:
            check_duplicate_row(row.question_id, group, row.location, "group", seen)
        except RecordProblem as problem:
            record = {"question_id": row.question_id, "group": row.group}
            log.reject(problem.reason, row.location, problem.field, problem.message, record)
            continue
        yield dataclasses.replace(row, group=group)


def _drop_small_groups(
    pairs: list[PreferencePair],
    counts: dict[str, dict[str, int]],
    config: DataConfig,
    log: RejectionLog,
    source: str,
) -> dict[str, str]:
    """Groups with fewer than ``min_pairs_per_split`` pairs in a split of non-zero fraction.

    Quarantined (each pair rejected as ``group_too_small``) or raised, as the policy says.
    """
    dropped: dict[str, str] = {}
    needed = {
        s: config.min_pairs_per_split for s, f in zip(SPLITS, config.split, strict=True) if f > 0
    }
    for group, by_split in counts.items():
        total = sum(by_split.values())
        if total < config.min_group_pairs:  # a small cell: dropped and reported, never an error
            why = f"group {group!r} has {total} valid pairs, fewer than min_group_pairs={config.min_group_pairs}"
            log.rejections += [
                Rejection(GROUP_TOO_SMALL, p.location, config.group_field, why, p.as_row())
                for p in pairs
                if p.group == group
            ]
            dropped[group] = why
            continue
        short = {s: by_split[s] for s in needed if by_split[s] < needed[s]}
        if not short:
            continue
        why = (
            f"group {group!r} has {total} valid pairs, split {dict(by_split)}: fewer than "
            f"{config.min_pairs_per_split} in {sorted(short)} for split fractions {config.split}"
        )
        members = [p for p in pairs if p.group == group]
        if not log.quarantines(GROUP_TOO_SMALL):
            raise DataValidationError(
                f"{source}, {_places(members)}, field '{config.group_field}': "
                f"{why}; select fewer groups, change split, or set data.on_invalid: quarantine "
                "(--on-invalid quarantine) "
                f"[{GROUP_TOO_SMALL}]",
                reason=GROUP_TOO_SMALL,
                field=config.group_field,
            )
        for pair in members:
            log.reject(GROUP_TOO_SMALL, pair.location, config.group_field, why, pair.as_row())
        dropped[group] = why
    return dropped


def _places(pairs: list[PreferencePair], shown: int = 5) -> str:
    """E.g. "lines 3, 9 and 4 more" for the places of a group's pairs."""
    if not pairs:
        return "no valid rows"
    plural = {"line": "lines", "row": "rows (0-based)", "item": "items (0-based)"}
    kind = plural.get(pairs[0].location.kind, "generated rows (0-based)")
    places = ", ".join(str(p.location.index) for p in pairs[:shown])
    more = f" and {len(pairs) - shown} more" if len(pairs) > shown else ""
    return f"{kind} {places}{more}"
