"""grpo_core is pure: importing every module loads neither prefect nor mlflow."""

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import grpo_core
for module in pkgutil.walk_packages(grpo_core.__path__, "grpo_core."):
    importlib.import_module(module.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"prefect", "mlflow"})
print(",".join(leaked))
"""


def test_importing_grpo_core_loads_neither_prefect_nor_mlflow():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"grpo_core imported: {result.stdout.strip()}"


def test_grpo_core_never_prints():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "grpo_core"
    offenders = [
        str(p) for p in root.rglob("*.py") if re.search(r"(?<![\w.])print\(", p.read_text())
    ]
    assert not offenders, f"grpo_core must not print: {offenders}"
