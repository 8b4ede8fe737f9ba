"""``grpo data prepare``: the acceptance command, clean failures, and help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from grpo_cli.main import main

PAPER_GROUPS = "Nigeria,Egypt,India (Current national sample),China,Japan"


def test_acceptance_globalopinionqa_survey_reports_one_pair_per_valid_row(
    goqa_union_path, tmp_path, capsys
):
    # Given the union file and the paper's five countries
    rows = [json.loads(line) for line in goqa_union_path.open(encoding="utf-8")]
    wanted = PAPER_GROUPS.split(",")
    valid = Counter(
        r["country"]
        for r in rows
        if r["country"] in wanted and abs(sum(r["distribution"]) - 1) < 0.05
    )
    # When the acceptance command runs
    code = main(
        [
            "data",
            "prepare",
            str(goqa_union_path),
            "--format",
            "survey",
            "--groups",
            PAPER_GROUPS,
            "--out",
            str(tmp_path / "DIR"),
            "--json",
            str(tmp_path / "S.json"),
        ]
    )
    # Then it succeeds and its counts are the rows with valid distributions, the rest reported
    assert code == 0
    summary = json.loads((tmp_path / "S.json").read_text())
    assert list(summary["groups"]) == wanted, "groups in the selection order"
    counts = {g: c["train"] + c["validation"] + c["test"] for g, c in summary["groups"].items()}
    assert counts == dict(valid), f"expected one pair per valid row, got {counts}"
    assert summary["total"]["pairs"] == 905
    assert summary["rejected_rows"] == {"distribution_not_normalized": 1}
    assert (
        summary["groups"]["India (Current national sample)"]["slug"]
        == "india-current-national-sample"
    )
    printed = capsys.readouterr().out
    assert (
        "india-current-national-sample" in printed and "distribution_not_normalized: 1" in printed
    )
    assert "imbalance ratio" in printed
    assert len((tmp_path / "DIR" / "quarantine.jsonl").read_text().splitlines()) == 1
    # And, the group being in the paper's prompt, a group-blind policy's headroom is 1, and why
    for split in ("train", "validation", "test"):
        headroom = summary["headroom"][split]
        assert headroom["worst_group"] == {"lower": 1.0, "upper": 1.0}, headroom
        assert headroom["reason"].startswith("no prompt is shared by two groups")
        assert headroom["shared_prompts"] == 0
        assert f"  {split}: 0 of " in printed
    assert printed.count("why: no prompt is shared by two groups") == 3


def test_malformed_input_fails_with_its_line_and_writes_nothing(tmp_path, capsys):
    # Given a jsonl file whose third line is broken
    source = tmp_path / "pairs.jsonl"
    good = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "group": "g"})
    source.write_text(good + "\n" + good.replace('"p"', '"q"') + "\n{not json\n")
    # When prepared
    code = main(
        [
            "data",
            "prepare",
            str(source),
            "--format",
            "pairs",
            "--out",
            str(tmp_path / "out"),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    # Then exit code 2, one line on stderr naming line 3, and nothing written
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 3" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.json").exists()


def test_synthetic_needs_no_source_and_prints_the_group_table(tmp_path, capsys):
    code = main(
        ["data", "prepare", "--format", "synthetic", "--out", str(tmp_path / "o"), "--seed", "3"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Eastland" in out and "eastland" in out and "total" in out
    assert json.loads((tmp_path / "o" / "groups.json").read_text())["seed"] == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--format", "synthetic", "--split", "0.5,0.5,0.5"], "sum to 1"),
        (["some.jsonl", "--format", "synthetic"], "synthetic"),
        (["--format", "survey"], "needs path"),
        (["missing.jsonl", "--format", "pairs"], "no such file"),
    ],
)
def test_bad_options_fail_with_one_clear_line(tmp_path, capsys, arguments, message):
    code = main(["data", "prepare", *arguments, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("grpo data prepare: error:"), err
    assert not (tmp_path / "o").exists()


def test_column_mapping_group_map_and_options_reach_the_config(tmp_path):
    from grpo_cli.data_cmd import config_from_args
    from grpo_cli.main import build_parser

    args = build_parser().parse_args(
        [
            "data",
            "prepare",
            "x.csv",
            "--format",
            "pairs",
            "--group-column",
            "country",
            "--column",
            "prompt=question",
            "--group-map",
            "N=North",
            "--groups",
            "North, S",
            "--split",
            "0.7,0.2,0.1",
            "--on-invalid",
            "quarantine",
            "--out",
            "o",
        ]
    )
    config = config_from_args(args)
    assert (config.path, config.group_field, config.columns, config.group_map) == (
        "x.csv",
        "country",
        {"prompt": "question"},
        {"N": "North"},
    )
    assert config.groups == ("North", "S") and config.split == (0.7, 0.2, 0.1)
    assert config.on_invalid == "quarantine"


def test_help_answers_with_examples():
    result = subprocess.run(
        [sys.executable, "-m", "grpo_cli.main", "data", "prepare", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout and "--on-invalid" in result.stdout
