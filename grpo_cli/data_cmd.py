"""``grpo data prepare``: grouped preference data, validated and split into train, validation and
test (each pair labelled with its group, as Ramesh et al. 2024, arXiv:2405.20304, need)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from grpo_cli.config_files import one_line_errors
from grpo_cli.errors import UsageError
from grpo_cli.main import main as run_grpo
from grpo_cli.paths import writable_file, writable_folder
from grpo_core.atomic import write_result_json
from grpo_core.data.config import DataConfig, PairsOptions, SurveyOptions
from grpo_core.data.headroom import prepared_headroom
from grpo_core.data.prepare import prepare_dataset

EXAMPLES = """\
examples:
  # the paper's GlobalOpinionQA countries (rows whose distribution is invalid are quarantined)
  grpo data prepare ../shared/data/globalopinionqa_partial/goqa_partial_union.jsonl \\
      --format survey --groups "Nigeria,Egypt,India (Current national sample),China,Japan" \\
      --out data/goqa --json goqa_summary.json

  # the built-in synthetic opinion survey (the default of demos and tests; no file needed)
  grpo data prepare --format synthetic --out data/opinions

  # HH-RLHF: no prompt column (split chosen/rejected at their last shared "Assistant:"), no groups
  grpo data prepare ../shared/data/hh_rlhf_harmless_base_test/test.jsonl.gz --format pairs \\
      --prompt-source common_prefix --default-group harmless --on-invalid quarantine --out data/hh

  # your own pairs, with the group in a column called country and the prompt in "question"
  grpo data prepare prefs.csv --format pairs --group-columns country --column prompt=question \\
      --out data/mine

  # one row per rater's choice, the raters' attributes in another file: party x race groups,
  # cells under 50 pairs dropped (and listed)
  grpo data prepare choices.csv --format raters --raters-table raters.csv \\
      --group-columns party,race --min-group-pairs 50 --split-by-question --out data/raters

invalid records:
  --on-invalid auto (default) stops with a message naming the file, line and field, except that
  survey rows whose distribution is negative or does not sum to about 1 (the paper drops them) are
  written to OUT/quarantine.jsonl and counted. 'error' makes those fatal too; 'quarantine' keeps
  every invalid record in the quarantine file and counts it per reason. Nothing is dropped
  silently, and nothing is written to --out when the command fails.

output:
  OUT/{train,validation,test}.parquet (pair_id, question_id, group, prompt, chosen, rejected),
  OUT/groups.json (group names in group-id order, slugs, counts), OUT/summary.json (same as --json,
  less the headroom), OUT/quarantine.jsonl.

