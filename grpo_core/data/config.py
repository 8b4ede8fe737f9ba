"""``DataConfig``: the data section of the run config (the language-model data of Ramesh et al.
2024, arXiv:2405.20304: docs/ALGORITHM.md#language-model-experiments).

The defaults build the built-in synthetic opinion survey, so a run needs no data file. For a file,
set ``format`` ("pairs" for prompt/chosen/rejected/group records, "survey" for per-group answer
distributions such as GlobalOpinionQA) and ``path``.
"""

from __future__ import annotations

import string
import unicodedata
import warnings
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from grpo_core.config import Section
from grpo_core.data.opinion_texts import GROUP_NAMES, MAX_QUESTIONS

PAPER_PROMPT_TEMPLATE = (
    "Opinion of people in {group} on: {question}\nPlease select the best response:"
)
"""The paper's prompt (docs/ALGORITHM.md#language-model-experiments); ``{country}`` is accepted as an alias of ``{group}``."""
SHARED_PROMPT_TEMPLATE = "Opinion on: {question}\nPlease select the best response:"
"""The paper's prompt without the group: one policy answers for every group (the demo's setting,
where group preferences conflict and must be traded off)."""
PAPER_OPTION_TEMPLATE = "\n{letter}. {option}"
PAPER_GROUPS = ("Nigeria", "Egypt", "India (Current national sample)", "China", "Japan")
"""The five GlobalOpinionQA countries of the paper's language-model experiments."""

PAIR_FIELDS = ("prompt", "chosen", "rejected", "pair_id", "question_id")
RATER_FIELDS = ("prompt", "response_a", "response_b", "preference", "rater_id", "question_id")
GROUP_JOIN = " x "
"""Joins the values of several group columns into one intersectional group name."""
SURVEY_FIELDS = ("question", "options", "distribution", "selections", "question_id")

Fraction = Annotated[float, Field(ge=0, le=1)]
GroupSize = Annotated[float, Field(gt=0, le=1)]


class PairsOptions(Section):
    """Options of ``format="pairs"``: records that already hold a chosen and a rejected response."""

    prompt_source: Literal["column", "common_prefix"] = Field(
        "column",
        description="'column': the prompt is its own column. 'common_prefix': there is no prompt "
        "column; the prompt is the shared start of chosen and rejected up to the end of the last "
        "response_marker in it (the HH-RLHF layout), or their shared leading chat messages.",
    )
    response_marker: str = Field(
        "\n\nAssistant:",
        min_length=1,
        description="With prompt_source='common_prefix': the text that ends a prompt.",
    )
    default_group: str | None = Field(
        None,
        min_length=1,
        description="Group given to every record when the source has no group column "
        "(e.g. HH-RLHF). None: a missing group column is an error.",
    )
    chat_template: bool = Field(
        False,
        description="Render conversational (chat-message) prompts with the tokenizer's chat "
        "template (the tokenizer is passed to prepare_dataset). Off: plain 'Role: content' turns.",
    )


class RaterOptions(Section):
    """Options of ``format="raters"``: one row per rater's choice between two responses."""

    table: str | None = Field(
        None,
        description="A file of rater attributes (csv, jsonl, json, parquet) with one row per "
        "rater, joined to the choices on the rater id column; None: the attributes are columns of "
        "the choices themselves.",
    )
    prefers_a: tuple[str, ...] = Field(
        ("a", "A", "response_a", "0"),
        min_length=1,
        description="Values of the preference column that mean the first response was preferred.",
    )
    prefers_b: tuple[str, ...] = Field(
        ("b", "B", "response_b", "1"),
        min_length=1,
        description="Values that mean the second was preferred (anything else, e.g. a tie, is "
        "rejected as no_preference).",
    )


