"""``grpo export``: a registered policy as a Hugging Face folder (``from_pretrained`` loads it)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from dashboards.store import tracking_uri
from grpo_cli.errors import UsageError

EPILOG = """\
examples:
  grpo export --model models:/grpo-demo-policy@champion --out exported/champion
  grpo export --model models:/grpo-demo-policy/3 --out exported/v3 --merge

A model trained with full fine-tuning exports its weights. One trained with LoRA exports its PEFT
adapters with the base model in DIR/base (transformers loads both when peft is installed; the
adapters name the base by its absolute path, so export again rather than moving DIR), or, with
--merge, the adapters merged into the weights: a plain model folder. The tokenizer (and its chat
template) is always included."""


def add_parser(subparsers) -> None:
    export = subparsers.add_parser(
        "export",
        help="write a registered policy as a Hugging Face model folder",
        description="Write the policy of an MLflow model (a models:/ URI) as a folder that "
        "transformers' AutoModelForCausalLM.from_pretrained(DIR) loads, tokenizer included.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--model", required=True, metavar="URI",
        help="the model: models:/<name>@<alias>, models:/<name>/<version> or models:/<model id>",
    )  # fmt: skip
    export.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="a new (or empty) folder"
    )
    export.add_argument("--merge", action="store_true", help="merge LoRA adapters into the weights")
    export.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the starting model's own Python code, for a run trained with "
        "model.trust_remote_code (a model's files never turn it on by themselves)",
    )
    export.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)",
    )
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out}: exists and is not empty; name a new or empty folder")
    if not args.model.startswith("models:/"):
        raise UsageError(
            f"--model {args.model!r}: give a registry URI such as models:/<name>@champion"
        )
    # lazy: MLflow and torch load slowly, and grpo --help should not wait for them
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from transformers.utils import logging as transformers_logging

    from dashboards.mlflow_source import StoreNotFound, open_client
    from grpo_core.lm.serving import export_pretrained
    from tasks import tracking

    transformers_logging.disable_progress_bar()  # one line of output

    uri = args.tracking_uri or tracking_uri()
    try:
        open_client(uri)  # a SQLite store must exist: none is made
    except StoreNotFound as error:
        raise UsageError(f"--tracking-uri {uri}: {error} (run grpo demo first)") from None
    tracking.require_reachable(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line of output
    with tempfile.TemporaryDirectory(prefix="grpo-export-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=args.model, dst_path=folder, tracking_uri=uri
            )
        except MlflowException as error:
            raise UsageError(
                f"--model {args.model}: not found in {uri} ({tracking.error_line(error)})"
            ) from None
        artifacts = model_artifacts(Path(local))
        checkpoint, start_model = artifacts.get("checkpoint"), artifacts.get("start_model")
        if checkpoint is None or start_model is None:
            raise UsageError(
                f"--model {args.model}: not a policy model of this pipeline (no checkpoint and "
                "start_model artifacts); versions registered before models were logged cannot "
                "be exported: run the experiment again"
            )
        target = export_pretrained(
            checkpoint, start_model, out, merge=args.merge,
            trust_remote_code=args.trust_remote_code,
        )  # fmt: skip
    print(f"exported {args.model} to {target}")
    return 0


def model_artifacts(folder: Path) -> dict[str, Path]:
    """The pyfunc artifacts of a downloaded MLflow model folder, by name (those present)."""
    from mlflow.models import Model

    if not (folder / "MLmodel").is_file():
        return {}
    flavor = Model.load(str(folder)).flavors.get("python_function", {})
    found = {name: folder / spec["path"] for name, spec in flavor.get("artifacts", {}).items()}
    return {name: path for name, path in found.items() if path.is_dir()}
