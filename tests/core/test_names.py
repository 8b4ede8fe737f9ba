"""Metric keys and tags: built and parsed by one module, directions a property of the metric."""

import pytest

from grpo_core import names


def test_direction_comes_from_the_metric_and_spreads_are_better_small():
    assert names.direction("worst_group", "loss") is False
    assert names.direction("average", "reward_accuracy") is True
    assert names.direction("imbalance", "loss") is False
    assert names.direction("gap", "reward_accuracy") is False, (
        "a gap between groups is better small"
    )
    assert names.direction("average", "chosen_reward") is None
    assert names.direction("group", "count") is None


def test_eval_keys_build_and_parse_back():
    assert (
        names.eval_key("test", "group", "loss", "india-current")
        == "eval/test/group/india-current/loss"
    )
    assert names.eval_key("validation", "worst_group", "reward_accuracy") == (
        "eval/validation/worst_group/reward_accuracy"
    )
    for key in ("eval/test/group/india-current/loss", "eval/validation/worst_group/reward_accuracy",
                "eval/test/imbalance/loss", "drift/test/group/japan/reward_accuracy"):  # fmt: skip
        parsed = names.EvalKey.parse(key)
        assert parsed is not None and str(parsed) == key
    parsed = names.EvalKey.parse("eval/test/group/india-current/loss")
    assert (parsed.split, parsed.scope, parsed.group, parsed.metric) == (
        "test", "group", "india-current", "loss",
    )  # fmt: skip
    assert parsed.aggregate == "group/india-current/loss"
    assert str(parsed.as_drift()) == "drift/test/group/india-current/loss"


@pytest.mark.parametrize(
    "key", ["train/loss", "eval/test/group/x", "eval/test/best_group/loss", "eval/test", "sft/loss"]
)
def test_other_keys_do_not_parse_as_evaluation_keys(key):
    assert names.EvalKey.parse(key) is None


def test_headline_and_summary_lists():
    assert names.HEADLINE == (
        "worst_group/loss", "average/loss", "worst_group/reward_accuracy", "average/reward_accuracy",
    )  # fmt: skip
    assert set(names.HEADLINE) < set(names.SUMMARY)
    assert {names.split_aggregate(k)[0] for k in names.SUMMARY} == {
        "worst_group", "average", "imbalance", "gap",
    }  # fmt: skip
    assert names.label("worst_group/loss") == "worst-group loss"
    assert names.label("gap/reward_accuracy") == "gap (best-worst) reward accuracy"


def test_every_key_uses_the_allowed_characters():
    import re

    keys = [
        *names.SUMMARY, *names.CHAMPION_METRICS, *names.TRAIN_OUTCOME, names.TRAIN_STEP_SIZE,
        names.train_group_key("group_weight", "india-current"), names.SFT_LOSS,
        names.synthetic_key("max_reward_error", "ci95"), names.synthetic_group_weight_key(1),
    ]  # fmt: skip
    for key in keys:
        assert re.fullmatch(r"[a-z0-9_./-]+", key), key
    assert names.parse_train_group_key("train/group_weight/japan") == ("group_weight", "japan")
    assert names.parse_train_group_key("train/loss") is None


def test_summary_keys_build_and_parse_back():
    # Given a method, a split, a headline aggregate and a statistic over seeds
    key = names.summary_key("gr_ipo", "validation", "worst_group/reward_accuracy", "lo")
    # Then the key reads summary/<method>/<split>/<scope>/<metric>/<stat> and parses back
    assert key == "summary/gr_ipo/validation/worst_group/reward_accuracy/lo"
    parsed = names.SummaryKey.parse(key)
    assert parsed == names.SummaryKey(
        "gr_ipo", "validation", "worst_group", "reward_accuracy", "lo"
    )
    assert str(parsed) == key
    assert [names.summary_key("dpo", "test", "average/loss", s) for s in names.SEED_STATS] == [
        "summary/dpo/test/average/loss/mean",
        "summary/dpo/test/average/loss/lo",
        "summary/dpo/test/average/loss/hi",
    ]


@pytest.mark.parametrize(
    "key",
    [
        "summary/dpo/test/worst_group/loss",  # no statistic
        "summary/dpo/test/worst_group/loss/median",  # not a statistic of the summary
        "summary/dpo/test/best_group/loss/mean",  # not a scope
        "summary/dpo/test/group/loss/mean",  # per-group values live in the table artifact
        "summary//test/worst_group/loss/mean",  # no method
        "eval/test/worst_group/loss",
    ],
)
def test_other_keys_do_not_parse_as_summary_keys(key):
    assert names.SummaryKey.parse(key) is None


def test_headroom_keys_build_and_parse_back():
    built = {
        names.headroom_key("test", "worst_group", "reward_accuracy_upper"): (
            "headroom/test/worst_group/reward_accuracy_upper"
        ),
        names.headroom_key("validation", "average", "reward_accuracy_lower"): (
            "headroom/validation/average/reward_accuracy_lower"
        ),
        names.headroom_key("test", "group", "reward_accuracy", "japan"): (
            "headroom/test/group/japan/reward_accuracy"
        ),
        names.headroom_key("train", "data", "shared_prompts"): "headroom/train/data/shared_prompts",
    }
    for key, expected in built.items():
        assert key == expected
        assert str(names.HeadroomKey.parse(key)) == key
    assert names.HeadroomKey.parse("headroom/test/group/japan/reward_accuracy") == (
        names.HeadroomKey("test", "group", "reward_accuracy", "japan")
    )


@pytest.mark.parametrize(
    "key",
    [
        "eval/test/worst_group/reward_accuracy",
        "headroom/test/worst_group/reward_accuracy",
        "headroom/test/worst_group/loss_upper",
        "headroom/test/data/reward_accuracy_upper",
        "headroom/test/group/japan/loss",
        "headroom/test/group/reward_accuracy",
        "headroom//worst_group/reward_accuracy_upper",
        "headroom/test/spread/reward_accuracy_upper",
    ],
)
def test_other_keys_do_not_parse_as_headroom_keys(key):
    assert names.HeadroomKey.parse(key) is None
