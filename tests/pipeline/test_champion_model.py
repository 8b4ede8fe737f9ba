"""The registered policy is a real MLflow model: it loads, scores candidate responses, generates,
serves over HTTP and exports as a Hugging Face folder."""

from __future__ import annotations

import json
import math
import os
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch

from grpo_cli.main import main
from grpo_core.lm.checkpoint import latest_checkpoint, read_run_info
from grpo_core.lm.config import LoraConfig
from grpo_core.lm.serving import (
    BASE,
    export_pretrained,
    load_served_policy,
    response_logp,
    score_responses,
    sequence_logps,
)
from grpo_core.lm.training import train_method
from tests.lm.helpers import opinion_frames, tiny_policy_and_data, tiny_run_config, write_data_dir
from tests.pipeline.servers import BIN, Service, free_port, wait_healthy

PROMPT = "Opinion of people in Northland on: more money for schools?\nA. Yes\nB. No"
NAME = "champion-test-policy"


def test_response_logp_is_the_sum_of_the_response_tokens_log_probs():
    # Given logits of 4 positions over a vocabulary of 3, and a prompt of 2 tokens
    logits = torch.tensor(
        [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, math.log(3.0), 0.0], [9.0, 9.0, 9.0]]
    )
    ids = torch.tensor([0, 1, 2, 1])
    # When the response (tokens 2 and 3: ids 2, 1) is scored
    value = float(response_logp(logits, ids, prompt_length=2))
    # Then it is log softmax(logits[1])[2] + log softmax(logits[2])[1], gathered by hand
    first = 3.0 - math.log(math.exp(1.0) + math.exp(2.0) + math.exp(3.0))
    second = math.log(3.0) - math.log(1.0 + 3.0 + 1.0)
    assert value == pytest.approx(first + second, abs=1e-6)
    assert float(response_logp(torch.zeros(3, 5), torch.tensor([0, 1, 2]), 1)) == pytest.approx(
        2 * -math.log(5.0), abs=1e-6
    ), "uniform logits give -ln V per response token"
    with pytest.raises(ValueError, match="prompt_length"):
        response_logp(logits, ids, prompt_length=4)


def test_sequence_logps_equal_the_training_policy_scores(tmp_path):
    # Given a tiny policy and the tokenised pairs it trains on
    policy, data, _ = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 4, "Southland": 4})
    )
    batch = data.batch(torch.arange(3))
    with torch.no_grad():
        chosen, rejected = policy.pair_logps(batch.inputs)
    # When the serving helper scores the same prompts and responses, one sequence at a time
    for i, pair in enumerate(data.pairs[:3]):
        served = sequence_logps(
            policy.model, pair.prompt, [pair.chosen, pair.rejected], max_length=64
        )
        # Then it gives the training loop's log pi(y|x) of each side
        assert served == pytest.approx([float(chosen[i]), float(rejected[i])], abs=1e-4)


