"""A trained policy put to use: score candidate responses, generate, export a Hugging Face folder.

What the registered model (``tasks.model_logging``) and ``grpo export`` run. A response is scored
as in training (docs/ALGORITHM.md#notation): the prompt is rendered and encoded the same way, the
response ends with EOS, and log pi(y|x) is the sum of the log-probs of the response tokens. With
the frozen reference (the run's starting model) the implicit reward of DPO/IPO,
beta * (log pi(y|x) - log pi_ref(y|x)), comes with it (Rafailov et al. 2023, arXiv:2305.18290, eq. 5).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from grpo_core.atomic import atomic_directory
from grpo_core.lm.checkpoint import MODEL, is_adapter_folder, load_model_weights, read_run_info
from grpo_core.lm.dataset import render_prompt, tokenize_pairs
from grpo_core.lm.policy import add_lora, load_causal_lm
from grpo_core.lm.recipe import TrainingRecipe
from grpo_core.lm.safe_loading import refuse_pickles, refuse_untrusted_code
from grpo_core.lm.start_model import has_fingerprint

BASE = "base"
"""The sub-folder of an adapter export that holds the base (starting) model."""


def response_logp(logits: Tensor, input_ids: Tensor, prompt_length: int) -> Tensor:
    """log pi(y|x): the summed log-probs of the tokens after the prompt, float32.

    Args:
        logits: ``[T, V]`` logits of one sequence (position t predicts token t + 1).
        input_ids: ``[T]`` the prompt's ``prompt_length`` tokens, then the response's.
        prompt_length: at least 1 (the first token is never predicted).
    Returns:
        A 0-d tensor: sum over t >= prompt_length of log softmax(logits[t - 1])[input_ids[t]].
    """
    if not 1 <= prompt_length < input_ids.shape[0]:
        raise ValueError(
            f"prompt_length {prompt_length} must leave a prompt token and a response token "
            f"in a sequence of {input_ids.shape[0]}"
        )
    logps = torch.log_softmax(logits[prompt_length - 1 : -1].float(), dim=-1)
    targets = input_ids[prompt_length:]
    return logps.gather(-1, targets.unsqueeze(-1)).sum()


@dataclass(frozen=True)
class ServedPolicy:
    """A trained policy ready to score and generate.

    ``reference`` is the frozen starting model; None with LoRA, where the reference is the policy
    with its adapters disabled. ``chat_template``, ``max_length`` and ``beta`` are the run's.
    """

    model: torch.nn.Module
    tokenizer: Any
    reference: torch.nn.Module | None
    chat_template: bool
    max_length: int
    beta: float
    device: torch.device

    @contextlib.contextmanager
    def reference_model(self) -> Iterator[torch.nn.Module]:
        """The reference model inside the block (adapters disabled for LoRA)."""
        if self.reference is not None:
            yield self.reference
        else:
            with self.model.disable_adapter():
                yield self.model


def load_served_policy(
    checkpoint_dir: str | Path,
    start_model_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    trust_remote_code: bool = False,
    trust_flag: str = "--trust-remote-code",
) -> ServedPolicy:
    """The policy of a checkpoint (``run.json`` + ``model/``) over its starting model's folder.

    ``start_model_dir`` must hold the very files the run started from (its fingerprint in
    ``run.json``): they are the LoRA base and the reference of the implicit reward.
    ``trust_remote_code`` comes from the caller only; a ``run.json`` that asks for it without it is
    refused (:class:`~grpo_core.lm.safe_loading.UntrustedCheckpointError`, naming ``trust_flag``).
    """
    checkpoint_dir, start_model_dir = Path(checkpoint_dir), Path(start_model_dir)
    refuse_pickles(start_model_dir)
    info = read_run_info(checkpoint_dir)
    recipe = TrainingRecipe.from_run_info(info)
    refuse_untrusted_code(
        recipe.model.trust_remote_code, trust_remote_code, str(checkpoint_dir), trust_flag
    )
    if not has_fingerprint(start_model_dir, info["start_model_fingerprint"]):
        raise ValueError(
            f"{start_model_dir} is not the starting model of {checkpoint_dir} (its files differ "
            "from the fingerprint in run.json)"
        )
    device = torch.device(device)
    trust = trust_remote_code
    model, tokenizer = load_causal_lm(start_model_dir, trust_remote_code=trust)
    reference = None
    if is_adapter_folder(checkpoint_dir / MODEL):
        model = add_lora(model, recipe.model.lora, seed=0)
    else:
        reference, _ = load_causal_lm(start_model_dir, trust_remote_code=trust)
        reference.to(device).eval()
    load_model_weights(model, checkpoint_dir)
    model.to(device).eval()
    return ServedPolicy(
        model=model, tokenizer=tokenizer, reference=reference,
        chat_template=bool(info["chat_template"]), max_length=recipe.model.max_length,
        beta=recipe.loss.beta, device=device,
    )  # fmt: skip


def encode_prompt(tokenizer, prompt: str, chat_template: bool) -> list[int]:
    """The prompt's token ids as training encoded them (:func:`grpo_core.lm.dataset.tokenize_pairs`)."""
    text = render_prompt(prompt, tokenizer, chat_template)
    ids = tokenizer(text, add_special_tokens=not chat_template)["input_ids"]
    if not ids:
        raise ValueError(f"the prompt {prompt[:60]!r} encodes to no tokens")
    return list(ids)


