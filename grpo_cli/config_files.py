"""Reading a run config from YAML or JSON, with ``--set key=value`` overrides."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from tasks.run_config import RunConfig


class ConfigFileError(ValueError):
    """The file cannot be read or parsed, or an override is malformed."""


def read_mapping(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigFileError(f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigFileError(
            f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ConfigFileError(
            f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigFileError(f"not valid YAML ({where}{problem})") from None
    if data is None:
        raise ConfigFileError(
            "the file is empty; a run config names at least its data and model "
            "(start from examples/tiny_opinions.yaml)"
        )
    if not isinstance(data, dict):
        raise ConfigFileError("the top level must be a mapping of config sections")
    return data


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """``optim.max_steps=50`` sets ``data["optim"]["max_steps"] = 50`` (the value is parsed as YAML)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigFileError(f"--set needs KEY=VALUE, got {item!r}")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigFileError(f"--set {key}: {part} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigFileError(f"--set {key}: {raw!r} is not a YAML value ({problem})") from None
    return data


def load_run_config(path: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The validated :class:`RunConfig` of ``path`` with ``overrides`` applied; a config that does
    not validate is a :class:`ConfigFileError` naming each field at fault on one line."""
    try:
        return RunConfig.model_validate(apply_overrides(read_mapping(path), overrides))
    except ValidationError as error:
        raise ConfigFileError(one_line_errors(error)) from None


def one_line_errors(error: ValidationError, most: int = 3) -> str:
    """``optim.max_steps: Input should be greater than 0; ...`` for the first ``most`` errors."""
    problems = error.errors()
    parts = []
    for problem in problems[:most]:
        where = ".".join(str(p) for p in problem["loc"]) or "config"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return "; ".join(parts) + more
