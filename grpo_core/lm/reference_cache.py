"""Reference log-probs log ref(y|x): computed once per dataset with the frozen starting model.

Instead of a second model held in memory during training, the starting model scores every pair
before training begins, and the numbers go into ``PairBatch.ref_chosen`` / ``ref_rejected``. They
are cached on disk as safetensors, keyed by the model fingerprint, the data fingerprint (token ids,
so the tokenizer, chat template and ``max_length`` are covered), the batch size and the numerics.

The scoring goes through :func:`grpo_core.evaluation.score_pairs` with the evaluation batch size, so
the starting policy evaluated later sees bit-identical batches: h = 0 exactly at step 0 (to float
tolerance where ``model.compile`` runs the policy through compiled layers).
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from grpo_core.atomic import atomic_file
from grpo_core.evaluation import score_pairs
from grpo_core.hashing import hash_json
from grpo_core.lm.dataset import LMPairDataset
from grpo_core.lm.policy import CausalLMPolicy
from grpo_core.progress import Progress, reporting


def reference_key(
    model_fingerprint: str, dataset: LMPairDataset, batch_size: int, policy: CausalLMPolicy
) -> str:
    """The cache key of one (model, data, batching, numerics) combination."""
    return hash_json(
        {
            "model": model_fingerprint,
            "data": dataset.fingerprint(),
            "batch_size": batch_size,
            "device": policy.device.type,
            "autocast": str(policy.autocast),
            "attention": policy.attention,
            "layout": dataset.layout,
        }
    )


def with_reference_logps(
    policy: CausalLMPolicy,
    dataset: LMPairDataset,
    *,
    model_fingerprint: str,
    batch_size: int,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> LMPairDataset:
    """``dataset`` with ``ref_chosen`` / ``ref_rejected`` (``[N]`` each) from ``policy`` as it is now.

    With LoRA adapters attached, they are disabled while scoring (the reference is the base).
    Reads ``<cache_dir>/reference/<key>.safetensors`` if present, else computes and writes it.
    """
    path = None
    if cache_dir is not None:
        key = reference_key(model_fingerprint, dataset, batch_size, policy)
        path = Path(cache_dir) / "reference" / f"{key[:32]}.safetensors"
        if path.exists():
            tensors = load_file(path)
            if tensors["chosen"].shape[0] == dataset.num_pairs:
                return dataset.with_reference(tensors["chosen"], tensors["rejected"])
    with policy.adapters_disabled():
        scores = score_pairs(policy, reporting(dataset, "reference", progress), batch_size)
    chosen, rejected = scores.policy_chosen.detach().cpu(), scores.policy_rejected.detach().cpu()
    if path is not None:
        with atomic_file(path) as tmp:
            save_file({"chosen": chosen.contiguous(), "rejected": rejected.contiguous()}, str(tmp))
    return dataset.with_reference(chosen, rejected)