headroom:
  Per split, the best worst-group reward accuracy any policy that does not see the group can
  reach, from the data alone: where groups share a prompt and disagree, one ordering of its
  responses cannot satisfy both (lower..upper: a policy that reaches it .. a linear-programme
  bound; grpo_core.data.headroom). It is 1 when the prompt names the group."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grpo data`` and its ``prepare`` subcommand."""
    data = subparsers.add_parser(
        "data",
        help="prepare grouped preference data (pairs, survey, synthetic)",
        description="Grouped preference data: load, validate, select groups, split per group.",
    )
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    prepare = commands.add_parser(
        "prepare",
        help="validate a source and write per-group train/validation/test splits",
        description="Turn a source into grouped preference pairs, validate every record, split "
        "each group 80/10/10 (by default, as in the paper) and print the per-group table.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="file (jsonl, json, csv, parquet, optionally .gz) or local dataset folder; "
        "omit for --format synthetic",
    )
    prepare.add_argument(
        "--format",
        required=True,
        choices=get_args(DataConfig.model_fields["format"].annotation),
        help="pairs: prompt/chosen/rejected/group records; survey: question/options/group/"
        "distribution rows (GlobalOpinionQA); raters: prompt/response_a/response_b/preference/"
        "rater_id rows, one rater's choice each; synthetic: the built-in opinion survey",
    )
    prepare.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    prepare.add_argument("--json", type=Path, metavar="PATH", help="also write the summary here")
    prepare.add_argument(
        "--groups",
        type=_names,
        metavar='"A,B,..."',
        help="groups to keep, in group-id order (default: all, sorted by name)",
    )
    prepare.add_argument(
        "--group-columns",
        "--group-column",
        type=_names,
        metavar='"COL[,COL...]"',
        help="column of the group label (default: group for pairs, country for survey), or several "
        "whose combination is the group (intersectional, e.g. party,race makes 'Democrat x "
        "Black'; pairs and raters formats)",
    )
    prepare.add_argument(
        "--min-group-pairs",
        type=int,
        metavar="N",
        help="drop and report groups (cells) with fewer valid pairs (default 1)",
    )
    prepare.add_argument(
        "--column",
        action="append",
        type=_assignment,
        default=[],
        metavar="FIELD=COL",
        help="map a canonical field to your column, e.g. prompt=question (repeatable)",
    )
    prepare.add_argument(
        "--group-map",
        action="append",
        type=_assignment,
        default=[],
        metavar="OLD=NEW",
        help="rename a group; map several to one name to merge them (repeatable)",
    )
    prepare.add_argument(
        "--split",
        type=_fractions,
        metavar="TRAIN,VAL,TEST",
        help="split fractions per group (default 0.8,0.1,0.1)",
    )
    prepare.add_argument(
        "--split-by-question",
        action="store_true",
        default=None,
        help="keep every question in one split across all groups",
    )
    prepare.add_argument(
        "--allow-single-group",
        action="store_true",
        default=None,
        help="prepare data with only one group (refused otherwise: robustness needs two or more)",
    )
    prepare.add_argument(
        "--min-pairs-per-split",
        type=int,
        metavar="N",
        help="smallest group size per split (default 1)",
    )
    prepare.add_argument(
        "--merge-label-variants",
        action="store_true",
        default=None,
        help="merge group labels that differ only by letter case or surrounding spaces under the "
        "first spelling seen (refused otherwise, both spellings named)",
    )
    prepare.add_argument("--seed", type=int, metavar="N", help="seed (default 0)")
    prepare.add_argument(
        "--on-invalid",
        choices=get_args(DataConfig.model_fields["on_invalid"].annotation),
        help="what to do with invalid records (default auto; see below)",
    )
    prepare.add_argument(
        "--file-type",
        choices=get_args(DataConfig.model_fields["file_type"].annotation),
        help="how to read SOURCE (default: from its name; hf_hub loads a hub name)",
    )
    prepare.add_argument("--hf-split", metavar="NAME", help="split of a Hugging Face dataset")
    pairs = prepare.add_argument_group("pairs format")
    pairs.add_argument(
        "--prompt-source",
        choices=get_args(PairsOptions.model_fields["prompt_source"].annotation),
        help="common_prefix: no prompt column, split chosen/rejected at their shared start",
    )
    pairs.add_argument(
        "--default-group", metavar="NAME", help="group of records without a group column"
    )
    pairs.add_argument(
        "--chat-template",
        metavar="TOKENIZER_DIR",
        help="render chat-message prompts with this local tokenizer's chat template",
    )
    raters = prepare.add_argument_group("raters format (one row per rater's choice)")
    raters.add_argument(
        "--raters-table",
        metavar="FILE",
        help="rater attributes, one row per rater, joined on rater_id (default: in the rows)",
    )
    survey = prepare.add_argument_group("survey and synthetic formats")
    survey.add_argument(
        "--pairing",
        choices=get_args(SurveyOptions.model_fields["pairing"].annotation),
        help="best_vs_random (the paper, default) or ranking",
    )
    survey.add_argument(
        "--pairs-per-row", type=int, metavar="N", help="pairs per (question, group) row"
    )
    survey.add_argument(
        "--ties",
        choices=get_args(SurveyOptions.model_fields["ties"].annotation),
        help="first (the paper's argmax, default) or strict",
    )
    survey.add_argument(
        "--prompt-template",
        metavar="TEXT",
        help="prompt with {group} and {question} (default: the paper's)",
    )
    synthetic = prepare.add_argument_group("synthetic format")
    synthetic.add_argument("--num-groups", type=int, metavar="K")
    synthetic.add_argument(
        "--group-sizes",
        type=_numbers,
        metavar="F1,F2,...",
        help="fraction of the questions each group answers (default 1.0,0.5,0.15)",
    )
    synthetic.add_argument("--num-questions", type=int, metavar="N")
    synthetic.add_argument(
        "--disagreement",
        type=float,
        metavar="X",
        help="fraction of topics on which the other groups disagree (default 0.5)",
    )
    synthetic.add_argument(
        "--options", type=int, metavar="N", help="options per question, 2-4 (default: 2 to 4)"
    )
    prepare.set_defaults(func=run_prepare)
    return prepare


