"""Conversational (chat-message) prompts and responses.

A conversation is a non-empty list of ``{"role": str, "content": str}`` messages, as in TRL's
conversational datasets. Prompts are rendered through the tokenizer's chat template when one is
given (``apply_chat_template(..., tokenize=False, add_generation_prompt=True)``), otherwise as
plain ``"\\n\\nRole: content"`` turns ending with ``"\\n\\nAssistant:"`` (the HH-RLHF layout).
Responses are the contents of their messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ChatTemplateTokenizer(Protocol):
    """What is used of a Hugging Face tokenizer: its chat template."""

    def apply_chat_template(
        self, conversation: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> Any: ...


def is_conversation(value: Any) -> bool:
    """True for a non-empty list of messages with string ``role`` and ``content``."""
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in value
        )
    )


def render_prompt(
    messages: Sequence[dict[str, str]], tokenizer: ChatTemplateTokenizer | None = None
) -> str:
    """The prompt text of a conversation, ready for the assistant's reply."""
    conversation = [{"role": m["role"], "content": m["content"]} for m in messages]
    if tokenizer is not None:
        text = tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        if not isinstance(text, str):
            raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
        return text
    turns = "".join(f"\n\n{m['role'].capitalize()}: {m['content']}" for m in conversation)
    return turns + "\n\nAssistant:"


def render_response(messages: Sequence[dict[str, str]]) -> str:
    """The response text of assistant messages: their contents, separated by blank lines."""
    return "\n\n".join(m["content"] for m in messages)


def split_shared_messages(
    chosen: Sequence[dict[str, str]], rejected: Sequence[dict[str, str]]
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """Split two conversations into their shared leading messages and the two different endings."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    return list(chosen[:shared]), list(chosen[shared:]), list(rejected[shared:])


def split_shared_text(chosen: str, rejected: str, marker: str) -> tuple[str, str, str] | None:
    """Split two texts at the end of the last ``marker`` inside their common prefix.

    For HH-RLHF (``marker="\\n\\nAssistant:"``) this gives the dialogue up to the final assistant
    turn as the prompt and the two final replies as the responses. None when the common prefix
    holds no marker.
    """
    length = 0
    limit = min(len(chosen), len(rejected))
    while length < limit and chosen[length] == rejected[length]:
        length += 1
    cut = chosen.rfind(marker, 0, length)
    if cut < 0:
        return None
    end = cut + len(marker)
    return chosen[:end], chosen[end:], rejected[end:]