class SurveyOptions(Section):
    """How survey rows (question, options, group, distribution) become pairs, as in the
    paper's GlobalOpinionQA experiments (docs/ALGORITHM.md#language-model-experiments)."""

    prompt_template: str = Field(
        PAPER_PROMPT_TEMPLATE,
        description="Prompt before the options; fields {group} (or {country}) and {question}. "
        "Default: the paper's.",
    )
    option_template: str = Field(
        PAPER_OPTION_TEMPLATE,
        description="One line per option appended to the prompt; fields {letter} and {option}.",
    )
    pairing: Literal["best_vs_random", "ranking"] = Field(
        "best_vs_random",
        description="'best_vs_random' (the paper): chosen = the group's most probable option, "
        "rejected = a uniformly random other option. 'ranking': pairs (better, worse) sampled "
        "uniformly from the group's full ranking of the options.",
    )
    pairs_per_row: int = Field(
        1,
        ge=1,
        description="Pairs drawn per (question, group) row, without repetition (fewer when the "
        "row has fewer). The paper uses 1.",
    )
    ties: Literal["first", "strict"] = Field(
        "first",
        description="Equally probable options. 'first' (the paper's argmax): ties go to the "
        "earlier option, so a tied option can be the rejected one. 'strict': chosen must be more "
        "probable than rejected; rows with all options equal are rejected (no_preference).",
    )
    distribution_tolerance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A distribution is valid when it has no negative entry and |sum - 1| <= "
        "this (0.05 as the GlobalOpinionQA notes suggest).",
    )

    @field_validator("prompt_template")
    @classmethod
    def _check_prompt_template(cls, value: str) -> str:
        _check_template(value, allowed={"group", "country", "question"}, required={"question"})
        return value

    @field_validator("option_template")
    @classmethod
    def _check_option_template(cls, value: str) -> str:
        _check_template(value, allowed={"letter", "option"}, required={"letter", "option"})
        return value


class OpinionGeneratorConfig(Section):
    """The built-in synthetic opinion survey (``format="synthetic"``; see ``opinions.py``)."""

    num_groups: int = Field(
        3, ge=2, description=f"Number of groups (up to {len(GROUP_NAMES)} with the built-in names)."
    )
    group_names: tuple[str, ...] | None = Field(
        None, description="Names of the groups (None: fictional built-in names, Northland, ...)."
    )
    group_sizes: tuple[GroupSize, ...] = Field(
        (1.0, 0.5, 0.15),
        description="Per group, the fraction of the questions it answers (one pair per answer by "
        "default); smaller groups answer a subset of the larger groups' questions. Unequal sizes "
        "make majority and minority groups. One entry per group.",
    )
    num_questions: int = Field(
        300, ge=10, le=MAX_QUESTIONS, description="Distinct questions in the survey."
    )
    disagreement: Fraction = Field(
        0.5,
        description="Fraction of the topics on which each non-first group reverses the first "
        "group's ranking of the options (0: all groups agree; 1: they disagree everywhere).",
    )
    min_options: int = Field(2, ge=2, le=4, description="Fewest options a question shows.")
    max_options: int = Field(4, ge=2, le=4, description="Most options a question shows.")

    @model_validator(mode="after")
    def _check(self) -> OpinionGeneratorConfig:
        if len(self.group_sizes) != self.num_groups:
            raise ValueError(
                f"group_sizes has {len(self.group_sizes)} entries, num_groups is {self.num_groups}"
            )
        if self.group_names is None:
            if self.num_groups > len(GROUP_NAMES):
                raise ValueError(
                    f"num_groups={self.num_groups} needs group_names "
                    f"(there are {len(GROUP_NAMES)} built-in names)"
                )
        else:
            if len(self.group_names) != self.num_groups:
                raise ValueError(
                    f"group_names has {len(self.group_names)} names, "
                    f"num_groups is {self.num_groups}"
                )
            _check_names(self.group_names, "group_names")
        if self.min_options > self.max_options:
            raise ValueError(
                f"min_options={self.min_options} exceeds max_options={self.max_options}"
            )
        return self


