"""Config sections: frozen, strict, every field described, cross-field checks raise."""

import pytest
from pydantic import BaseModel, ValidationError

from grpo_core.config import EvalConfig, GroupWeightsConfig, LossConfig, OptimConfig, flatten
from grpo_core.synthetic.experiment import SyntheticConfig


def all_fields(model: type[BaseModel], prefix=""):
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from all_fields(annotation, f"{prefix}{name}.")


@pytest.mark.parametrize(
    "section", [LossConfig, GroupWeightsConfig, OptimConfig, EvalConfig, SyntheticConfig]
)
def test_every_field_is_described(section):
    missing = [name for name, info in all_fields(section) if not info.description]
    assert not missing, f"fields without a description: {missing}"


def test_sections_are_frozen_and_reject_unknown_keys():
    config = LossConfig()
    with pytest.raises(ValidationError):
        config.beta = 2.0
    with pytest.raises(ValidationError, match="extra"):
        LossConfig(betta=0.1)


def test_full_batch_with_accumulation_is_refused():
    with pytest.raises(ValidationError, match="grad_accum_steps"):
        OptimConfig(batch_size=None, grad_accum_steps=2)


def test_robust_mix_is_bounded():
    with pytest.raises(ValidationError):
        GroupWeightsConfig(robust_mix=1.5)


def test_closed_form_refuses_dpo_methods():
    with pytest.raises(ValidationError, match="IPO family"):
        SyntheticConfig(solver="closed_form", methods=("dpo", "ipo"))


def test_flatten_gives_dotted_string_params():
    flat = flatten(OptimConfig(max_steps=7))
    assert flat["max_steps"] == "7"
    assert flat["plateau.factor"] == "0.1"
    assert flat["max_grad_norm"] == "10.0"
    assert all(isinstance(v, str) for v in flat.values())


def test_flatten_keeps_user_keyed_maps_as_one_json_param():
    # Group names such as "India (Current national sample)" are not valid MLflow param keys.
    from mlflow.utils.validation import _validate_param_name

    from grpo_core.data.config import DataConfig

    flat = flatten(
        DataConfig(group_map={"India (Current national sample)": "India"}), prefix="data."
    )
    assert flat["data.group_map"] == '{"India (Current national sample)": "India"}'
    assert flat["data.synthetic.num_groups"] == "3"
    for key in flat:
        _validate_param_name(key)
