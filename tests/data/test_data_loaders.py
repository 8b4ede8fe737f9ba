"""Loaders of the pairs format: file types, column mapping, chat prompts, HH-RLHF."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from grpo_core.data import DataConfig, load_pairs
from grpo_core.data.ids import make_question_id

ROWS = [
    {"id": "a1", "question": "Best fruit?", "good": "Apple", "bad": "Mud", "country": "Kenya"},
    {"id": "", "question": "Best colour?", "good": "Blue", "bad": "Grey", "country": "Peru"},
]
MAPPING = {"prompt": "question", "chosen": "good", "rejected": "bad", "pair_id": "id"}


def _pair_id(*parts: str) -> str:
    return "pair_" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


EXPECTED = [
    ("a1", make_question_id("Best fruit?"), "Kenya", "Best fruit?", "Apple", "Mud"),
    (
        _pair_id("Peru", "Best colour?", "Blue", "Grey"),
        make_question_id("Best colour?"),
        "Peru",
        "Best colour?",
        "Blue",
        "Grey",
    ),
]


def _write(path: Path, kind: str) -> Path:
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "jsonl.gz":
        with gzip.open(path, "wt") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "json":
        path.write_text(json.dumps(ROWS))
    elif kind == "csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    elif kind == "hf":
        import datasets

        datasets.Dataset.from_list(ROWS).save_to_disk(str(path))
    return path


def _as_tuples(pairs):
    return [(p.pair_id, p.question_id, p.group, p.prompt, p.chosen, p.rejected) for p in pairs]


@pytest.mark.parametrize(
    ("kind", "file_name", "location"),
    [
        ("jsonl", "p.jsonl", "p.jsonl, line 2"),
        ("jsonl.gz", "p.jsonl.gz", "p.jsonl.gz, line 2"),
        ("json", "p.json", "p.json, item 1 (0-based) of the JSON array"),
        ("csv", "p.csv", "p.csv, line 3"),
        ("parquet", "p.parquet", "p.parquet, row 1 (0-based)"),
        ("hf", "p_dataset", "p_dataset, row 1 (0-based)"),
    ],
)
def test_every_file_type_gives_the_same_pairs_with_column_mapping(
    tmp_path, kind, file_name, location
):
    # Given the same two records in each file type, with the group in a column called country
    path = _write(tmp_path / file_name, kind)
    config = DataConfig(format="pairs", path=str(path), group_columns=("country",), columns=MAPPING)
    # When they are loaded
    pairs, rejections = load_pairs(config)
    # Then the pairs are exactly the mapped records, ids given or derived from the content
    assert _as_tuples(pairs) == EXPECTED, f"expected the mapped pairs from {kind}"
    assert rejections == ()
    assert str(pairs[1].location).endswith(location), (
        f"expected location '{location}', got {pairs[1].location}"
    )


def test_hf_dataset_class_labels_become_group_names(tmp_path):
    import datasets

    features = datasets.Features(
        {n: datasets.Value("string") for n in ("prompt", "chosen", "rejected")}
        | {"group": datasets.ClassLabel(names=["north", "south"])}
    )
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "group": 1}]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    pairs, _ = load_pairs(DataConfig(format="pairs", path=str(tmp_path / "ds")))
    assert [p.group for p in pairs] == ["south"], "class label 1 should become its name 'south'"


def test_a_hub_name_is_not_tried_unless_asked(tmp_path):
    config = DataConfig(format="pairs", path="someone/some-dataset")
    with pytest.raises(FileNotFoundError, match="file_type='hf_hub'"):
        load_pairs(config)


class FakeChatTokenizer:
    """Stands for a Hugging Face tokenizer: a chat template with visible markers."""

    def apply_chat_template(self, conversation, *, tokenize, add_generation_prompt):
        assert tokenize is False
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in conversation)
        return text + ("<|assistant|>" if add_generation_prompt else "")


CHAT_ROW = {
    "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    "chosen": [{"role": "assistant", "content": "Hello."}],
    "rejected": [{"role": "assistant", "content": "Go away."}],
    "group": "g",
}


def test_conversational_prompts_are_rendered_with_the_chat_template_when_used(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(CHAT_ROW) + "\n")
    config = DataConfig(format="pairs", path=str(path), pairs={"chat_template": True})
    pairs, _ = load_pairs(config, chat_template_tokenizer=FakeChatTokenizer())
    assert pairs[0].prompt == "<|system|>Be brief.<|end|><|user|>Hi?<|end|><|assistant|>"
    assert (pairs[0].chosen, pairs[0].rejected) == ("Hello.", "Go away.")


def test_conversational_prompts_are_plain_turns_without_a_chat_template(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(CHAT_ROW) + "\n")
    pairs, _ = load_pairs(DataConfig(format="pairs", path=str(path)))
    assert pairs[0].prompt == "\n\nSystem: Be brief.\n\nUser: Hi?\n\nAssistant:"


def test_chat_template_without_a_tokenizer_is_an_error(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(CHAT_ROW) + "\n")
    with pytest.raises(ValueError, match="chat_template_tokenizer"):
        load_pairs(DataConfig(format="pairs", path=str(path), pairs={"chat_template": True}))


def test_a_real_tokenizer_chat_template_renders_the_prompt(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer(model))
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(CHAT_ROW) + "\n")
    config = DataConfig(format="pairs", path=str(path), pairs={"chat_template": True})
    pairs, _ = load_pairs(config, chat_template_tokenizer=tokenizer)
    assert pairs[0].prompt == "[system] Be brief.\n[user] Hi?\n[assistant]"


def test_common_prefix_splits_hh_style_dialogues_at_the_last_shared_assistant_turn(tmp_path):
    # Given HH-RLHF-style records: full dialogues, no prompt and no group column
    dialogue = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help me?\n\nAssistant:"
    row = {"chosen": dialogue + " Sure.", "rejected": dialogue + " Sure not."}
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps(row) + "\n")
    config = DataConfig(
        format="pairs",
        path=str(path),
        pairs={"prompt_source": "common_prefix", "default_group": "harmless"},
    )
    # When loaded
    pairs, _ = load_pairs(config)
    # Then the prompt ends at the final shared "Assistant:" and the responses are the replies
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected, pairs[0].group) == (
        dialogue,
        " Sure.",
        " Sure not.",
        "harmless",
    )


def test_common_prefix_of_message_lists_is_their_shared_leading_messages(tmp_path):
    user = {"role": "user", "content": "Hi?"}
    row = {
        "chosen": [user, {"role": "assistant", "content": "Hello."}],
        "rejected": [user, {"role": "assistant", "content": "No."}],
        "group": "g",
    }
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n")
    config = DataConfig(format="pairs", path=str(path), pairs={"prompt_source": "common_prefix"})
    pairs, _ = load_pairs(config)
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected) == (
        "\n\nUser: Hi?\n\nAssistant:",
        "Hello.",
        "No.",
    )


def test_hh_rlhf_test_file_loads_with_every_record_accounted_for(hh_test_path):
    # Given the real HH-RLHF harmless-base test file (2,312 dialogues, no prompt, no group)
    config = DataConfig(
        format="pairs",
        path=str(hh_test_path),
        on_invalid="quarantine",
        pairs={"prompt_source": "common_prefix", "default_group": "harmless"},
    )
    # When it is loaded with quarantine
    pairs, rejections = load_pairs(config)
    # Then every line is either a pair or a counted rejection (4 have an empty chosen reply)
    assert len(pairs) + len(rejections) == 2312, "expected all 2,312 lines accounted for"
    assert [(r.reason, r.field) for r in rejections] == [("empty_text", "chosen")] * 4
    assert all(p.prompt.endswith("\n\nAssistant:") for p in pairs), (
        "prompts should end at the assistant turn"
    )
    assert all(p.chosen.strip() != p.rejected.strip() for p in pairs)
