"""Grouped preference data: schema, loaders, survey adapter, validation, splits, group statistics
and the built-in opinion survey (the paper's data: docs/ALGORITHM.md#language-model-experiments).

Public names are imported on first use, so that ``grpo_core.data.config`` (pydantic only) stays
cheap to import for command-line help and config forms.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataConfig": "config",
    "PairsOptions": "config",
    "SurveyOptions": "config",
    "OpinionGeneratorConfig": "config",
    "PAPER_GROUPS": "config",
    "PAPER_PROMPT_TEMPLATE": "config",
    "PreferencePair": "schema",
    "PAIR_COLUMNS": "schema",
    "SPLITS": "schema",
    "DataValidationError": "validation",
    "Location": "validation",
    "Rejection": "validation",
    "REASONS": "validation",
    "open_source": "readers",
    "SurveyRow": "survey",
    "survey_pairs": "survey",
    "render_survey_prompt": "survey",
    "safe_literal": "literals",
    "parse_selections": "literals",
    "assign_splits": "splits",
    "allocate": "splits",
    "slugify": "stats",
    "unique_slugs": "stats",
    "imbalance_ratio": "stats",
    "generate_opinion_survey": "opinions",
    "OpinionSurvey": "opinions",
    "GroupedPairs": "prepare",
    "PreparedData": "prepare",
    "build_dataset": "prepare",
    "load_pairs": "prepare",
    "prepare_dataset": "prepare",
    "GroupTable": "storage",
    "load_split": "storage",
    "load_groups": "storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
