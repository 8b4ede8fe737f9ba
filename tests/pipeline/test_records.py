"""The values that cross a flow/task boundary: frozen, round-trip through JSON, and written to the
flows' JSON results with exactly the keys those results always had."""

from __future__ import annotations

import json
import math
import pickle

import pydantic
import pytest

from tasks.records import (
    Champion,
    ChildResult,
    Comparison,
    DriftAlert,
    Failure,
    ParentRun,
    PreparedData,
    Promotion,
    ReportFiles,
    ResolvedModel,
    StartModelRef,
    TrainedRun,
    UnseenGroups,
)

TRAINED = {
    "method": "gr_dpo",
    "seed": 1,
    "run_id": "abc",
    "run_dir": "/runs/gr_dpo-seed1",
    "steps": 3,
    "timing": {"seconds_per_step": 0.5},
}
RECORDS = [
    ParentRun(run_id="p", experiment_id="1", tracking_uri="sqlite:///m.db"),
    PreparedData(
        data_dir="/data/k",
        summary={"groups": {"North": {"slug": "north", "train": 4}}, "total": 4},
        slugs={"north": "North"},
        groups=("North",),
    ),
    StartModelRef(path="/cache/sft", fingerprint="f"),
    TrainedRun(**TRAINED),
    ChildResult(**TRAINED, metrics={"eval/test/worst_group/loss": 0.7}, value=0.7),
    ChildResult(**TRAINED, metrics={}, value=None, held_out_group="North"),
    Failure(method="dpo", seed=0, run_id=None, reason="lost worker", sweep_point="a=1"),
    ReportFiles(html="/r/index.html", logged="file:///r/index.html"),
    ResolvedModel(checkpoint="/c", uri="models:/m@champion", label="m-v1", source_run_id="s"),
    DriftAlert(status="alert", degraded={"north": 0.2}, summary="1 group worse"),
    Comparison(
        split="test",
        rows=[{"method": "dpo", "seeds": 2, "ci95": {}}],
        gains=[],
        best_worst_group_loss="dpo",
        best_worst_group_reward_accuracy=None,
    ),  # fmt: skip
    UnseenGroups(split="test", tables={"loss": [{"method": "dpo", "group": "North"}]}),
    Promotion(
        model="m",
        champion=Champion(version=2, method="dpo", seed=0, run_id="r", value=0.6),
        uri="models:/m@champion",
        decisions=[{"method": "dpo", "outcome": "promoted"}],
    ),  # fmt: skip
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_round_trips_through_json_and_pickle(record):
    # Given a record, when it goes to JSON and back (the flows' results, Prefect's result store)
    again = type(record).model_validate_json(record.model_dump_json())
    # then it is the same record, and so it is through pickle (Prefect's default serializer)
    assert again == record, f"{type(record).__name__} changed through JSON: {again!r}"
    assert pickle.loads(pickle.dumps(record)) == record


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_is_frozen_and_rejects_unknown_fields(record):
    field = next(iter(type(record).model_fields))
    with pytest.raises(pydantic.ValidationError):
        setattr(record, field, getattr(record, field))
    with pytest.raises(pydantic.ValidationError):
        type(record).model_validate(record.model_dump() | {"unknown": 1})


def test_a_failure_is_written_with_the_keys_it_always_had():
    # Given the three kinds of failure: a run that failed, one left out of a group, a lost task
    failed = Failure(method="dpo", seed=0, run_id="r", reason="worker died")
    held_out = failed.model_copy(update={"held_out_group": "North"})
    lost = Failure.of(RuntimeError("worker lost\ntraceback"), "ipo", 1, run_id=None)
    # then each JSON object has the keys it had, and the reason is the error's first line
    assert failed.as_json() == {"method": "dpo", "seed": 0, "run_id": "r", "reason": "worker died"}
    assert list(held_out.as_json()) == ["method", "seed", "run_id", "reason", "held_out_group"]
    assert lost.as_json() == {"method": "ipo", "seed": 1, "run_id": None, "reason": "worker lost"}


def test_a_childs_run_fields_keep_their_order_and_nan_stays_nan():
    child = ChildResult(
        **TRAINED, metrics={"eval/test/group/north/loss": math.nan}, value=math.nan,
        sweep_point="optim.learning_rate=0.0003",
    )  # fmt: skip
    fields = ("method", "seed", "sweep_point", "run_id", "run_dir", "timing", "metrics")
    assert list(child.json_fields(fields)) == list(fields), "the order of the sweep's runs"
    text = json.dumps(child.json_fields(fields), default=str)
    assert '"eval/test/group/north/loss": NaN' in text, "NaN is written as json.dumps writes it"
    assert "held_out_group" not in child.as_json(), "an absent held-out group is left out"


def test_a_drift_alert_says_its_summary_only_when_it_has_one():
    assert DriftAlert(status="ok", degraded={}).as_json() == {"status": "ok", "degraded": {}}
    assert "summary" in DriftAlert(status="alert", degraded={"n": 0.2}, summary="s").as_json()


def test_prepared_data_knows_each_groups_slug():
    data = PreparedData(
        data_dir="/d", summary={}, slugs={"north": "North", "south": "South"},
        groups=("North", "South"),
    )  # fmt: skip
    assert data.slug_of("South") == "south"
