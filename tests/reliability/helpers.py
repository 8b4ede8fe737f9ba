"""What the reliability tests share: a tiny run config and the CLI called in-process."""

from __future__ import annotations

from grpo_cli.main import main


def tiny_config(
    name: str,
    *,
    steps: int = 4,
    checkpoint_every: int = 2,
    splits: tuple[str, ...] = ("validation", "test"),
    learning_rate: str = "1.0e-3",
) -> str:
    """A run config (YAML) of one IPO seed on the built-in survey with the tiny model, no SFT."""
    return f"""
name: {name}
methods: [ipo]
seeds: [0]
data: {{format: synthetic, synthetic: {{num_questions: 60}}}}
model: {{preset: tiny, dtype: float32}}
sft: {{enabled: false}}
optim: {{max_steps: {steps}, batch_size: 8, learning_rate: {learning_rate}}}
eval: {{splits: [{", ".join(splits)}]}}
checkpoint_every: {checkpoint_every}
"""


def run(capsys, *argv) -> tuple[int, list[str], str]:
    """``grpo *argv`` in this process: its exit code, its non-empty stderr lines and its stdout
    (stderr never holds a traceback)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out
