"""Task: group the data (load, validate, split, statistics), cached on its inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger

from grpo_core.data.config import DataConfig


def source_fingerprint(data: DataConfig) -> str:
    """What the source's content is: a file's sha256, a folder's listing, or the generator's seed.

    Passed to :func:`group_data` as an input, so its cache misses when the file changes.
    """
    if data.path is None:
        return "generated"
    path = Path(data.path)
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    if path.is_dir():
        listing = sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in path.rglob("*")
            if p.is_file()
        )
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return f"hub:{data.path}"


def data_code_version() -> str:
    """sha256 of the ``grpo_core.data`` sources: a change to the data code invalidates the cache too."""
    import grpo_core.data

    digest = hashlib.sha256()
    for path in sorted(Path(grpo_core.data.__file__).parent.rglob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def source_key(data: DataConfig) -> str:
    """The cache input of :func:`group_data`: the source's content and the data code's version."""
    return f"{source_fingerprint(data)}:{data_code_version()}"


def data_key(data: DataConfig, fingerprint: str) -> str:
    return hashlib.sha256((data.model_dump_json() + fingerprint).encode()).hexdigest()[:16]


@task(name="group-data", cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def group_data(data: DataConfig, fingerprint: str, output_dir: str) -> dict:
    """Prepare the grouped splits under ``<output_dir>/data/<key>``; return the folder and its summary.

    ``fingerprint``: :func:`source_key` of ``data``, so that the cache (on the inputs and this
    task's source) misses when the file's content or the data code changes.
    """
    from grpo_core.data.prepare import prepare_dataset

    logger = get_run_logger()
    out = Path(output_dir).resolve() / "data" / data_key(data, fingerprint)
    prepared = prepare_dataset(data, out)
    summary = prepared.summary()
    for name, counts in summary["groups"].items():
        logger.info(
            "group %-30s slug %-28s train %5d  validation %4d  test %4d",
            name, counts["slug"], counts["train"], counts["validation"], counts["test"],
        )  # fmt: skip
    rejected = summary.get("rejected_rows") or {}
    if rejected:
        logger.warning("rejected rows (see %s/quarantine.jsonl): %s", out, rejected)
    logger.info("imbalance ratio (max/min train pairs): %.2f", prepared.imbalance_ratio)
    return {
        "data_dir": str(out),
        "summary": summary,
        "slugs": prepared.slugs,
        "groups": list(prepared.groups),
    }
