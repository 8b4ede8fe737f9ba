"""The sweep's task runners on this machine: the Dask path against the local one, measured in one run.

The same 4-child sweep (the tiny model on the built-in opinions, GR-IPO, chi in {0, 1} x seeds
{0, 1}, ``--steps`` steps, one thread per training) through the real ``grpo sweep`` command, each
run in a fresh folder with its own Prefect home and MLflow store, three ways:

- ``local``: the default runner (one training at a time on a CPU);
- ``local-2-threads``: the same with 2 threads per training (all the cores of this machine);
- ``dask-1``: a Dask LocalCluster of 1 worker process: the same one-at-a-time schedule, so the
  difference to ``local`` is what the Dask path costs (cluster start, pickling, the worker process);
- ``dask-2``: a LocalCluster of 2 worker processes: two trainings at once.

Rounds interleave the three, so a machine slower at one moment slows all of them alike. Reported:
the command's wall time and the span of the children (first child run's start to the last one's
end, from MLflow), medians over rounds, and the ratios to ``local``.

    python bench/sweep_runners.py --json bench/results/sweep_runners.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grpo_core import names  # noqa: E402  (the repository root first)

GRPO = str(Path(sys.executable).parent / "grpo")
VARIANTS = {
    "local": [],
    "local-2-threads": ["--set", "execution.threads=2"],
    "dask-1": ["--runner", "dask", "--dask-workers", "1"],
    "dask-2": ["--runner", "dask", "--dask-workers", "2"],
}
CONFIG = """
name: bench-sweep
methods: [gr_ipo]
seeds: [0, 1]
data: {{format: synthetic, synthetic: {{num_questions: 120}}}}
sft: {{enabled: false}}
optim: {{max_steps: {steps}, batch_size: 8}}
eval: {{batch_size: 64, splits: [validation, test]}}
tracking: {{register_models: false}}
execution: {{threads: 1}}
"""


def run_variant(name: str, steps: int, cache: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-sweep-{name}-") as folder:
        root = Path(folder)
        (root / "config.yaml").write_text(CONFIG.format(steps=steps))
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")
        }
        env |= {
            "PREFECT_HOME": str(root / "prefect"),
            "GRPO_CACHE_DIR": str(cache),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        }
        start = time.perf_counter()
        done = subprocess.run(
            [GRPO, "sweep", "--config", "config.yaml", "--grid", "group_weights.robust_mix=0,1",
             *VARIANTS[name]],
            cwd=root, env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{name}: grpo sweep exited {done.returncode}: {done.stderr[-2000:]}")
        with sqlite3.connect(root / "mlflow.db") as db:
            (first, last, count) = db.execute(
                "select min(start_time), max(end_time), count(*) from runs r join tags t "
                "on r.run_uuid = t.run_uuid where t.key = ?",
                (names.SWEEP_POINT,),
            ).fetchone()
    return {"wall_s": wall, "children_span_s": (last - first) / 1000, "children": count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-cache-") as cache:
        for round_ in range(args.rounds):
            for name in VARIANTS:
                result = run_variant(name, args.steps, Path(cache))
                measured[name].append(result)
                print(f"round {round_ + 1} {name}: {json.dumps(result)}", file=sys.stderr)
    median = {
        name: {
            key: statistics.median(r[key] for r in rows) for key in ("wall_s", "children_span_s")
        }
        for name, rows in measured.items()
    }
    report = {
        "command": "python bench/sweep_runners.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "sweep": f"tiny model, GR-IPO, chi in {{0, 1}} x seeds {{0, 1}}, {args.steps} steps, 1 thread per training",
        "rounds": measured,
        "median": median,
        "ratio_to_local": {
            name: {key: m[key] / median["local"][key] for key in m} for name, m in median.items()
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
