"""A collapsed run (gradient norm 0, or the loss frozen) is flagged; a moving one is not."""

from __future__ import annotations

import torch

from grpo_core.lm.callbacks import CollapseWatch
from grpo_core.loop import StepRecord

RECORD = StepRecord(0, torch.tensor(0.0), torch.zeros(2), torch.ones(2), torch.ones(2), 0.1, 0.0)


def watch(steps: list[dict[str, float]], min_steps: int = 10) -> str | None:
    w = CollapseWatch(min_steps)
    for metrics in steps:
        w.on_step(RECORD, metrics)
    return w.warning()


def test_a_gradient_of_zero_for_min_steps_is_a_collapse():
    moving = [{"train/loss": float(i), "train/grad_norm": 1.0} for i in range(5)]
    dead = [{"train/loss": float(i), "train/grad_norm": 0.0} for i in range(5, 15)]
    text = watch(moving + dead)
    assert text is not None and text.startswith("the run collapsed: for 10 consecutive steps")
    assert watch(moving + dead[:9]) is None, "9 steps are not enough"


def test_a_frozen_loss_is_a_collapse_even_with_a_gradient():
    frozen = [{"train/loss": 0.25, "train/grad_norm": 0.5}] * 11
    assert "for 10 consecutive steps" in watch(frozen), "the first step has nothing to equal"


def test_a_short_run_stuck_from_its_start_is_flagged_and_a_moving_one_is_not():
    assert watch([{"train/loss": 0.25}] * 3) is not None
    assert watch([{"train/loss": 0.25}] * 2) is None, "two steps say too little"
    assert watch([{"train/loss": 0.3}, {"train/loss": 0.25}, {"train/loss": 0.25}]) is None


def test_sft_steps_are_not_watched():
    assert watch([{"sft/loss": 1.0, "sft/grad_norm": 0.0}] * 20) is None
