"""Content-derived ids and seeded random generators that do not depend on input order."""

from __future__ import annotations

import numpy as np

from grpo_core.hashing import stable_digest


def make_pair_id(group: str, prompt: str, chosen: str, rejected: str) -> str:
    """Content-derived pair id: the same pair always gets the same id."""
    return "pair_" + stable_digest(group, prompt, chosen, rejected)[:16]


def make_question_id(text: str, prefix: str = "q_") -> str:
    """Question id from its text. ``prefix="goqa_"`` reproduces the GlobalOpinionQA union ids."""
    return prefix + stable_digest(text)[:10]


def stable_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the keys, e.g. ``stable_rng(0, "split", group)``.

    Deriving one generator per key keeps each draw independent of the order of the input and of
    the other keys (adding a group leaves the other groups' splits as they were).
    """
    digest = bytes.fromhex(stable_digest(*keys, algorithm="sha256"))
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))