@torch.no_grad()
def sequence_logps(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    responses: Sequence[Sequence[int]],
    *,
    max_length: int,
    device: torch.device | str = "cpu",
) -> list[float]:
    """log pi(y|x) of each response after the prompt (left-truncated to fit ``max_length``, as in
    training); one forward pass per response."""
    logps = []
    for response in responses:
        room = max_length - len(response)
        if room < 1:
            raise ValueError(
                f"a response of {len(response) - 1} tokens plus EOS leaves no room for the prompt "
                f"within max_length={max_length}"
            )
        prompt = list(prompt_ids)[-room:]
        ids = torch.tensor([*prompt, *response], device=device)
        logits = model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0]
        logps.append(float(response_logp(logits, ids, len(prompt))))
    return logps


@dataclass(frozen=True)
class ResponseScores:
    """The scores of a prompt's candidate responses.

    ``logps``: log pi(y|x) per response; ``reference_logps``: log pi_ref(y|x); ``rewards``:
    beta * (logps - reference_logps); ``preferred``: the index of the policy's most likely response
    (ties: the first).
    """

    logps: list[float]
    reference_logps: list[float]
    rewards: list[float]
    preferred: int


def score_responses(served: ServedPolicy, prompt: str, responses: Sequence[str]) -> ResponseScores:
    """Score each of ``responses`` to ``prompt`` under the policy and its reference."""
    if not responses:
        raise ValueError(f"no candidate responses for the prompt {prompt[:60]!r}")
    # encoded as training encodes a pair: each response with EOS, its prompt left-truncated to fit
    pairs = tokenize_pairs(
        [str(i) for i in range(len(responses))], [prompt] * len(responses), responses, responses,
        served.tokenizer, max_length=served.max_length, chat_template=served.chat_template,
    )  # fmt: skip

    def scores(model: torch.nn.Module) -> list[float]:
        kwargs = {"max_length": served.max_length, "device": served.device}
        return [sequence_logps(model, p.prompt, [p.chosen], **kwargs)[0] for p in pairs]

    logps = scores(served.model)
    with served.reference_model() as reference:
        reference_logps = scores(reference)
    rewards = [served.beta * (p - r) for p, r in zip(logps, reference_logps, strict=True)]
    return ResponseScores(
        logps, reference_logps, rewards, max(range(len(logps)), key=logps.__getitem__)
    )


@torch.no_grad()
def generate_text(served: ServedPolicy, prompt: str, *, max_new_tokens: int = 32) -> str:
    """The policy's greedy continuation of ``prompt`` (rendered as in training), up to EOS."""
    tokenizer = served.tokenizer
    prompt_ids = encode_prompt(tokenizer, prompt, served.chat_template)
    prompt_ids = prompt_ids[-max(1, served.max_length - max_new_tokens) :]
    ids = torch.tensor([prompt_ids], device=served.device)
    out = served.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
        do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return tokenizer.decode(out[0, len(prompt_ids) :], skip_special_tokens=True).strip()


def export_pretrained(
    checkpoint_dir: str | Path,
    start_model_dir: str | Path,
    target: str | Path,
    *,
    merge: bool,
    trust_remote_code: bool = False,
) -> Path:
    """Write ``target``: a folder ``AutoModelForCausalLM.from_pretrained(target)`` loads, tokenizer
    included (written atomically; ``target`` must be missing or an empty folder).

    Full fine-tuning: the weights. LoRA with ``merge``: the adapters merged into the weights.
    LoRA without ``merge``: the PEFT adapters, with the base model in ``target/base`` (its absolute
    path in ``adapter_config.json``, which transformers follows when peft is installed).
    """
    target = Path(target).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty folder")
    served = load_served_policy(
        checkpoint_dir, start_model_dir, trust_remote_code=trust_remote_code
    )
    adapters = served.reference is None
    with atomic_directory(target, replace=True) as tmp:
        if adapters and not merge:
            served.model.save_pretrained(tmp, safe_serialization=True)
            base = tmp / BASE
            shutil.copytree(start_model_dir, base)
            config_path = tmp / "adapter_config.json"
            config = json.loads(config_path.read_text())
            config["base_model_name_or_path"] = str(target / BASE)
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        else:
            model = served.model.merge_and_unload() if adapters else served.model
            model.save_pretrained(tmp, safe_serialization=True)
        served.tokenizer.save_pretrained(tmp)
    return target