def run_prepare(args: argparse.Namespace) -> int:
    """Handle ``grpo data prepare``: exit code 0, or a :class:`UsageError` (exit 2)."""
    try:
        inputs = {
            "SOURCE": args.source,
            "--raters-table": args.raters_table,
            "--chat-template": args.chat_template,
        }
        writable_file(args.json, "--json", inputs)
        writable_folder(args.out, "--out", inputs)
        if args.json is not None and args.json.resolve().is_relative_to(args.out.resolve()):
            raise ValueError(
                f"--json {args.json}: inside --out {args.out}, which holds the prepared data "
                "only; write the summary elsewhere (the folder has its own summary.json)"
            )
        config = config_from_args(args)
        tokenizer = _load_tokenizer(args.chat_template) if args.chat_template else None
        prepared = prepare_dataset(config, args.out, chat_template_tokenizer=tokenizer)
        headroom = prepared_headroom(prepared.out_dir)
        if args.json is not None:
            summary = {
                **prepared.summary(),
                "headroom": {split: h.summary() for split, h in headroom.items()},
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_result_json(args.json, summary)
    except ValidationError as error:
        raise UsageError(f"error: invalid options: {one_line_errors(error)}") from None
    except (ValueError, OSError, ImportError) as error:
        raise UsageError(f"error: {error}") from None
    print(format_table(prepared))
    print(format_headroom(headroom))
    return 0


def config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of the given options (unset options keep the config defaults)."""
    values: dict[str, Any] = {"format": args.format}
    if args.source is not None:
        values["path"] = args.source
    for key in (
        "groups",
        "group_columns",
        "min_group_pairs",
        "split",
        "split_by_question",
        "allow_single_group",
        "min_pairs_per_split",
        "seed",
        "on_invalid",
        "file_type",
        "hf_split",
        "merge_label_variants",
    ):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.column:
        values["columns"] = dict(args.column)
    if args.group_map:
        values["group_map"] = dict(args.group_map)
    sections = {
        "pairs": {
            "prompt_source": args.prompt_source,
            "default_group": args.default_group,
            "chat_template": True if args.chat_template else None,
        },
        "raters": {"table": args.raters_table},
        "survey": {
            "pairing": args.pairing,
            "pairs_per_row": args.pairs_per_row,
            "ties": args.ties,
            "prompt_template": args.prompt_template,
        },
        "synthetic": {
            "num_groups": args.num_groups,
            "group_sizes": args.group_sizes,
            "num_questions": args.num_questions,
            "disagreement": args.disagreement,
            "min_options": args.options,
            "max_options": args.options,
        },
    }
    for section, options in sections.items():
        given = {k: v for k, v in options.items() if v is not None}
        if given:
            values[section] = given
    return DataConfig.model_validate(values)


def format_table(prepared: Any) -> str:
    """The per-group table printed by ``grpo data prepare``."""
    slug_of = {name: slug for slug, name in prepared.slugs.items()}
    name_width = max([len("group"), len("total"), *(len(n) for n in prepared.groups)])
    slug_width = max([len("slug"), *(len(s) for s in slug_of.values())])
    header = (
        f"{'group':<{name_width}}  {'slug':<{slug_width}}  {'train':>6}  {'validation':>10}  "
        f"{'test':>6}  {'total':>6}"
    )
    lines = [
        f"Prepared {prepared.totals['pairs']} pairs ({prepared.format}) from {prepared.source}",
        f"into {prepared.out_dir}",
        "",
        header,
        "-" * len(header),
    ]
    rows = [(name, slug_of[name], prepared.counts[name]) for name in prepared.groups]
    rows.append(("total", "", prepared.totals))
    for name, slug, c in rows:
        total = c["train"] + c["validation"] + c["test"]
        if name == "total":
            lines.append("-" * len(header))
        lines.append(
            f"{name:<{name_width}}  {slug:<{slug_width}}  {c['train']:>6}  {c['validation']:>10}  "
            f"{c['test']:>6}  {total:>6}"
        )
    lines.append("")
    lines.append(f"imbalance ratio (max/min train pairs): {prepared.imbalance_ratio:.2f}")
    rejected = sum(prepared.rejected_rows.values())
    quarantine = Path(prepared.out_dir) / "quarantine.jsonl"
    lines.append(f"rejected rows: {rejected}" + (f" (written to {quarantine})" if rejected else ""))
    for reason, count in prepared.rejected_rows.items():
        lines.append(f"  {reason}: {count}")
    for group, why in prepared.dropped_groups.items():
        lines.append(f"dropped group {group!r}: {why}")
    lines.append(f"rows of groups not selected: {prepared.rows_outside_groups}")
    return "\n".join(lines)


def format_headroom(headroom: dict[str, Any]) -> str:
    """Per split, what a policy that does not see the group can reach (reward accuracy)."""
    lines = ["", "headroom of a group-blind policy (reward accuracy reachable, from the data):"]
    for split, h in headroom.items():
        lines.append(
            f"  {split}: {h.shared_prompts} of {h.prompts} prompts shared by two or more groups, "
            f"{h.conflicting_prompts} in conflict; worst group "
            f"{h.worst_group_lower:.3f}..{h.worst_group_upper:.3f}, average "
            + (
                f"{h.average_upper:.3f}"
                if h.exact
                else f"{h.average_lower:.3f}..{h.average_upper:.3f} (upper bounds relaxed)"
            )
        )
        lines.append(f"    why: {h.reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``data`` alone: ``python -m grpo_cli.data_cmd prepare ...``."""
    return run_grpo(["data", *(sys.argv[1:] if argv is None else argv)])


def _load_tokenizer(directory: str) -> Any:
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"--chat-template {directory}: no such folder (a model's folder)")
    from transformers import AutoTokenizer  # lazy: seconds to import, and only this option needs it

    return AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if any(not name for name in names):
        raise argparse.ArgumentTypeError(f"empty group name in {text!r}")
    return names


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _fractions(text: str) -> tuple[float, float, float]:
    numbers = _numbers(text)
    if len(numbers) != 3:
        raise argparse.ArgumentTypeError(f"expected three fractions TRAIN,VAL,TEST, got {text!r}")
    return numbers[0], numbers[1], numbers[2]


if __name__ == "__main__":
    sys.exit(main())
