"""The one key of a prepared dataset, and the cache of prepared datasets under a root folder.

The key covers everything the prepared splits depend on: the data config, the source's content
(a file's bytes; a folder's listing; a hub name), the data code, and the chat template that renders
conversational prompts. ``grpo train`` and the pipeline's ``group-data`` task both use it, so a
changed source file or changed data code invalidates both.
"""

from __future__ import annotations

from pathlib import Path

from grpo_core.data.chat import ChatTemplateTokenizer
from grpo_core.data.config import DataConfig
from grpo_core.data.storage import GROUPS_FILE, PreparedDataError, check_prepared
from grpo_core.hashing import hash_file, hash_files, hash_json

KEY_LENGTH = 16


def source_fingerprint(data: DataConfig) -> str:
    """What the source holds: a file's sha256, a folder's listing (names, sizes, times), a hub
    name, or ``generated`` for the built-in survey (its config is in the key already)."""
    if data.path is None:
        return "generated"
    path = Path(data.path)
    if path.is_file():
        return hash_file(path)
    if path.is_dir():
        listing = sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in path.rglob("*")
            if p.is_file()
        )
        return hash_json(listing)
    return f"hub:{data.path}"


def data_code_version() -> str:
    """sha256 of the code that turns a source into prepared splits (``grpo_core.data`` and the ids'
    hasher): a change to it invalidates every prepared dataset."""
    import grpo_core.hashing

    package = Path(__file__).resolve().parent
    files = [*package.rglob("*.py"), Path(grpo_core.hashing.__file__).resolve()]
    return hash_files(package.parent, files)


def prepared_data_key(data: DataConfig, chat_template: str | None = None) -> str:
    """The cache key of ``data`` prepared (``chat_template``: the template that renders
    conversational prompts, when the config asks for one)."""
    return hash_json(
        {
            "config": data.model_dump(mode="json"),
            "source": source_fingerprint(data),
            "raters_table": hash_file(data.raters.table) if data.raters.table else None,
            "code": data_code_version(),
            "chat_template": chat_template,
        }
    )[:KEY_LENGTH]


def prepared_data_dir(
    data: DataConfig,
    root: str | Path,
    *,
    chat_template_tokenizer: ChatTemplateTokenizer | None = None,
    key: str | None = None,
) -> tuple[Path, bool]:
    """``<root>/<key>``, prepared there first unless it already holds the same prepared dataset
    intact (a folder whose files disagree with its ``groups.json`` is prepared again).

    Returns the folder and whether it was prepared now (False: found in the cache).
    """
    from grpo_core.data.prepare import prepare_dataset

    if key is None:
        template = getattr(chat_template_tokenizer, "chat_template", None)
        key = prepared_data_key(data, template)
    target = Path(root) / key
    if (target / GROUPS_FILE).exists():
        try:
            check_prepared(target)
            return target, False
        except PreparedDataError:  # changed or cut short since: made again from the source
            pass
    prepare_dataset(data, target, chat_template_tokenizer=chat_template_tokenizer)
    return target, True
