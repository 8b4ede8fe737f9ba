"""Speed of the synthetic benchmark's training, as ratios against a reference run in the same process.

Reference: one seed at a time, one method at a time (a plain Python loop over problems).
Compared: all seeds of a method as replicas; all seeds of a whole method family as replicas.
Each variant trains the same DPO-family methods for the same number of iterations on the same data.

    .venv/bin/python bench/synthetic_speed.py [--seeds 20] [--iterations 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from grpo_core.synthetic.experiment import SyntheticConfig, make_problem, run_methods, select_seeds

METHODS = ("dpo", "is_dpo", "gr_dpo")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=3, help="best of this many timings per variant"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "synthetic_speed.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = SyntheticConfig(
        setting="uneven-imbalanced",
        seeds=args.seeds,
        iterations=args.iterations,
        methods=METHODS,
        record_every=args.iterations,
    )
    problem = make_problem(config)

    def per_seed_loop() -> None:
        for seed in range(args.seeds):
            single = select_seeds(problem, slice(seed, seed + 1))
            for method in METHODS:
                run_methods(single, config, (method,))

    def per_method() -> None:
        for method in METHODS:
            run_methods(problem, config, (method,))

    def per_family() -> None:
        run_methods(problem, config, METHODS)

    best = {
        name: min(timed(fn) for _ in range(args.repeats))
        for name, fn in (
            ("reference_per_seed_per_method", per_seed_loop),
            ("seeds_vectorised", per_method),
            ("family_vectorised", per_family),
        )
    }
    reference = best["reference_per_seed_per_method"]
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "work": f"{len(METHODS)} methods x {args.seeds} seeds x {args.iterations} full-batch iterations (uneven-imbalanced)",
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "speedup_vs_reference": {k: round(reference / v, 2) for k, v in best.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
