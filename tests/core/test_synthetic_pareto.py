"""The chi sweep on the synthetic bandit: its ends are the methods it mixes, and they end the front."""

from __future__ import annotations

import json

import pytest
import torch

from grpo_core.synthetic.experiment import SyntheticConfig, make_problem, run_methods
from grpo_core.synthetic.pareto import chi_sweep, summarize_sweep

CONFIG = SyntheticConfig(setting="uneven-imbalanced", seeds=4, iterations=2000)


@pytest.fixture(scope="module")
def problem():
    return make_problem(CONFIG)


@pytest.mark.slow  # 2000 iterations x 4 seeds, four times: over two minutes of CPU
@pytest.mark.parametrize("family", ["dpo", "ipo"])
def test_chi_0_is_importance_sampling_and_chi_1_is_grpo_exactly(problem, family):
    sweep = chi_sweep(problem, CONFIG, f"gr_{family}", [0.0, 1.0])
    importance, robust = run_methods(problem, CONFIG, [f"is_{family}", f"gr_{family}"])
    assert torch.equal(sweep[0].val_group_loss, importance.val_group_loss)
    assert torch.equal(sweep[1].val_group_loss, robust.val_group_loss)
    assert torch.equal(sweep[1].group_weights, robust.group_weights)


@pytest.mark.slow  # three chis x 4 seeds x 2000 iterations: about 45 s of CPU
def test_chi_0_and_chi_1_end_the_front_of_the_uneven_imbalanced_setting(problem):
    chis = [0.0, 0.5, 1.0]
    rows = summarize_sweep(CONFIG, "gr_dpo", chis, chi_sweep(problem, CONFIG, "gr_dpo", chis))[
        "rows"
    ]
    worst = [r["worst_val_group_loss"]["mean"] for r in rows]
    average = [r["average_val_group_loss"]["mean"] for r in rows]
    assert rows[0]["pareto"] and rows[-1]["pareto"]
    assert average[0] == min(average), "chi = 0 serves the average best"
    assert worst[-1] == min(worst), "chi = 1 serves the worst group best"


@pytest.mark.parametrize(
    ("method", "chis", "says"),
    [("dpo", [0.5], "needs a group-robust method"), ("gr_dpo", [1.5], "must lie in [0, 1]")],
)
def test_bad_sweeps_are_refused(problem, method, chis, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        chi_sweep(problem, CONFIG, method, chis)


def test_grpo_synthetic_pareto_prints_the_front_and_writes_json_and_figure(capsys, tmp_path):
    from grpo_cli.main import main

    args = ["synthetic", "--pareto", "--seeds", "2", "--iterations", "20", "--chi", "0,1"]
    out = [f"--json={tmp_path / 'sweep.json'}", f"--plot={tmp_path / 'sweep.png'}"]
    assert main([*args, *out, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    document = json.loads((tmp_path / "sweep.json").read_text())
    assert [row["chi"] for row in document["rows"]] == [0.0, 1.0]
    assert "gr_dpo over chi" in printed and "front" in printed
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--pareto", "--chi", "0,2"], "--chi '0,2': give distinct numbers in [0, 1]"),
        (["--pareto", "--chi", "a"], "--chi 'a'"),
        (["--pareto", "--methods", "dpo"], "one group-robust method"),
        (["--pareto", "--methods", "gr_dpo,gr_ipo"], "one group-robust method"),
        (["--plot", "x.png"], "add --pareto"),
    ],
)
def test_bad_pareto_flags_are_one_line(capsys, args, says):
    from grpo_cli.main import EXIT_BAD_INPUT, main

    assert main(["synthetic", *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
