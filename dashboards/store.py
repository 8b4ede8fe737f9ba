"""Where the MLflow store is: one rule for the pipeline that writes it and the views that read it.

``MLFLOW_TRACKING_URI`` when set; otherwise a SQLite store ``mlflow.db`` in the working folder,
with artifacts in ``mlartifacts/`` beside it (never a file store, never an implicit default).
"""

from __future__ import annotations

import os
from pathlib import Path

SQLITE = "sqlite:///"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, otherwise ``sqlite:///<cwd>/mlflow.db`` (read when called)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"{SQLITE}{Path.cwd().resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store, None for any other URI."""
    return Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else None


def artifact_root(uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts: ``mlartifacts/`` beside the database file."""
    path = sqlite_path(uri)
    return str(path.parent / "mlartifacts") if path is not None else None
