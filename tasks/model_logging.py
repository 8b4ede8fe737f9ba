"""A trained run's policy as an MLflow model: what the registry registers and ``mlflow models serve``
serves.

:class:`PolicyModel` is the pyfunc model; its artifacts are the run's final checkpoint (the weights
or LoRA adapters, the tokenizer and its chat template, ``run.json``) and the starting model (the
LoRA base, and the reference of the implicit reward). ``predict`` takes a DataFrame with a
``prompt`` column and, optionally, a ``responses`` column (a list of candidate responses per
prompt):

- a row without responses gets the policy's greedy ``text``;
- a row with responses gets ``logps`` (log pi(y|x) per response), ``reference_logps``, ``rewards``
  (beta * (log pi - log pi_ref)), ``preferred_index`` and ``preferred`` (the most likely response),
  so a survey question is answered per option.

The class lives in this importable module (no Prefect), so the model loads wherever the project is
installed (``--env-manager local``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model

POLICY = "policy"
"""The name of the logged model in its run."""
MAX_NEW_TOKENS = 32
EXAMPLE_PROMPT = "Which option do you prefer?\nA. Yes\nB. No"
EXAMPLE_RESPONSES = ["A", "B"]
PIP_PACKAGES = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "peft", "pandas")
"""What ``predict`` imports besides this project (which must be installed: ``--env-manager local``)."""
COLUMNS = ("text", "logps", "reference_logps", "rewards", "preferred_index", "preferred")


class PolicyModel(mlflow.pyfunc.PythonModel):
    """A trained GRPO/DPO policy: generate from prompts, or score candidate responses."""

    def load_context(self, context) -> None:
        from grpo_core.lm.serving import load_served_policy

        trust = bool((context.model_config or {}).get("trust_remote_code", False))
        self.served = load_served_policy(
            context.artifacts["checkpoint"], context.artifacts["start_model"],
            trust_remote_code=trust, trust_flag="model_config={'trust_remote_code': True}",
        )  # fmt: skip

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pandas as pd

        from grpo_core.lm.serving import generate_text, score_responses

        max_new_tokens = int((params or {}).get("max_new_tokens", MAX_NEW_TOKENS))
        frame = pd.DataFrame(model_input)
        if "prompt" not in frame.columns:
            raise ValueError("the input needs a 'prompt' column (and optionally 'responses')")
        rows = []
        for index, prompt in enumerate(frame["prompt"]):
            responses = _responses(frame["responses"].iloc[index]) if "responses" in frame else []
            row: dict[str, Any] = dict.fromkeys(COLUMNS)
            if responses:
                scores = score_responses(self.served, str(prompt), responses)
                row.update(
                    logps=scores.logps, reference_logps=scores.reference_logps,
                    rewards=scores.rewards, preferred_index=scores.preferred,
                    preferred=responses[scores.preferred],
                )  # fmt: skip
            else:
                row["text"] = generate_text(self.served, str(prompt), max_new_tokens=max_new_tokens)
            rows.append(row)
        return pd.DataFrame(rows, columns=list(COLUMNS), dtype=object)


def _responses(value: Any) -> list[str]:
    """A cell of the ``responses`` column as a list of strings (missing: none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(item) for item in value]


def signature():
    """``prompt`` (string) and optional ``responses`` (list of strings); ``max_new_tokens``."""
    from mlflow.models import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [
            ColSpec(DataType.string, "prompt"),
            ColSpec(Array(DataType.string), "responses", required=False),
        ]
    )
    params = ParamSchema([ParamSpec("max_new_tokens", DataType.long, MAX_NEW_TOKENS)])
    return ModelSignature(inputs=inputs, params=params)


def pip_requirements() -> list[str]:
    """The packages ``predict`` needs, at the versions installed here."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in PIP_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package)}")
    return pins


@contextlib.contextmanager
def quiet_pyfunc_logger() -> Iterator[None]:
    """MLflow's pyfunc logger says at every save that a Python object is pickled (README
    "Security" says what that means for who may load the model): once per run is noise."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def stage_checkpoint(checkpoint: Path, folder: Path) -> Path:
    """The parts of ``checkpoint`` the model needs (``model/`` and ``run.json``; not the optimizer
    state, which only resuming needs and which stays in the run's ``checkpoint/`` artifacts)."""
    from grpo_core.lm.checkpoint import MODEL, RUN_JSON

    staged = folder / "checkpoint"
    shutil.copytree(checkpoint / MODEL, staged / MODEL)
    shutil.copy2(checkpoint / RUN_JSON, staged / RUN_JSON)
    return staged


def log_policy_model(
    client: MlflowClient,
    run_id: str,
    run_dir: str | Path,
    *,
    groups: Sequence[str],
    evaluation: Mapping[str, float],
    step: int = 0,
) -> str:
    """Log the final checkpoint of ``run_dir`` as the pyfunc model ``policy`` of run ``run_id``
    (its source run, and one of its outputs); returns the model id (``models:/<id>`` loads it).

    ``groups``: the group names, in the data's order; ``evaluation``: the run's evaluation metrics
    (non-finite values are left out); both go to the model's metadata.
    """
    import pandas as pd

    from grpo_core.lm.checkpoint import latest_checkpoint, read_run_info
    from grpo_core.lm.recipe import TrainingRecipe

    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"training wrote no checkpoint under {run_dir}")
    info = read_run_info(checkpoint)
    start_model = Path(info["start_model"])
    if not start_model.is_dir():
        raise FileNotFoundError(
            f"the starting model {start_model} of run {run_id} is gone; the model needs it as its "
            "reference (re-create it with the same cache)"
        )
    metadata = {
        "groups": list(groups),
        "evaluation": {k: float(v) for k, v in evaluation.items() if math.isfinite(v)},
        "method": info["method"],
        "seed": info["seed"],
        "training_run_id": run_id,
    }
    experiment = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment, name=POLICY, source_run_id=run_id)
    # Saved to a folder, then uploaded through ``client``: MLflow's fluent log_model would talk to
    # the process-wide tracking URI, which the flow's threads (and other stores) share.
    with tempfile.TemporaryDirectory() as folder, quiet_pyfunc_logger():
        artifacts = {
            "checkpoint": str(stage_checkpoint(checkpoint, Path(folder))),
            "start_model": str(start_model),
        }
        saved = Path(folder) / POLICY
        mlflow.pyfunc.save_model(
            saved, python_model=PolicyModel(), artifacts=artifacts, signature=signature(),
            input_example=pd.DataFrame({"prompt": [EXAMPLE_PROMPT], "responses": [EXAMPLE_RESPONSES]}),
            metadata=metadata, pip_requirements=pip_requirements(),
            mlflow_model=Model(run_id=run_id, model_id=logged.model_id, artifact_path=POLICY),
            # the run's own setting, from the user's run config that this pipeline just trained
            model_config={"trust_remote_code": TrainingRecipe.from_run_info(info).model.trust_remote_code},
        )  # fmt: skip
        client.log_model_artifacts(logged.model_id, str(saved))
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    return logged.model_id
