"""Stable identifiers and seeded random generators that do not depend on input order."""

from __future__ import annotations

import hashlib

import numpy as np

_SEPARATOR = "\x1f"


def stable_digest(*parts: str) -> str:
    """Hex SHA-1 of the parts joined by a unit separator (stable across runs and platforms)."""
    return hashlib.sha1(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()


def make_pair_id(group: str, prompt: str, chosen: str, rejected: str) -> str:
    """Content-derived pair id: the same pair always gets the same id."""
    return "pair_" + stable_digest(group, prompt, chosen, rejected)[:16]


def make_question_id(text: str, prefix: str = "q_") -> str:
    """Question id from its text. ``prefix="goqa_"`` reproduces the GlobalOpinionQA union ids."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def stable_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the keys, e.g. ``stable_rng(0, "split", group)``.

    Deriving one generator per key keeps each draw independent of the order of the input and of
    the other keys (adding a group leaves the other groups' splits as they were).
    """
    digest = hashlib.sha256(_SEPARATOR.join(keys).encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))
