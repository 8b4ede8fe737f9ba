"""Language-model policies for group robust preference optimisation (spec sections 1, 6, 7).

A causal LM scores (chosen, rejected) with summed response log-probs and trains in the one loop of
:mod:`grpo_core.loop`. Modules: ``config`` (model, LoRA, SFT sections), ``tokenizer`` and ``presets``
(the tiny and SmolLM2 models), ``dataset`` and ``logprobs`` (token layout, sequence log-probs),
``policy``, ``reference_cache``, ``sft``, ``checkpoint`` and ``files`` (safetensors + JSON,
atomic, no pickles), ``progress`` and ``run`` (the entry points the CLI and the tasks call).
"""
