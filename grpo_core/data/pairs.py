"""Records with prompt, chosen, rejected and group become pairs (``format="pairs"``).

Each record is checked in this order and rejected for its first problem only, so the counts per
reason add up to the rejected records: malformed line; group (column missing, label empty, not a
string); group selection (rows of unselected groups are counted, not rejected); text fields (column
missing, null, wrong type, empty or whitespace only); chosen identical to rejected (ignoring
surrounding whitespace); duplicates (same group, prompt, chosen and rejected, or a repeated
pair_id). Texts are kept exactly as written; EOS is added later by the tokenizer code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from grpo_core.data.chat import (
    ChatTemplateTokenizer,
    is_conversation,
    render_prompt,
    render_response,
    split_shared_messages,
    split_shared_text,
)
from grpo_core.data.config import DataConfig
from grpo_core.data.ids import make_pair_id, make_question_id
from grpo_core.data.readers import RawSource, check_columns
from grpo_core.data.schema import PreferencePair
from grpo_core.data.selection import GroupSelector, resolve_group
from grpo_core.data.validation import (
    CHOSEN_EQUALS_REJECTED,
    DUPLICATE,
    EMPTY_TEXT,
    MALFORMED_LINE,
    MISSING_COLUMN,
    WRONG_TYPE,
    Location,
    RecordProblem,
    RejectionLog,
)


def pairs_from_records(
    source: RawSource,
    config: DataConfig,
    selector: GroupSelector,
    log: RejectionLog,
    tokenizer: ChatTemplateTokenizer | None = None,
    votes: bool = False,
) -> Iterator[PreferencePair]:
    """Pairs of a ``format="pairs"`` source, in source order (checks: see the module docstring).

    Args:
        tokenizer: renders conversational prompts when ``config.pairs.chat_template`` is on.
        votes: the same pair may occur again in a group (several raters' votes); only a repeated
            ``pair_id`` is a duplicate.
    """
    text_fields = ["chosen", "rejected"]
    if config.pairs.prompt_source == "column":
        text_fields.insert(0, "prompt")
    required = [config.column(name) for name in text_fields]
    if config.pairs.default_group is None:
        required.append(config.group_field)
    check_columns(source, required)
    chat = tokenizer if config.pairs.chat_template else None
    seen_content: dict[tuple[str, str, str, str], Location] = {}
    seen_ids: dict[str, Location] = {}
    for record in source.records:
        if record.values is None:
            log.reject(MALFORMED_LINE, record.location, "(line)", record.problem, record.raw)
            continue
        try:
            group = resolve_group(
                record.values,
                config.group_field,
                config.pairs.default_group,
                selector,
                record.location,
            )
            if group is None:
                continue
            pair = _make_pair(record.values, record.location, group, config, chat)
            _check_duplicate(pair, config, None if votes else seen_content, seen_ids)
        except RecordProblem as problem:
            log.reject(
                problem.reason, record.location, problem.field, problem.message, record.values
            )
            continue
        yield pair


def _make_pair(
    values: dict[str, Any],
    location: Location,
    group: str,
    config: DataConfig,
    chat: ChatTemplateTokenizer | None,
) -> PreferencePair:
    chosen_raw = _text_value(values, config.column("chosen"))
    rejected_raw = _text_value(values, config.column("rejected"))
    if config.pairs.prompt_source == "common_prefix":
        prompt, chosen, rejected = _split_common_prefix(chosen_raw, rejected_raw, config)
    else:
        prompt_raw = _text_value(values, config.column("prompt"))
        prompt = render_prompt(prompt_raw, chat) if is_conversation(prompt_raw) else prompt_raw
        chosen, rejected = _response_text(chosen_raw), _response_text(rejected_raw)
    for name, text in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise RecordProblem(EMPTY_TEXT, config.column(name), "text is empty or whitespace only")
    if chosen.strip() == rejected.strip():
        raise RecordProblem(
            CHOSEN_EQUALS_REJECTED,
            config.column("rejected"),
            "chosen and rejected are identical (ignoring surrounding whitespace)",
        )
    pair_id = _optional_id(values, config.column("pair_id"))
    question_id = _optional_id(values, config.column("question_id"))
    return PreferencePair(
        pair_id=pair_id or make_pair_id(group, prompt, chosen, rejected),
        question_id=question_id or make_question_id(prompt),
        group=group,
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        location=location,
    )


def _split_common_prefix(chosen: Any, rejected: Any, config: DataConfig) -> tuple[str, str, str]:
    if isinstance(chosen, str) and isinstance(rejected, str):
        if chosen.strip() == rejected.strip():
            raise RecordProblem(
                CHOSEN_EQUALS_REJECTED,
                config.column("rejected"),
                "chosen and rejected are identical (ignoring surrounding whitespace)",
            )
        marker = config.pairs.response_marker
        parts = split_shared_text(chosen, rejected, marker)
        if parts is None:
            raise RecordProblem(
                EMPTY_TEXT, "prompt", f"chosen and rejected share no prompt ending with {marker!r}"
            )
        return parts
    if is_conversation(chosen) and is_conversation(rejected):
        shared, chosen_rest, rejected_rest = split_shared_messages(chosen, rejected)
        if not shared:
            raise RecordProblem(
                EMPTY_TEXT, "prompt", "chosen and rejected share no leading message"
            )
        return render_prompt(shared), render_response(chosen_rest), render_response(rejected_rest)
    raise RecordProblem(
        WRONG_TYPE,
        config.column("rejected"),
        "chosen and rejected must both be strings or both be chat-message lists",
    )


def _text_value(values: dict[str, Any], column: str) -> Any:
    if column not in values:
        raise RecordProblem(MISSING_COLUMN, column, "column missing")
    value = values[column]
    if value is None:
        raise RecordProblem(EMPTY_TEXT, column, "value is null")
    if not isinstance(value, str) and not is_conversation(value):
        raise RecordProblem(
            WRONG_TYPE,
            column,
            f"expected a string or a list of chat messages, got {type(value).__name__}",
        )
    return value


def _response_text(value: Any) -> str:
    return render_response(value) if is_conversation(value) else value


def _optional_id(values: dict[str, Any], column: str) -> str | None:
    value = values.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordProblem(
            WRONG_TYPE, column, f"id must be a string or an integer, got {type(value).__name__}"
        )
    return str(value)


def _check_duplicate(
    pair: PreferencePair,
    config: DataConfig,
    seen_content: dict[tuple[str, str, str, str], Location] | None,
    seen_ids: dict[str, Location],
) -> None:
    key = (pair.group, pair.prompt, pair.chosen, pair.rejected)
    if seen_content is not None and key in seen_content:
        raise RecordProblem(
            DUPLICATE, "(record)", f"same group, prompt, chosen and rejected as {seen_content[key]}"
        )
    if pair.pair_id in seen_ids:
        raise RecordProblem(
            DUPLICATE,
            config.column("pair_id"),
            f"pair_id {pair.pair_id!r} already used at {seen_ids[pair.pair_id]}",
        )
    if seen_content is not None:
        seen_content[key] = pair.location
    seen_ids[pair.pair_id] = pair.location