class DataConfig(Section):
    """Where the grouped preference pairs come from and how they are split."""

    format: Literal["synthetic", "pairs", "survey", "raters"] = Field(
        "synthetic",
        description="'synthetic': the built-in opinion survey (no file). 'pairs': records with "
        "prompt, chosen, rejected and group. 'survey': rows of question, options, group and "
        "answer distribution (GlobalOpinionQA union or hub layout), turned into pairs as in "
        "the paper. 'raters': one row per rater's choice between response_a and response_b, the "
        "group from the rater's attributes (in the row or in raters.table).",
    )
    path: str | None = Field(
        None,
        description="Source file (jsonl, json, csv, parquet, optionally .gz) or local Hugging Face "
        "dataset folder; a hub dataset name only with file_type='hf_hub'. Unset for 'synthetic'.",
    )
    file_type: Literal["auto", "jsonl", "json", "csv", "parquet", "hf_local", "hf_hub"] = Field(
        "auto",
        description="How to read path. 'auto': from the file name; a folder is a local dataset.",
    )
    hf_split: str | None = Field(
        None, description="Split of a Hugging Face dataset that has several (e.g. 'train')."
    )
    group_columns: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="Column(s) holding the group label: one column (e.g. [country]; a single name "
        "is read as a list of one), or several whose combination is the group (intersectional "
        "groups, e.g. [party, race] make 'Democrat x Black'; pairs and raters only). None: "
        "'group' for pairs, 'country' for survey.",
    )
    min_group_pairs: int = Field(
        1,
        ge=1,
        description="Groups (intersectional cells) with fewer valid pairs than this are dropped "
        "and reported (group_too_small in the quarantine and the summary), whatever on_invalid says.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column mapping {canonical name: source column}. Pairs: prompt, chosen, "
        "rejected, pair_id, question_id. Survey: question, options, distribution, selections, "
        "question_id. The group column is set by group_columns.",
    )
    groups: tuple[str, ...] | None = Field(
        None,
        description="Groups to keep, in group-id order (names after group_map). None: every group, "
        "sorted by name (the synthetic survey keeps its own order). The paper's: "
        f"{', '.join(PAPER_GROUPS)}.",
    )
    group_map: dict[str, str] = Field(
        default_factory=dict,
        description="Rename groups {source name: new name}; mapping several names to one "
        "merges them.",
    )
    merge_label_variants: bool = Field(
        False,
        description="Merge group labels that differ only by letter case or surrounding spaces "
        "('Japan', 'japan', 'Japan ') under the first spelling seen. Off: such labels are refused, "
        "both spellings named.",
    )
    split: tuple[Fraction, Fraction, Fraction] = Field(
        (0.8, 0.1, 0.1),
        description="Train, validation and test fractions per group (the paper's 80/10/10).",
    )
    split_by_question: bool = Field(
        False,
        description="Keep every question in a single split across all groups (no question seen in "
        "training for one group and tested for another). Off: each group is split on its own.",
    )
    min_pairs_per_split: int = Field(
        1,
        ge=1,
        description="A group with fewer pairs than this in a split of non-zero fraction is too "
        "small for the requested splits (group_too_small).",
    )
    min_groups_per_question: int = Field(
        1,
        ge=1,
        description="Keep only the questions (question ids) that at least this many of the "
        "selected groups have pairs for; the others are dropped before the split and counted "
        "(pairs_below_min_groups in the summary). 1: every question. With a prompt that does not "
        "name the group, 2 or more keeps the prompts that groups share, where they can disagree "
        "(the headroom of a group-blind policy, grpo_core.data.headroom).",
    )
    seed: int = Field(
        0, ge=0, description="Seed of the rejected-option draws, the splits and the generator."
    )
    allow_single_group: bool = Field(
        False,
        description="Prepare data with only one group. Off: refused, since group robustness needs "
        "two or more groups to weigh against each other.",
    )
    on_invalid: Literal["auto", "error", "quarantine"] = Field(
        "auto",
        description="Invalid records: 'error' stops with a message naming file, line and field; "
        "'quarantine' writes them to quarantine.jsonl and counts them per reason. 'auto': error, "
        "except survey rows whose distribution is negative or does not sum to about 1, which the "
        "paper drops: those are quarantined and counted.",
    )
    pairs: PairsOptions = Field(
        default_factory=PairsOptions, description="Options of format='pairs'."
    )
    raters: RaterOptions = Field(
        default_factory=RaterOptions, description="Options of format='raters'."
    )
    survey: SurveyOptions = Field(
        default_factory=SurveyOptions,
        description="Options of format='survey' and 'synthetic' (prompt, pairing).",
    )
    synthetic: OpinionGeneratorConfig = Field(
        default_factory=OpinionGeneratorConfig,
        description="The built-in opinion survey of format='synthetic'.",
    )

    @property
    def group_field(self) -> str:
        """The group column in effect (several columns: their names joined as the groups are)."""
        if self.group_columns is not None:
            return GROUP_JOIN.join(self.group_columns)
        return "country" if self.format == "survey" else "group"

    @property
    def intersectional(self) -> bool:
        """Whether the group is the combination of several columns' values."""
        return self.group_columns is not None and len(self.group_columns) > 1

    @model_validator(mode="before")
    @classmethod
    def _old_group_column(cls, values: Any) -> Any:
        """``group_column: X``, the former spelling of one column, is read as ``group_columns: [X]``
        (with a DeprecationWarning); the validated config, and so the prepared data and its cache
        key, are the same as with the new spelling."""
        if not isinstance(values, dict) or "group_column" not in values:
            return values
        values = dict(values)
        old = values.pop("group_column")
        if values.get("group_columns") is not None and old is not None:
            raise ValueError("give group_columns only (group_column is its former spelling)")
        warnings.warn(
            "data.group_column is deprecated: write group_columns (one column or several)",
            DeprecationWarning,
            stacklevel=2,
        )
        if old is not None:
            values["group_columns"] = old
        return values

    @field_validator("group_columns", mode="before")
    @classmethod
    def _one_column_as_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @property
    def renders_chat_template(self) -> bool:
        """Conversational pairs are rendered with a model's chat template when they are prepared
        (and must not get it a second time when tokenised)."""
        return self.format == "pairs" and self.pairs.chat_template

    def column(self, name: str) -> str:
        """The source column of a canonical field."""
        return self.columns.get(name, name)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.format == "synthetic":
            if self.path is not None or self.file_type != "auto" or self.hf_split is not None:
                raise ValueError(
                    "format='synthetic' generates its data: leave path, file_type, hf_split unset"
                )
        elif not self.path:
            raise ValueError(
                f"format='{self.format}' needs path (a file, a dataset folder or hub name)"
            )
        if abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(
                f"split fractions must sum to 1, got {self.split} (sum {sum(self.split):g})"
            )
        if self.split[0] <= 0:
            raise ValueError("the train fraction (first entry of split) must be positive")
        allowed = {
            "pairs": PAIR_FIELDS,
            "survey": SURVEY_FIELDS,
            "synthetic": (),
            "raters": RATER_FIELDS,
        }[self.format]
        unknown = sorted(set(self.columns) - set(allowed))
        if unknown:
            hint = " (set the group column with group_columns)" if "group" in unknown else ""
            raise ValueError(
                f"columns has keys {unknown} that format='{self.format}' does not use; "
                f"allowed: {list(allowed)}{hint}"
            )
        if any(not source for source in self.columns.values()):
            raise ValueError("columns maps to an empty column name")
        if (
            self.format == "pairs"
            and self.pairs.prompt_source == "common_prefix"
            and "prompt" in self.columns
        ):
            raise ValueError("columns['prompt'] conflicts with pairs.prompt_source='common_prefix'")
        if self.group_columns is not None:
            if self.intersectional and self.format not in ("pairs", "raters"):
                raise ValueError(
                    f"group_columns applies to format 'pairs' or 'raters', not '{self.format}', "
                    "when it names several columns"
                )
            _check_names(self.group_columns, "group_columns")
        if self.raters.table is not None and self.format != "raters":
            raise ValueError("raters.table is set but format is not 'raters'")
        if set(self.raters.prefers_a) & set(self.raters.prefers_b):
            raise ValueError(
                f"raters.prefers_a and prefers_b share {sorted(set(self.raters.prefers_a) & set(self.raters.prefers_b))}"
            )
        if self.groups is not None:
            _check_names(self.groups, "groups")
        if any(not k.strip() or not v.strip() for k, v in self.group_map.items()):
            raise ValueError("group_map has an empty group name")
        _check_no_control_characters((*self.group_map, *self.group_map.values()), "group_map")
        return self


def _check_names(names: tuple[str, ...], field: str) -> None:
    if not names:
        raise ValueError(f"{field} is empty; use None for every group")
    if any(not name.strip() for name in names):
        raise ValueError(f"{field} has an empty name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{field} repeats {repeated}")
    _check_no_control_characters(names, field)


def _check_no_control_characters(names: Iterable[str], field: str) -> None:
    bad = [name for name in names if any(unicodedata.category(c) == "Cc" for c in name)]
    if bad:
        raise ValueError(f"{field} has names with a control character (tab, newline...): {bad}")


def _check_template(template: str, *, allowed: set[str], required: set[str]) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"bad template {template!r}: {error}") from None
    unknown = fields - allowed
    if unknown or not required <= fields:
        raise ValueError(
            f"template {template!r} must use {sorted(required)} and only {sorted(allowed)} "
            f"(got {sorted(fields)}; write literal braces as {{{{ }}}})"
        )
