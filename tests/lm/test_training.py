"""The language-model policy in the one training loop: what trains, what stays fixed, equivalences."""

from __future__ import annotations

import torch

from grpo_core.config import OptimConfig
from grpo_core.evaluation import score_pairs
from grpo_core.lm.config import LoraConfig, SFTConfig
from grpo_core.lm.reference_cache import with_reference_logps
from grpo_core.lm.sft import chosen_nll, run_sft
from grpo_core.loop import train
from grpo_core.objective import Objective
from tests.lm.helpers import opinion_frames, tiny_policy_and_data

OPTIM = OptimConfig(learning_rate=1e-3, batch_size=8, max_steps=4, max_grad_norm=10.0)


def _snapshot(policy) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in policy.model.named_parameters()}


def test_trainable_parameters_change_and_reference_logps_do_not(tmp_path):
    # given: a tiny policy whose reference log-probs come from its starting weights
    policy, data, _ = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 24, "Southland": 8})
    )
    data = with_reference_logps(
        policy, data, model_fingerprint="start", batch_size=16, cache_dir=tmp_path / "cache"
    )
    ref_before = (data.ref_chosen.clone(), data.ref_rejected.clone())
    before = _snapshot(policy)
    # when
    train(policy, data, Objective("ipo", "robust", beta=0.1, step_size=0.01), OPTIM, seed=0)
    # then
    after = _snapshot(policy)
    assert all(not torch.equal(before[n], after[n]) for n in before), (
        "every weight should have moved"
    )
    assert torch.equal(data.ref_chosen, ref_before[0]) and torch.equal(
        data.ref_rejected, ref_before[1]
    )
    cached = with_reference_logps(
        policy, data, model_fingerprint="start", batch_size=16, cache_dir=tmp_path / "cache"
    )
    assert torch.equal(cached.ref_chosen, ref_before[0]), (
        "the cache must return the starting model's log-probs"
    )
    fresh = score_pairs(policy, data, 16)
    assert not torch.equal(fresh.policy_chosen, ref_before[0]), (
        "the trained policy should score differently"
    )


def test_h_is_exactly_zero_at_step_zero(tmp_path):
    policy, data, _ = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 24, "Southland": 8})
    )
    data = with_reference_logps(policy, data, model_fingerprint="start", batch_size=16)
    scores = score_pairs(policy, data, 16)
    assert torch.equal(scores.policy_chosen, scores.ref_chosen) and torch.equal(
        scores.policy_rejected, scores.ref_rejected
    )


def test_group_robust_with_one_group_equals_plain_dpo(tmp_path):
    # given: every pair in one group, two identical starting policies
    frames = opinion_frames({"Northland": 32})
    results = {}
    for weighting in ("size", "robust"):
        policy, data, _ = tiny_policy_and_data(tmp_path, frames)
        data = with_reference_logps(policy, data, model_fingerprint="start", batch_size=16)
        objective = Objective("dpo", weighting, beta=0.1, step_size=0.5)
        # when
        result = train(policy, data, objective, OPTIM, seed=3)
        results[weighting] = ([r.loss for r in result.history], _snapshot(policy))
    # then: alpha = 1 for the only group, so GR-DPO is DPO step for step, bit for bit
    losses_dpo, params_dpo = results["size"]
    losses_gr, params_gr = results["robust"]
    assert [float(x) for x in losses_dpo] == [float(x) for x in losses_gr]
    assert all(torch.equal(params_dpo[n], params_gr[n]) for n in params_dpo)


def test_sft_lowers_the_chosen_nll(tmp_path):
    policy, data, _ = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 24, "Southland": 8})
    )
    every = data.sft_view()

    def mean_nll() -> float:
        with torch.no_grad():
            policy.train(False)
            return float(
                chosen_nll(policy, every.batch(torch.arange(every.num_pairs)), None).mean()
            )

    before = mean_nll()
    result = run_sft(policy, data, SFTConfig(epochs=3, learning_rate=3e-3, batch_size=8))
    after = mean_nll()
    assert len(result.history) == 3 * 32 // 8
    assert after < before - 0.5, (
        f"SFT should lower the chosen NLL per token: {before:.3f} -> {after:.3f}"
    )


def test_lora_trains_only_the_adapters(tmp_path):
    lora = LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0)
    policy, data, _ = tiny_policy_and_data(
        tmp_path, opinion_frames({"Northland": 24, "Southland": 8}), lora=lora
    )
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable), sorted(trainable)[:4]
    before = _snapshot(policy)
    data = with_reference_logps(policy, data, model_fingerprint="start", batch_size=16)
    train(policy, data, Objective("ipo", "robust", beta=0.1, step_size=0.01), OPTIM, seed=0)
    after = _snapshot(policy)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "the adapters should train"
    assert changed <= trainable, f"frozen weights moved: {sorted(changed - trainable)[:4]}"
    assert any("lora_B" in n for n in changed)
