"""A prepared dataset with one group left out: for leave-one-group-out training.

Every split of the copy lacks the group (the model trains and validates without it); the full
dataset is still what the runs are evaluated on, so the held-out group is measured unseen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from grpo_core.data.stats import imbalance_ratio
from grpo_core.data.storage import (
    FILES_KEY,
    GROUPS_FILE,
    QUARANTINE_FILE,
    SPLIT_FILES,
    SUMMARY_FILE,
    check_prepared,
    split_file_records,
    write_atomically,
    write_json,
)

HELD_OUT_KEY = "held_out_group"
"""In the copy's groups.json and summary.json: the group left out."""


def without_group(source: str | Path, target: str | Path, group: str) -> Path:
    """Write ``source`` minus ``group`` to ``target`` (atomically; kept if already written) and
    return ``target``. Raises ``ValueError`` for a group the dataset does not have, or when fewer
    than two groups would be left."""
    source, target = Path(source), Path(target)
    check_prepared(source)
    document = json.loads((source / GROUPS_FILE).read_text(encoding="utf-8"))
    names = document["groups"]
    if group not in names:
        raise ValueError(f"{source}: no group {group!r} to leave out (groups: {names})")
    if len(names) < 3:
        raise ValueError(
            f"{source}: leaving {group!r} out of {len(names)} groups leaves fewer than two; "
            "leave-one-group-out needs three or more groups"
        )
    if (target / GROUPS_FILE).exists():
        written = json.loads((target / GROUPS_FILE).read_text(encoding="utf-8"))
        if written.get(HELD_OUT_KEY) == group:
            return target
    summary = json.loads((source / SUMMARY_FILE).read_text(encoding="utf-8"))
    counts = {name: c for name, c in document["counts"].items() if name != group}
    document |= {
        "groups": [name for name in names if name != group],
        "slugs": {slug: name for slug, name in document["slugs"].items() if name != group},
        "counts": counts,
        "totals": {
            **{split: sum(c[split] for c in counts.values()) for split in SPLIT_FILES},
            "pairs": sum(sum(c.values()) for c in counts.values()),
        },
        "imbalance_ratio": imbalance_ratio(counts),
        HELD_OUT_KEY: group,
    }
    summary["groups"] = {name: c for name, c in summary["groups"].items() if name != group}
    summary["total"] = document["totals"]
    summary["imbalance_ratio"] = document["imbalance_ratio"]
    summary[HELD_OUT_KEY] = group

    def write(folder: Path) -> None:
        for file_name in SPLIT_FILES.values():
            table = pq.read_table(source / file_name)
            pq.write_table(table.filter(pc.not_equal(table["group"], group)), folder / file_name)
        document[FILES_KEY] = split_file_records(folder)
        write_json(folder / GROUPS_FILE, document)
        write_json(folder / SUMMARY_FILE, summary)
        (folder / QUARANTINE_FILE).write_text("", encoding="utf-8")

    write_atomically(target, write)
    return target
