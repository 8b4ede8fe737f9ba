"""Language-model policies for group robust preference optimisation.

The language-model setting of Ramesh et al. 2024 (arXiv:2405.20304,
https://arxiv.org/abs/2405.20304): sequence log-probs (docs/ALGORITHM.md#notation), SFT then
preference training from the SFT model (docs/ALGORITHM.md#language-model-experiments), per-group
metrics (docs/ALGORITHM.md#evaluation-metrics).

A causal LM scores (chosen, rejected) with summed response log-probs and trains in the one loop of
:mod:`grpo_core.loop`. Modules: ``config`` (model, LoRA, SFT sections) and ``recipe`` (the sections
of one training run), ``tokenizer`` and ``presets`` (the tiny and SmolLM2 models), ``dataset``,
``splits`` and ``batching`` (token layout of a prepared split and of a minibatch), ``logprobs``
(sequence log-probs), ``policy``, ``reference_cache``, ``start_model`` and ``sft`` (the model
preference training starts from), ``checkpoint`` and ``safe_loading`` (safetensors + JSON, atomic,
no pickles), ``callbacks`` (what a run reports), ``training`` and ``evaluate`` (the entry points the
CLI and the tasks call).
"""
