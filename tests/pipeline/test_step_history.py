"""A run folder trained again into a new MLflow run (a sweep run again) carries the whole curve: the
earlier steps it does not train again are sent first, those it trains again are not sent twice."""

from __future__ import annotations

from collections import defaultdict

from mlflow.entities import Metric

from tasks.step_history import StepHistory, read_metrics
from tasks.tracking import MetricBuffer


class Store:
    """What MetricBuffer writes to, kept per run: {run_id: [(step, key, value)]}."""

    tracking_uri = "sqlite:///unused.db"

    def __init__(self):
        self.runs = defaultdict(list)

    def log_batch(self, run_id, metrics):
        self.runs[run_id] += [(m.step, m.key, m.value) for m in metrics]


def train(store, run_id, folder, steps, loss_of=float):
    """A training that logs ``train/loss`` at ``steps`` and flushes at its end."""
    buffer = MetricBuffer(store, run_id, spill=folder / "spill.jsonl", history=folder / "h.jsonl")
    for step in steps:
        buffer.add({"train/loss": loss_of(step)}, step)
    buffer.flush()
    return buffer


def test_a_run_resumed_from_a_checkpoint_gets_the_steps_before_it_and_its_own_after(tmp_path):
    store = Store()
    # Given a run that logged steps 1..5 and stopped after its checkpoint at step 3
    train(store, "first", tmp_path, range(1, 6))
    # When a new run trains the folder again from step 4 (other values: a different machine)
    train(store, "second", tmp_path, range(4, 7), loss_of=lambda step: step + 0.5)
    # Then the new run holds steps 1..3 from the first run and 4..6 of its own, each once
    assert store.runs["second"] == [
        (1, "train/loss", 1.0), (2, "train/loss", 2.0), (3, "train/loss", 3.0),
        (4, "train/loss", 4.5), (5, "train/loss", 5.5), (6, "train/loss", 6.5),
    ]  # fmt: skip
    # and the folder's history is that curve, for the next run again
    history = [(m.step, m.value) for m in read_metrics(tmp_path / "h.jsonl")]
    assert history == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.5), (5, 5.5), (6, 6.5)]


def test_a_finished_run_trained_again_replays_its_whole_curve(tmp_path):
    store = Store()
    train(store, "first", tmp_path, range(1, 4))
    train(store, "second", tmp_path, [])
    assert (
        store.runs["second"]
        == store.runs["first"]
        == [(s, "train/loss", float(s)) for s in (1, 2, 3)]
    )


def test_spilled_metrics_are_in_the_history_and_are_sent_once(tmp_path):
    store = Store()
    # Given a run whose last steps did not reach the server (kept in the spill) but are in the history
    train(store, "first", tmp_path, range(1, 3))
    (tmp_path / "spill.jsonl").write_text((tmp_path / "h.jsonl").read_text())
    # When the folder is trained again from step 3
    train(store, "second", tmp_path, [3])
    # Then each step reaches the new run once, and the spill is gone
    assert [step for step, _, _ in store.runs["second"]] == [1, 2, 3]
    assert not (tmp_path / "spill.jsonl").exists()


def test_a_last_line_cut_short_by_a_crash_is_left_out(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"key": "a", "value": 1.0, "timestamp": 1, "step": 1}\n{"key": "a", "val')
    history = StepHistory(path)
    assert [(m.key, m.step) for m in history.earlier] == [("a", 1)]
    # and what the next run appends is read back whole
    assert [m.step for m in history.replay(2)] == [1]
    history.append([Metric("a", 2.0, 2, 2)])
    assert [(m.key, m.step, m.value) for m in read_metrics(path)] == [("a", 1, 1.0), ("a", 2, 2.0)]
