"""``grpo train`` and ``grpo evaluate``: language-model policies from the command line.

``grpo train --config FILE.yaml [--method M] [--output DIR] [--resume] [--seed N]`` trains one method
through :func:`grpo_core.lm.training.train_method` and writes ``DIR/metrics.json``;
``grpo evaluate --checkpoint DIR --data DIR [--split test] --json PATH`` scores a checkpoint per group
(the JSON also holds the step it scored, ``checkpoint/step``).
Heavy imports (torch, transformers) happen inside the handlers, so that ``grpo --help`` is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from grpo_cli.config_files import ConfigFileError, load_run_config
from grpo_cli.distributed_launch import finish, join_process_group, launch
from grpo_cli.errors import UsageError, WorkFailed
from grpo_cli.paths import writable_cache, writable_file, writable_folder
from grpo_cli.progress import CliProgress
from grpo_core import names
from grpo_core.atomic import write_json_atomic
from grpo_core.data.cache import prepared_data_dir as cached_data_dir
from grpo_core.data.readers import check_sources
from grpo_core.data.storage import GROUPS_FILE, check_prepared
from grpo_core.methods import METHODS
from tasks.worker import quiet_library_warnings


def add_parser(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one method (e.g. ipo, gr_ipo) of a run config on a language model",
        description="Train one method with one seed: the starting model (preset or path, then SFT), "
        "then DPO/IPO or their group-robust variants; writes OUTPUT/metrics.json and resumable "
        "checkpoints under OUTPUT/checkpoints.",
    )
    train.add_argument(
        "--config",
        required=True,
        type=Path,
        help="run config (YAML), e.g. examples/tiny_opinions.yaml",
    )
    train.add_argument("--method", help="method to train (default: the config's only method)")
    train.add_argument("--seed", type=int, help="training seed (default: the config's first seed)")
    train.add_argument(
        "--output", type=Path, help="run folder (default: runs/<name>/<method>-seed<seed>)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output"
    )
    train.add_argument(
        "--data",
        type=Path,
        help="a prepared data folder (default: prepare the config's data in the cache)",
    )
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train this one run data-parallel in N processes on this machine (torch distributed: "
        "one GPU each where there are GPUs, else gloo on the CPU); the group weights are "
        "synchronised over all of them (default: %(default)s)",
    )
    _add_common(train)
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="per-group metrics of a checkpoint on one split",
        description="Evaluate a run folder (its newest checkpoint), a checkpoint or a model folder on "
        "a split of a prepared data folder; prints per-group loss and accuracies.",
    )
    evaluate.add_argument(
        "--checkpoint", required=True, type=Path, help="run folder, checkpoint or model folder"
    )
    evaluate.add_argument("--data", required=True, type=Path, help="prepared data folder")
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.add_argument("--json", type=Path, help="write the flat metrics here")
    evaluate.add_argument(
        "--batch-size", type=positive_int, default=32, help="pairs per forward pass"
    )
    evaluate.add_argument(
        "--strict",
        action="store_true",
        help="refuse data the model mostly cannot represent (over 20%% of the response tokens unknown "
        "to its tokenizer) or whose groups differ from its training groups (default: warn)",
    )
    evaluate.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the starting model's folder run its own Python code (configuration_*.py, "
        "modeling_*.py); never taken from the checkpoint, whose run.json may only ask for it",
    )
    evaluate.add_argument(
        "--start-model",
        type=Path,
        help="the run's starting model (the reference), when it lies outside the checkpoint and "
        "--cache-dir (default: the folder run.json names, inside one of them); it must hold the "
        "files the run started from",
    )
    _add_common(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:N or auto (default: the config's, else auto)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="models, SFT outputs, reference log-probs (default: $GRPO_CACHE_DIR or ~/.cache/grpo-pipeline)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return value


def prepared_data_folder(data: Path | None) -> None:
    """Raise ``ValueError`` unless ``data`` (if given) is a folder made by ``grpo data prepare``."""
    if data is not None and not (Path(data) / GROUPS_FILE).is_file():
        raise ValueError(
            f"--data {data}: not a prepared data folder (no {GROUPS_FILE}); make one with "
            "grpo data prepare"
        )
    if data is not None:
        check_prepared(data)  # every file agrees with its groups.json, before any work


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging  # seconds to import: only when needed

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    quiet_library_warnings()


def _cache_dir(args) -> Path:
    from grpo_core.lm.presets import default_cache_dir  # imports torch: lazy, for a quick --help

    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def prepared_data_dir(config, cache_dir: Path) -> Path:
    """The config's data prepared once under ``<cache>/data/<key>``, the key the pipeline uses too."""
    from grpo_core.lm.presets import chat_template_tokenizer  # imports torch: lazy

    tokenizer = chat_template_tokenizer(config.data, config.model, cache_dir)
    return cached_data_dir(config.data, cache_dir / "data", chat_template_tokenizer=tokenizer)[0]