def _train(root: Path, name: str, lora: bool) -> Path:
    """A tiny gr_ipo run (6 steps) of full fine-tuning or LoRA; returns its run folder."""
    config = tiny_run_config()
    if lora:
        model = config.model.model_copy(
            update={"lora": LoraConfig(enabled=True, target_modules=("q_proj", "v_proj"))}
        )
        config = config.model_copy(update={"model": model})
    data = root / "data"
    if not data.exists():
        write_data_dir(data, opinion_frames({"Northland": 24, "Southland": 8}))
    run_dir = root / name
    train_method(
        config.recipe("gr_ipo"), "gr_ipo", 0, data, run_dir, device="cpu", cache_dir=root / "cache"
    )
    return run_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite MLflow store where a tiny full fine-tuning run's policy is logged from its run,
    registered and made the champion (as the registry task does), and the run folders."""
    from mlflow import MlflowClient

    from tasks.model_logging import log_policy_model

    root = tmp_path_factory.mktemp("champion")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        client = MlflowClient(uri)
        experiment = client.create_experiment("champion-test", artifact_location=str(root / "art"))
        run_dir = _train(root, "full", lora=False)
        run = client.create_run(experiment)
        model_id = log_policy_model(
            client, run.info.run_id, run_dir, groups=["Northland", "Southland"],
            evaluation={"eval/validation/worst_group/reward_accuracy": 0.5, "eval/x": math.nan},
            step=6,
        )  # fmt: skip
        client.set_terminated(run.info.run_id)
        client.create_registered_model(NAME)
        version = client.create_model_version(
            NAME, f"models:/{model_id}", run_id=run.info.run_id, model_id=model_id
        )
        client.set_registered_model_alias(NAME, "champion", version.version)
        yield {"uri": uri, "root": root, "run_dir": run_dir, "run_id": run.info.run_id,
               "model_id": model_id}  # fmt: skip


def _direct(run_dir: Path):
    checkpoint = latest_checkpoint(run_dir)
    return load_served_policy(checkpoint, read_run_info(checkpoint)["start_model"])


def test_the_champion_loads_with_pyfunc_and_answers_both_kinds_of_input(store, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    # Given the champion alias of the registered model
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    # Then its metadata carries the groups and the finite evaluation metrics, and its run is linked
    assert model.metadata.metadata["groups"] == ["Northland", "Southland"]
    assert model.metadata.metadata["evaluation"] == {
        "eval/validation/worst_group/reward_accuracy": 0.5
    }
    assert model.metadata.model_id == store["model_id"]
    outputs = mlflow.MlflowClient(store["uri"]).get_run(store["run_id"]).outputs.model_outputs
    assert [o.model_id for o in outputs] == [store["model_id"]]
    # When it scores a survey question's two options and generates for the same prompt
    frame = pd.DataFrame({"prompt": [PROMPT, PROMPT], "responses": [["A", "B"], None]})
    scored, generated = model.predict(frame).to_dict("records")
    # Then the scores are the checkpoint's own, with the implicit reward beta * (log pi - log ref)
    direct = _direct(store["run_dir"])
    expected = score_responses(direct, PROMPT, ["A", "B"])
    assert scored["logps"] == pytest.approx(expected.logps, abs=1e-5)
    assert scored["reference_logps"] == pytest.approx(expected.reference_logps, abs=1e-5)
    assert scored["rewards"] == pytest.approx(
        [
            direct.beta * (p - r)
            for p, r in zip(expected.logps, expected.reference_logps, strict=True)
        ],
        abs=1e-5,
    )
    best = max(range(2), key=lambda i: expected.logps[i])
    assert (scored["preferred_index"], scored["preferred"]) == (best, ["A", "B"][best])
    assert scored["text"] is None
    assert isinstance(generated["text"], str) and generated["logps"] is None
    # And a frame of prompts alone generates, with the token budget as a parameter
    only = model.predict(pd.DataFrame({"prompt": [PROMPT]}), params={"max_new_tokens": 2})
    assert len(direct.tokenizer(only["text"][0], add_special_tokens=False)["input_ids"]) <= 2


def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_export_writes_a_folder_transformers_loads_and_refuses_a_non_empty_one(
    store, tmp_path, monkeypatch, capsys
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    out = tmp_path / "exported"
    # When the champion is exported
    code = main(["export", "--model", f"models:/{NAME}@champion", "--out", str(out)])
    # Then transformers loads it, tokenizer included, and it computes the policy's logits
    assert code == 0 and capsys.readouterr().out.strip().startswith("exported models:/")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    direct = _direct(store["run_dir"])
    assert torch.allclose(_logits(model, tokenizer), _logits(direct.model, tokenizer), atol=1e-5)
    generated = model.generate(**tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=2)
    assert generated.shape[1] > len(tokenizer(PROMPT)["input_ids"])
    # And exporting again into the same (now non-empty) folder is refused in one line, exit 2
    capsys.readouterr()
    code = main(["export", "--model", f"models:/{NAME}@champion", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("grpo export: --out ") and "not empty" in err
    # And an unknown model is bad input too
    code = main(
        ["export", "--model", "models:/no-such-model@champion", "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("grpo export: --model models:/no-such-model@champion: ")
    assert not (tmp_path / "x").exists()


def test_a_lora_policy_exports_as_adapters_or_merged_with_the_same_logits(store, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Given a LoRA run (its adapters trained 6 steps)
    run_dir = _train(store["root"], "lora", lora=True)
    checkpoint = latest_checkpoint(run_dir)
    start = read_run_info(checkpoint)["start_model"]
    direct = load_served_policy(checkpoint, start)
    tokenizer = direct.tokenizer
    expected = _logits(direct.model, tokenizer)
    with direct.reference_model() as reference:
        reference_logits = _logits(reference, tokenizer)
    assert not torch.allclose(expected, reference_logits), "the adapters changed the policy"
    # When it is exported as adapters, and merged
    adapters = export_pretrained(checkpoint, start, tmp_path / "adapters", merge=False)
    merged = export_pretrained(checkpoint, start, tmp_path / "merged", merge=True)
    # Then the adapter folder names its own base, and both load with the policy's logits
    assert (adapters / "adapter_config.json").is_file() and (
        adapters / BASE / "config.json"
    ).is_file()
    assert not (merged / "adapter_config.json").exists()
    for folder in (adapters, merged):
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        loaded = AutoTokenizer.from_pretrained(folder)
        assert torch.allclose(_logits(model, loaded), expected, atol=1e-5), folder.name


@pytest.mark.integration
def test_mlflow_models_serve_answers_invocations_with_the_champion(store, tmp_path):
    # Given the real scoring server on loopback, serving the champion from the registry
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    server = Service(command, tmp_path / "serve.log", env)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/ping", server.process, server.log, timeout=180)
        # When a survey question and a bare prompt are POSTed to /invocations
        body = {
            "dataframe_split": {
                "columns": ["prompt", "responses"],
                "data": [[PROMPT, ["A", "B"]], [PROMPT, None]],
            }
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        server.stop()
    # Then the answer holds the option scores of the checkpoint, and the generated text
    scored, generated = answer["predictions"]
    expected = score_responses(_direct(store["run_dir"]), PROMPT, ["A", "B"])
    assert scored["logps"] == pytest.approx(expected.logps, abs=1e-5)
    assert scored["preferred"] == ["A", "B"][scored["preferred_index"]]
    assert isinstance(generated["text"], str)
    # And the server is gone
    assert server.process.poll() is not None


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_the_experiment_flow_registers_pyfunc_models_and_keeps_the_checkpoints(
    tmp_path, mlflow_store
):
    import mlflow
    from mlflow import MlflowClient

    from flows.experiment import experiment
    from tests.pipeline.conftest import tiny_config

    # Given a tiny experiment with one method
    config = tiny_config(tmp_path / "outputs", name="served", methods=("gr_ipo",), seeds=(0,))
    # When the flow runs
    result = experiment(config)
    # Then its version is a logged model of its training run, the champion, and loads with pyfunc
    client = MlflowClient(mlflow_store)
    (version,) = client.search_model_versions("name='served-policy'")
    assert version.source.startswith("models:/m-"), version.source
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == version.run_id and logged.name == "policy"
    assert result["champion"]["uri"] == "models:/served-policy@champion"
    model = mlflow.pyfunc.load_model("models:/served-policy@champion")
    assert model.metadata.metadata["groups"] == list(
        json.loads(client.get_run(version.run_id).data.tags["grpo.group_slugs"]).values()
    )
    (row,) = model.predict(pd.DataFrame({"prompt": [PROMPT], "responses": [["A", "B"]]})).to_dict(
        "records"
    )
    assert len(row["logps"]) == 2 and row["preferred"] in ("A", "B")
    # And the run keeps its raw checkpoint for resuming
    files = {a.path for a in client.list_artifacts(version.run_id, "checkpoint")}
    assert {"checkpoint/run.json", "checkpoint/trainer_state.safetensors"} <= files
