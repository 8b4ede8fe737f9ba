"""The architecture holds: import rules (import-linter contracts in pyproject.toml) and one home for
every metric key and run tag (grpo_core/names.py)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grpo_core", "tasks", "flows", "dashboards", "grpo_cli")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("file", "line", "contract"),
    [
        # a view reaching into the pipeline, hidden inside a function
        ("dashboards/shaping/tables.py", "def _leak():\n    import tasks.tracking\n", "upward"),
        # the pure core importing a tracking library
        ("grpo_core/losses.py", "import mlflow\n", "pure"),
        # a torch-free module pulling torch in through another module
        ("grpo_core/names.py", "def _leak():\n    import grpo_core.groups\n", "torch-free"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, file, line, contract):
    # given: a copy of the tree with one forbidden import added
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / file).open("a") as handle:
        handle.write("\n\n" + line)
    # when
    result = lint_imports(tmp_path)
    # then
    assert result.returncode != 0, f"adding a {contract} import to {file} went unnoticed"
    assert "BROKEN" in result.stdout


STRAY = [
    re.compile(r"^(eval|drift|train|sft|synthetic)/"),  # a metric key's root
    re.compile(r"(^|/)(train|validation|test)/(group|worst_group|average|imbalance|gap)/"),
    re.compile(r"^/?(group|worst_group|average|imbalance|gap)/"),  # a scope, or a key without split
    re.compile(r"\bgrpo\.[a-z_]+"),  # a grpo.* tag
    re.compile(r"\bprefect\.flow_run|\bmlflow\.parentRunId\b|^git\.commit$"),  # other run tags
]


def string_literals(path: Path):
    """(line, text) of every string constant of a module, docstrings and bare strings excepted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skipped
        ):
            yield node.lineno, node.value


def test_no_metric_key_or_tag_is_spelled_outside_the_names_module():
    offenders = []
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "grpo_core" / "names.py":
                continue
            for line, text in string_literals(path):
                if any(pattern.search(text) for pattern in STRAY):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not offenders, "spell these with grpo_core.names:\n" + "\n".join(offenders)


def test_the_stray_finder_finds_a_stray(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Docs may say eval/test/worst_group/loss."""\nKEY = f"eval/{split}/average/loss"\n'
    )
    found = [t for _, t in string_literals(module) if any(p.search(t) for p in STRAY)]
    assert found == ["eval/", "/average/loss"]
