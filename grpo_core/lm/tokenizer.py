"""The ``tiny`` preset's tokenizer: a word-level vocabulary built from the training texts.

Built with the ``tokenizers`` library and wrapped as a ``PreTrainedTokenizerFast``, so that
``AutoTokenizer.from_pretrained(folder)`` loads it like any other. Words are split by the
``Whitespace`` pre-tokenizer (``\\w+|[^\\w\\s]+``); the vocabulary order is fixed by frequency, then
by the word itself, so the same texts always give the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
"""Ids 0..3 of every tiny vocabulary, in this order."""


def word_vocabulary(texts: Iterable[str], max_size: int) -> dict[str, int]:
    """Word -> id: the special tokens, then the most frequent words (ties: alphabetical).

    Args:
        texts: the training texts (prompts and responses).
        max_size: total vocabulary size including the special tokens.
    """
    if max_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"max_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_size}"
        )
    splitter = pre_tokenizers.Whitespace()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in splitter.pre_tokenize_str(text))
    for token in SPECIAL_TOKENS:
        counts.pop(token, None)
    words = sorted(counts, key=lambda word: (-counts[word], word))[: max_size - len(SPECIAL_TOKENS)]
    return {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}


def build_word_tokenizer(texts: Iterable[str], max_size: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``texts`` with <pad>, <unk>, <bos>, <eos>; BOS starts every encoding
    made with ``add_special_tokens=True`` (the prompts), never the responses."""
    vocab = word_vocabulary(texts, max_size)
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])]
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK
    )
