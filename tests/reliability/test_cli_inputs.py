"""What a user may type wrong, found by trying every command twice and with wrong values (each ends
in one line naming what and where, exit 2, nothing written, nothing lost): output paths, data
folders, devices, sizes, ports, a file that is not kept metrics, a Dask address, a data file that is
not there."""

from __future__ import annotations

import pytest

from grpo_cli.main import EXIT_BAD_INPUT, main
from grpo_cli.paths import writable_file, writable_folder

EXAMPLE = "examples/tiny_opinions.yaml"


def one_line(capsys, *argv) -> str:
    """The one line a command that refuses its input prints (exit 2, no traceback)."""
    code = main(list(argv))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT and len(lines) == 1, (code, lines)
    return lines[0]


def test_an_existing_file_or_a_new_one_in_new_folders_can_be_written(tmp_path):
    (tmp_path / "result.json").write_text("{}")
    writable_file(tmp_path / "result.json", "--json")  # written again by a second run
    writable_file(tmp_path / "new" / "deeper" / "result.json", "--json")
    writable_folder(tmp_path, "--out")
    writable_folder(tmp_path / "new" / "out", "--out")


@pytest.mark.parametrize(
    ("check", "target", "message"),
    [
        (writable_file, "folder", "--json {p}/folder: is a folder; give the path of a file"),
        (
            writable_file,
            "file/result.json",
            "--json {p}/file/result.json: {p}/file is a file, not a folder",
        ),
        (writable_folder, "file", "--json {p}/file: is a file; give the path of a folder"),
        (writable_folder, "file/out", "--json {p}/file/out: {p}/file is a file, not a folder"),
    ],
)
def test_what_cannot_be_written_is_named_with_its_option(tmp_path, check, target, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError) as refused:
        check(tmp_path / target, "--json")
    assert str(refused.value) == message.format(p=tmp_path)


@pytest.mark.parametrize("content", ['{\n  "train/loss": 0.5\n}\n', "", "a,b\n1,2\n"])
def test_send_metrics_refuses_and_keeps_a_file_that_holds_no_kept_metrics(
    capsys, tmp_path, content
):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    line = one_line(capsys, "send-metrics", str(path), "--run-id", "x")
    assert str(path) in line and "nothing sent, the file is kept" in line
    assert path.read_text() == content


def test_send_metrics_to_a_run_or_store_that_is_not_there_keeps_the_file(capsys, tmp_path):
    from mlflow import MlflowClient

    kept = tmp_path / "unlogged-metrics.jsonl"
    kept.write_text('{"key": "train/loss", "value": 0.5, "timestamp": 1, "step": 0}\n')
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(store).create_experiment("x")
    capsys.readouterr()  # MLflow's lines creating the store
    line = one_line(
        capsys, "send-metrics", str(kept), "--run-id", "f" * 32, "--tracking-uri", store
    )
    assert "no such run" in line and "f" * 32 in line
    none = tmp_path / "none.db"
    line = one_line(
        capsys, "send-metrics", str(kept), "--run-id", "x", "--tracking-uri", f"sqlite:///{none}"
    )
    assert f"--tracking-uri sqlite:///{none}: no MLflow store at {none}" in line
    assert not none.exists()
    assert kept.exists()


def test_data_prepare_refuses_a_json_summary_inside_its_output_folder(capsys, tmp_path):
    out = tmp_path / "prepared"
    for target in (out, out / "train.parquet"):
        line = one_line(
            capsys,
            "data",
            "prepare",
            "--format",
            "synthetic",
            "--out",
            str(out),
            "--json",
            str(target),
        )
        assert "inside --out" in line
    assert not out.exists(), "nothing was prepared"


def test_synthetic_checks_its_plot_format_and_methods_before_running(capsys, tmp_path):
    plot, result = tmp_path / "front.txt", tmp_path / "front.json"
    line = one_line(capsys, "synthetic", "--pareto", "--plot", str(plot), "--json", str(result))
    assert "--plot" in line and ".png" in line and not result.exists()
    assert "methods" in one_line(capsys, "synthetic", "--methods", "", "--seeds", "2")
    assert "methods.0" in one_line(capsys, "synthetic", "--methods", "nope", "--seeds", "2")


def test_report_refuses_an_out_that_is_a_file(capsys, tmp_path):
    (tmp_path / "s.json").write_text("{}")
    line = one_line(capsys, "report", "--run-id", "x", "--out", str(tmp_path / "s.json"))
    assert "is a file; give the path of a folder" in line


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--data", "none", "not a prepared data folder"),
        ("--device", "foo", "device 'foo': use cpu, cuda, cuda:N or auto"),
        ("--cache-dir", "file", "is a file; give the path of a folder"),
    ],
)
def test_train_and_evaluate_name_a_wrong_option(capsys, tmp_path, command, option, value, says):
    (tmp_path / "file").write_text("")
    data = tmp_path / "data"
    source = tmp_path / "prefs.jsonl"  # a real prepared folder: a fake one is refused first
    source.write_text(
        "".join(
            f'{{"group": "{g}", "prompt": "q{i}", "chosen": "y{i}", "rejected": "n{i}"}}\n'
            for g in ("a", "b")
            for i in range(10)
        )
    )
    assert main(["data", "prepare", str(source), "--format", "pairs", "--out", str(data)]) == 0
    capsys.readouterr()
    values = {"--data": str(data), "--device": "cpu", "--cache-dir": str(tmp_path / "cache")}
    values[option] = str(tmp_path / value) if option != "--device" else value
    where = (
        ["--config", EXAMPLE, "--method", "ipo", "--output", str(tmp_path / "run")]
        if command == "train"
        else ["--checkpoint", str(tmp_path / "run")]
    )
    args = [a for key, v in values.items() for a in (key, v)]
    assert says in one_line(capsys, command, *where, *args, "--no-progress")


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--checkpoint", "x", "--data", "y", "--batch-size", "0"],
        ["dashboard", "--port", "70000"],
    ],
)
def test_numbers_out_of_range_are_refused_by_the_parser(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_BAD_INPUT
    assert "give" in capsys.readouterr().err.strip().splitlines()[-1]


def test_run_and_sweep_name_a_data_file_that_is_not_there_before_starting(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    missing = ["--set", "data.format=pairs", "--set", f"data.path={tmp_path}/none.csv"]
    for command in ("run", "sweep"):
        grid = ["--grid", "loss.beta=0.1,0.2"] if command == "sweep" else []
        line = one_line(capsys, command, "--config", EXAMPLE, *missing, *grid)
        assert line == f"grpo {command}: data.path {tmp_path}/none.csv: no such file or folder"
    assert not (tmp_path / "mlflow.db").exists()


def test_a_dask_address_that_is_not_one_is_refused(capsys):
    line = one_line(
        capsys,
        "sweep",
        "--config",
        EXAMPLE,
        "--grid",
        "loss.beta=0.1,0.2",
        "--dask-address",
        "nope",
    )
    assert "'nope'" in line and "tcp://" in line


def test_a_chat_template_folder_that_is_not_there_is_named(capsys, tmp_path):
    out, missing = tmp_path / "prepared", tmp_path / "no-model"
    line = one_line(
        capsys, "data", "prepare", "--format", "synthetic", "--out", str(out),
        "--chat-template", str(missing),
    )  # fmt: skip
    assert line.endswith(f"--chat-template {missing}: no such folder (a model's folder)")
    assert not out.exists()