def run_train(args) -> int:
    try:
        config = load_run_config(args.config)
    except (ConfigFileError, ValidationError) as error:
        raise UsageError(f"bad config {args.config}: {error}") from None
    method = args.method
    if method is None:
        if len(config.methods) != 1:
            raise UsageError(f"the config lists {list(config.methods)}; pick one with --method")
        method = config.methods[0]
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    seed = config.seeds[0] if args.seed is None else args.seed
    output = args.output or Path("runs") / config.name / f"{method}-seed{seed}"
    writable_folder(output, "--output")
    writable_cache(args.cache_dir)
    prepared_data_folder(args.data)
    # not argparse's positive_int: a parser error exits from parse_args with a usage block, and
    # this refusal is one line after the config and paths are checked
    if args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc}: give 1 or more processes")
    # torch, transformers and the training code: imported here, so that ``grpo --help`` is quick
    import torch

    from grpo_core.lm.callbacks import CollapseWatch
    from grpo_core.lm.policy import resolve_device
    from grpo_core.lm.presets import check_model_source
    from grpo_core.lm.training import train_method

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        argv = list(args.argv)
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if 0 < gpus < args.nproc:
            raise UsageError(
                f"--nproc {args.nproc} wants one GPU per process and this machine has "
                f"{gpus}; use --nproc {gpus} or fewer"
            )
        if args.data is None:  # prepared once here, not by every rank at the same time
            _quiet_transformers()
            argv += ["--data", str(prepared_data_dir(config, _cache_dir(args)))]
        return launch(argv, args.nproc)
    parallel, rank_device = join_process_group()
    quiet = parallel is not None and not parallel.is_main
    check_model_source(config.model)
    if args.data is None:
        check_sources(config.data)
    _quiet_transformers()
    device = rank_device or resolve_device(args.device or config.device)
    cache_dir = _cache_dir(args)
    with CliProgress(enabled=not (args.no_progress or quiet)) as progress:
        # an error closes the bars on the way out; main prints its one line and exit code
        data_dir = args.data if args.data is not None else prepared_data_dir(config, cache_dir)
        watch = CollapseWatch()
        watch.on_warning = lambda m: print(f"grpo train: warning: {m}", file=sys.stderr)
        metrics = train_method(
            config.recipe(method), method, seed, data_dir, output,
            device=device, cache_dir=cache_dir, resume=args.resume, progress=progress,
            callbacks=[] if quiet else [watch], parallel=parallel,
        )  # fmt: skip
    finish(parallel)
    if quiet:
        return 0
    steps = int(metrics[names.TRAIN_STEPS])
    print(f"{method} seed {seed} on {device}: {steps} steps -> {output / 'metrics.json'}")
    _print_table(metrics, config.eval.splits)
    if (collapsed := watch.warning()) is not None:
        print(f"grpo train: warning: {collapsed}", file=sys.stderr)
    return 0


def run_evaluate(args) -> int:
    writable_file(args.json, "--json", {"--checkpoint": args.checkpoint, "--data": args.data})
    writable_cache(args.cache_dir)
    prepared_data_folder(args.data)
    _quiet_transformers()
    # torch and transformers: imported here, so that ``grpo --help`` is quick
    from grpo_core.lm.checkpoint import CheckpointGoneError
    from grpo_core.lm.evaluate import CHECKPOINT_STEP, evaluate_checkpoint
    from grpo_core.lm.policy import resolve_device

    device = resolve_device(args.device or "auto")
    chosen = []
    try:
        with CliProgress(enabled=not args.no_progress) as progress:  # closed on an error, too
            metrics = evaluate_checkpoint(
                args.checkpoint, args.data, args.split,
                device=device, batch_size=args.batch_size, cache_dir=_cache_dir(args),
                progress=progress, strict=args.strict, trust_remote_code=args.trust_remote_code,
                start_model=args.start_model, on_checkpoint=chosen.append,
                on_warning=lambda m: print(f"grpo evaluate: warning: {m}", file=sys.stderr),
            )  # fmt: skip
    except CheckpointGoneError as error:  # the input was fine; the run took it away: try again
        raise WorkFailed(
            f"{error}; evaluate again (the run folder takes its newest checkpoint)"
        ) from None
    step = chosen[0].step
    if step is not None:
        metrics = {CHECKPOINT_STEP: step, **metrics}
        print(f"checkpoint {chosen[0].path}: step {step}")
    else:
        print(f"model folder {chosen[0].path}: no training step (its own reference)")
    if args.json is not None:
        write_json_atomic(args.json, metrics)
    _print_table(metrics, (args.split,))
    return 0


def _print_table(metrics: dict[str, float], splits) -> None:
    """Per-group loss and reward accuracy of each split, then the worst group and the average."""
    headline = names.HEADLINE_METRICS
    for split in splits:
        keys = [names.EvalKey.parse(key) for key in metrics]
        slugs = sorted({k.group for k in keys if k and k.split == split and k.scope == "group"})
        print(f"\n{split:<24}" + "".join(f"{name:>18}" for name in headline))
        rows = [(slug, "group", slug) for slug in slugs]
        rows += [("WORST GROUP", "worst_group", ""), ("AVERAGE", "average", "")]
        for label, scope, slug in rows:
            values = [metrics.get(names.eval_key(split, scope, name, slug)) for name in headline]
            print(
                f"{label:<24}"
                + "".join(f"{v:>18.4f}" if v is not None else f"{'-':>18}" for v in values)
            )
