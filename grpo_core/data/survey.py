"""Survey rows become preference pairs as in the paper (Ramesh et al. 2024, arXiv:2405.20304,
https://arxiv.org/abs/2405.20304; docs/ALGORITHM.md#language-model-experiments).

A row is (question, options, group, answer distribution). Prompt: the template (the paper's
"Opinion of people in {group} on: {question}\\nPlease select the best response:") then one line
"\\n{letter}. {option}" per option; responses are option letters (EOS is added later).
``best_vs_random`` (the paper): chosen = the group's most probable option, rejected = a uniformly
random other option; ``ranking``: (better, worse) pairs sampled from the group's full ranking.
Draws are seeded per (seed, question_id, group), so they do not depend on row order.

Two layouts are read: the flat one of the GlobalOpinionQA union file (``question_id, question,
options, country, distribution``) and the original hub one (``question, selections, options,
source``, with ``selections`` a ``"defaultdict(...)"`` string and ``options`` a Python-literal
list), parsed without ``eval``. A row is checked for: malformed line, group, question text,
options (type, empty text, 2 to 26 of them), distribution (type, one entry per option,
non-negative, sums to 1 within the tolerance), duplicate (question_id, group). In the hub layout,
each (question, group) entry is checked and rejected on its own, with the field
``selections['<group>']``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from grpo_core.data.config import DataConfig, SurveyOptions
from grpo_core.data.ids import make_pair_id, make_question_id, stable_rng
from grpo_core.data.literals import parse_list_cell, parse_selections
from grpo_core.data.readers import RawSource, check_columns
from grpo_core.data.schema import PreferencePair
from grpo_core.data.selection import GroupSelector, check_label, resolve_group
from grpo_core.data.validation import (
    DISTRIBUTION_NOT_NORMALIZED,
    DUPLICATE,
    EMPTY_TEXT,
    LENGTH_MISMATCH,
    MALFORMED_LINE,
    MISSING_COLUMN,
    NEGATIVE_DISTRIBUTION,
    NO_PREFERENCE,
    TOO_FEW_OPTIONS,
    TOO_MANY_OPTIONS,
    WRONG_TYPE,
    Location,
    RecordProblem,
    RejectionLog,
)

LETTERS = string.ascii_uppercase
GOQA_ID_PREFIX = "goqa_"
_MISSING = object()


@dataclass(frozen=True)
class SurveyRow:
    """One group's answer distribution over a question's options (validated)."""

    question_id: str
    question: str
    options: tuple[str, ...]
    group: str
    distribution: tuple[float, ...]
    location: Location
    distribution_field: str = "distribution"
    """Where the distribution was read, for messages (e.g. ``selections['Nigeria']``)."""


def render_survey_prompt(
    question: str, options: Iterable[str], group: str, survey: SurveyOptions
) -> str:
    """The paper's prompt: template, then one ``option_template`` line per option.

    See docs/ALGORITHM.md#language-model-experiments.
    """
    head = survey.prompt_template.format(group=group, country=group, question=question)
    lines = (
        survey.option_template.format(letter=LETTERS[i], option=option)
        for i, option in enumerate(options)
    )
    return head + "".join(lines)


def option_ranking(distribution: tuple[float, ...]) -> list[int]:
    """Option indices from most to least probable; ties keep the option order (argmax's rule)."""
    return sorted(range(len(distribution)), key=lambda i: (-distribution[i], i))


def survey_pairs(row: SurveyRow, survey: SurveyOptions, *, seed: int) -> list[PreferencePair]:
    """The pairs of one row (at most ``survey.pairs_per_row``, drawn without repetition).

    Raises:
        RecordProblem: ``no_preference`` when ``ties="strict"`` and all options are equally
            probable.
    """
    p = row.distribution
    order = option_ranking(p)
    strict = survey.ties == "strict"
    if survey.pairing == "best_vs_random":
        best = order[0]
        candidates = [
            (best, i) for i in range(len(p)) if i != best and (not strict or p[i] < p[best])
        ]
    else:
        candidates = [
            (order[a], order[b])
            for a in range(len(order))
            for b in range(a + 1, len(order))
            if not strict or p[order[a]] > p[order[b]]
        ]
    if not candidates:
        raise RecordProblem(NO_PREFERENCE, "distribution", "all options are equally probable")
    rng = stable_rng(seed, "survey", row.question_id, row.group)
    picks = rng.choice(
        len(candidates), size=min(survey.pairs_per_row, len(candidates)), replace=False
    )
    prompt = render_survey_prompt(row.question, row.options, row.group, survey)
    pairs = []
    for pick in picks:
        chosen, rejected = LETTERS[candidates[pick][0]], LETTERS[candidates[pick][1]]
        pairs.append(
            PreferencePair(
                pair_id=make_pair_id(row.group, prompt, chosen, rejected),
                question_id=row.question_id,
                group=row.group,
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                location=row.location,
            )
        )
    return pairs


def pairs_from_survey_rows(
    rows: Iterable[SurveyRow], config: DataConfig, log: RejectionLog
) -> Iterator[PreferencePair]:
    """The pairs of validated rows; rows without a preference are reported to the log."""
    for row in rows:
        try:
            pairs = survey_pairs(row, config.survey, seed=config.seed)
        except RecordProblem as problem:
            field = row.distribution_field
            record = {
                "question": row.question,
                "group": row.group,
                "distribution": list(row.distribution),
            }
            log.reject(problem.reason, row.location, field, problem.message, record)
            continue
        yield from pairs


def survey_rows_from_records(
    source: RawSource, config: DataConfig, selector: GroupSelector, log: RejectionLog
) -> Iterator[SurveyRow]:
    """Validated rows of a survey source, flat or hub layout (see the module docstring)."""
    selections = config.column("selections")
    hub = source.columns is not None and selections in source.columns
    if source.columns is not None:
        needed = ["question", "options", "selections" if hub else "distribution"]
        check_columns(
            source, [config.column(name) for name in needed] + ([] if hub else [config.group_field])
        )
    seen: dict[tuple[str, str], Location] = {}
    for record in source.records:
        if record.values is None:
            log.reject(MALFORMED_LINE, record.location, "(line)", record.problem, record.raw)
            continue
        values = record.values
        if selections in values:
            yield from _hub_rows(values, record.location, config, selector, log, seen)
            continue
        try:
            group = resolve_group(values, config.group_field, None, selector, record.location)
            if group is None:
                continue
            question, options, question_id = _question(values, config, "q_")
            distribution = _distribution(
                values.get(config.column("distribution"), _MISSING),
                config.column("distribution"),
                len(options),
                config.survey.distribution_tolerance,
            )
            check_duplicate_row(question_id, group, record.location, config.group_field, seen)
        except RecordProblem as problem:
            log.reject(problem.reason, record.location, problem.field, problem.message, values)
            continue
        yield SurveyRow(
            question_id,
            question,
            options,
            group,
            distribution,
            record.location,
            config.column("distribution"),
        )


def _hub_rows(
    values: dict[str, Any],
    location: Location,
    config: DataConfig,
    selector: GroupSelector,
    log: RejectionLog,
    seen: dict[tuple[str, str], Location],
) -> Iterator[SurveyRow]:
    column = config.column("selections")
    try:
        try:
            selections = parse_selections(values[column])
        except ValueError as error:
            raise RecordProblem(WRONG_TYPE, column, str(error)) from None
        entries = []
        for label, distribution in selections.items():
            if not isinstance(label, str) or not label.strip():
                raise RecordProblem(
                    WRONG_TYPE, column, f"group label {label!r} is not a non-empty string"
                )
            check_label(label, column)
            group = selector.resolve(label, location)
            if group is not None:
                entries.append((label, group, distribution))
        if not entries:
            return
        question, options, question_id = _question(values, config, GOQA_ID_PREFIX)
    except RecordProblem as problem:
        log.reject(problem.reason, location, problem.field, problem.message, values)
        return
    for label, group, raw_distribution in entries:
        field = f"{column}[{label!r}]"
        try:
            distribution = _distribution(
                raw_distribution, field, len(options), config.survey.distribution_tolerance
            )
            check_duplicate_row(question_id, group, location, field, seen)
        except RecordProblem as problem:
            record = {
                "question": question,
                "options": list(options),
                "group": label,
                "distribution": raw_distribution,
            }
            log.reject(problem.reason, location, problem.field, problem.message, record)
            continue
        yield SurveyRow(question_id, question, options, group, distribution, location, field)


def _question(
    values: dict[str, Any], config: DataConfig, id_prefix: str
) -> tuple[str, tuple[str, ...], str]:
    column = config.column("question")
    if column not in values:
        raise RecordProblem(MISSING_COLUMN, column, "column missing")
    question = values[column]
    if not isinstance(question, str):
        raise RecordProblem(WRONG_TYPE, column, f"expected a string, got {type(question).__name__}")
    if not question.strip():
        raise RecordProblem(EMPTY_TEXT, column, "question is empty or whitespace only")
    options = _options(values.get(config.column("options"), _MISSING), config.column("options"))
    id_column = config.column("question_id")
    question_id = values.get(id_column)
    if question_id is None or (isinstance(question_id, str) and not question_id.strip()):
        question_id = make_question_id(question, prefix=id_prefix)
    elif isinstance(question_id, bool) or not isinstance(question_id, (str, int)):
        raise RecordProblem(
            WRONG_TYPE, id_column, f"expected a string id, got {type(question_id).__name__}"
        )
    return question, options, str(question_id)


def _options(value: Any, column: str) -> tuple[str, ...]:
    if value is _MISSING:
        raise RecordProblem(MISSING_COLUMN, column, "column missing")
    try:
        value = parse_list_cell(value)
    except ValueError as error:
        raise RecordProblem(WRONG_TYPE, column, f"expected a list of options ({error})") from None
    if not isinstance(value, list):
        raise RecordProblem(
            WRONG_TYPE, column, f"expected a list of options, got {type(value).__name__}"
        )
    options = []
    for i, option in enumerate(value):
        if isinstance(option, bool) or not isinstance(option, (str, int, float)):
            raise RecordProblem(
                WRONG_TYPE, f"{column}[{i}]", f"expected text, got {type(option).__name__}"
            )
        text = str(option)
        if not text.strip():
            raise RecordProblem(EMPTY_TEXT, f"{column}[{i}]", "option is empty or whitespace only")
        options.append(text)
    if len(options) < 2:
        raise RecordProblem(
            TOO_FEW_OPTIONS, column, f"needs at least 2 options, got {len(options)}"
        )
    if len(options) > len(LETTERS):
        raise RecordProblem(
            TOO_MANY_OPTIONS,
            column,
            f"at most {len(LETTERS)} options (letters A-Z), got {len(options)}",
        )
    return tuple(options)


def _distribution(value: Any, field: str, num_options: int, tolerance: float) -> tuple[float, ...]:
    if value is _MISSING:
        raise RecordProblem(MISSING_COLUMN, field, "column missing")
    try:
        value = parse_list_cell(value)
    except ValueError as error:
        raise RecordProblem(
            WRONG_TYPE, field, f"expected a list of probabilities ({error})"
        ) from None
    if not isinstance(value, list):
        raise RecordProblem(
            WRONG_TYPE, field, f"expected a list of probabilities, got {type(value).__name__}"
        )
    for i, p in enumerate(value):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
            raise RecordProblem(WRONG_TYPE, f"{field}[{i}]", f"expected a finite number, got {p!r}")
    if len(value) != num_options:
        raise RecordProblem(
            LENGTH_MISMATCH, field, f"{len(value)} probabilities for {num_options} options"
        )
    negative = [i for i, p in enumerate(value) if p < 0]
    if negative:
        raise RecordProblem(
            NEGATIVE_DISTRIBUTION,
            f"{field}[{negative[0]}]",
            f"negative probability {value[negative[0]]!r}",
        )
    total = math.fsum(value)
    if abs(total - 1) > tolerance:
        raise RecordProblem(
            DISTRIBUTION_NOT_NORMALIZED, field, f"sums to {total:.6g}, not 1 within {tolerance:g}"
        )
    return tuple(float(p) for p in value)


def check_duplicate_row(
    question_id: str,
    group: str,
    location: Location,
    field: str,
    seen: dict[tuple[str, str], Location],
) -> None:
    """Reject a second row for the same (question_id, group); ``seen`` maps keys to first places."""
    key = (question_id, group)
    if key in seen:
        raise RecordProblem(
            DUPLICATE, field, f"question {question_id!r} for group {group!r} already at {seen[key]}"
        )
    seen[key] = location
