"""DataConfig: defaults build the synthetic survey; bad combinations raise (style: config)."""

from __future__ import annotations

import pydantic
import pytest
from pydantic import BaseModel

from grpo_core.config import Section
from grpo_core.data.config import PAPER_PROMPT_TEMPLATE, DataConfig


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _models(annotation)
    return found


def test_defaults_are_the_builtin_synthetic_survey_with_the_papers_prompt_and_splits():
    config = DataConfig()
    assert config.format == "synthetic" and config.path is None, "default must need no file"
    assert config.split == (0.8, 0.1, 0.1), "default split must be the paper's 80/10/10"
    assert config.survey.prompt_template == PAPER_PROMPT_TEMPLATE
    assert config.survey.pairing == "best_vs_random" and config.survey.pairs_per_row == 1


def test_every_field_of_every_section_has_a_description_and_sections_are_frozen():
    for model in _models(DataConfig):
        assert issubclass(model, Section), f"{model.__name__} should be a frozen Section"
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} needs Field(description=...)"
    with pytest.raises(pydantic.ValidationError):
        DataConfig().seed = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        DataConfig(unknown=1)  # type: ignore[call-arg]


def test_group_column_defaults_to_country_for_surveys_and_group_for_pairs():
    assert DataConfig(format="survey", path="x.jsonl").group_field == "country"
    assert DataConfig(format="pairs", path="x.jsonl").group_field == "group"
    assert DataConfig(format="pairs", path="x.jsonl", group_columns="team").group_field == "team"


def test_the_former_group_column_spelling_warns_and_makes_the_same_config():
    # Given the one-column spelling of older configs, and the same column in group_columns
    new = DataConfig(format="pairs", path="x.jsonl", group_columns=["team"])
    # When the old spelling is validated
    with pytest.warns(DeprecationWarning, match="group_columns"):
        old = DataConfig.model_validate(
            {"format": "pairs", "path": "x.jsonl", "group_column": "team"}
        )
    # Then it is the same config: the same group column, the same dump (the prepared data's key)
    assert old == new and old.model_dump() == new.model_dump(), (old, new)
    with pytest.raises(pydantic.ValidationError, match="give group_columns only"):
        DataConfig(format="pairs", path="x", group_column="a", group_columns=("b",))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"path": "x.jsonl"}, "synthetic"),
        ({"format": "pairs"}, "needs path"),
        ({"split": (0.8, 0.1, 0.2)}, "sum to 1"),
        ({"split": (0.0, 0.5, 0.5)}, "train fraction"),
        ({"format": "pairs", "path": "x", "columns": {"question": "q"}}, "allowed"),
        ({"format": "pairs", "path": "x", "columns": {"group": "country"}}, "group_column"),
        ({"groups": ("A", "A")}, "repeats"),
        ({"groups": ()}, "empty"),
        ({"synthetic": {"num_groups": 2}}, "group_sizes has 3 entries"),
        ({"synthetic": {"min_options": 4, "max_options": 3}}, "exceeds"),
        ({"survey": {"prompt_template": "Opinion of {people}: {question}"}}, "template"),
        ({"survey": {"prompt_template": "no question here"}}, "template"),
        ({"survey": {"option_template": "{option}"}}, "template"),
        (
            {
                "format": "pairs",
                "path": "x",
                "columns": {"prompt": "p"},
                "pairs": {"prompt_source": "common_prefix"},
            },
            "conflicts",
        ),
    ],
)
def test_cross_field_checks_raise_instead_of_fixing(values, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        DataConfig.model_validate(values)
