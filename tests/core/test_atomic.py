"""Result files are standard JSON: nothing non-finite is written."""

import json


def test_a_result_json_holds_null_where_a_value_is_not_finite(tmp_path):
    # given: an interval over one seed (NaN) and an infinite value, nested, beside finite numbers
    from grpo_core.atomic import write_result_json

    result = {"ci95": {"average": float("nan")}, "rows": [1.5, float("inf"), (2, "x")], "n": 3}
    # when
    write_result_json(tmp_path / "out.json", result)
    # then: standard JSON, keys in their order, nothing else changed
    text = (tmp_path / "out.json").read_text()
    assert json.loads(text) == {"ci95": {"average": None}, "rows": [1.5, None, [2, "x"]], "n": 3}
    assert "NaN" not in text and "Infinity" not in text
