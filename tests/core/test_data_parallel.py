"""Data parallelism in the one loop: two CPU processes (gloo) with half a minibatch each take the
same steps as one process with the whole minibatch, for alpha and the parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from grpo_core.config import GroupWeightsConfig, LossConfig, OptimConfig
from grpo_core.distributed import DataParallel
from grpo_core.loglinear import LogLinearPolicy
from grpo_core.loop import train
from grpo_core.objective import Objective
from grpo_core.synthetic.bandit import sample_pairs

STEPS, BATCH = 25, 12


def problem():
    generator = torch.Generator().manual_seed(3)
    pairs = sample_pairs(
        (24, 72), replicas=1, feature_type="swapped", response_type="uneven", generator=generator
    )
    return pairs, torch.rand((1, 4), generator=generator) * 2


def run(method: str, parallel: DataParallel | None, accum: int = 1):
    pairs, theta0 = problem()
    policy = LogLinearPolicy(theta0.clone())
    objective = Objective.for_method(
        method, LossConfig(beta=1.0), GroupWeightsConfig(step_size=0.5)
    )
    optim = OptimConfig(
        optimizer="adamw", learning_rate=0.05, batch_size=BATCH, grad_accum_steps=accum,
        max_steps=STEPS, max_grad_norm=1.0,
    )  # fmt: skip
    result = train(policy, pairs, objective, optim, seed=7, parallel=parallel)
    return policy.theta.detach(), result.state.weights.alpha


def rank_main(rank: int, world: int, init: str, method: str, out: str, accum: int) -> None:
    import torch.distributed as dist

    from grpo_core.distributed import from_process_group

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        theta, alpha = run(method, from_process_group(), accum)
        torch.save({"theta": theta, "alpha": alpha}, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # no rank leaves while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(("method", "accum"), [("gr_ipo", 1), ("dpo", 1), ("gr_dpo", 2)])
def test_two_gloo_ranks_equal_one_process_with_the_global_batch(tmp_path, method, accum):
    # Given one process with the whole minibatch of 12 pairs
    theta, alpha = run(method, None, accum)
    # When two processes each score 6 of them
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(rank_main, args=(2, init, method, str(tmp_path), accum), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # Then every rank holds the single process's parameters and group weights
    for saved in ranks:
        assert torch.allclose(saved["theta"], theta, atol=1e-5), (saved["theta"], theta)
        assert torch.allclose(saved["alpha"], alpha, atol=1e-5), (saved["alpha"], alpha)
    assert not torch.equal(theta, problem()[1]), "training moved the parameters"
    if method.startswith("gr_"):
        assert not torch.allclose(alpha, torch.full_like(alpha, 0.5)), "alpha moved"


def test_a_shard_is_every_world_size_th_pair_and_bad_ranks_are_refused():
    parallel = DataParallel(rank=1, world_size=3, all_reduce=lambda t: t)
    assert parallel.shard(torch.arange(8)).tolist() == [1, 4, 7]
    assert not parallel.is_main
    with pytest.raises(ValueError, match=r"rank 3 is not in \[0, 3\)"):
        DataParallel(rank=3, world_size=3, all_reduce=lambda t: t)


def test_a_minibatch_smaller_than_the_world_is_refused():
    pairs, theta0 = problem()
    parallel = DataParallel(rank=0, world_size=4, all_reduce=lambda t: t)
    optim = OptimConfig(optimizer="sgd", learning_rate=0.1, batch_size=2, max_steps=1)
    objective = Objective.for_method("dpo", LossConfig(), GroupWeightsConfig())
    with pytest.raises(ValueError, match="2 pairs cannot be shared by 4 ranks"):
        train(LogLinearPolicy(theta0), pairs, objective, optim, seed=0, parallel=parallel)
