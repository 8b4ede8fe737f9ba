"""``grpo train --nproc N``: the ranks of one data-parallel run, started on this machine by torch's
elastic launcher (what ``torchrun`` runs), and each rank's place in the process group."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import uuid

from grpo_cli.errors import WorkFailed
from tasks.loopback import free_port


def launch(argv: list[str], nproc: int) -> int:
    """Run ``grpo <argv>`` (without ``--nproc``) as ``nproc`` ranks; a :class:`WorkFailed` naming
    the first rank that failed."""
    # torch: lazy, so that ``grpo --help`` answers at once
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # one line below
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"grpo-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    try:
        elastic_launch(config, sys.executable)("-m", "grpo_cli.main", *without_nproc(argv))
    except ChildFailedError as error:
        rank, failure = min(error.failures.items())
        raise WorkFailed(
            f"rank {rank} of {nproc} failed (exit code {failure.exitcode}); its own error is above"
        ) from None
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def join_process_group():
    """Under the launcher (``torchrun`` or ``--nproc``, which set ``WORLD_SIZE``): join the process
    group, NCCL with one GPU per rank where there are GPUs, gloo on the CPU otherwise. Returns
    ``(DataParallel, device)``, or ``(None, None)`` outside a launcher."""
    if "WORLD_SIZE" not in os.environ:
        return None, None
    import torch
    import torch.distributed as dist

    from grpo_core.distributed import from_process_group

    world = int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if not dist.is_initialized():
        dist.init_process_group(backend)
        atexit.register(dist.destroy_process_group)
    return from_process_group(), device


def finish(parallel) -> None:
    """After a rank's work succeeded: wait for every rank, so that none leaves while another still
    talks to it (that can abort the other). Not on failure: the launcher stops the others then."""
    if parallel is not None:
        import torch.distributed as dist

        dist.barrier()
