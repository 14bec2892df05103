"""What both base corpora share: the template, the end-of-text token, the tags, the
text of each completion mode, and the checks on a build's numbers.

    from grpo.bases.common import EOS, TEMPLATE, completion_text
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from model.config import ModelConfig

TEMPLATE = "r1zero"  # see the package docstring (grpo/bases/__init__.py) for why not "r1zero_think"
EOS = "<|endoftext|>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")

Log = Callable[[str], None]


def completion_text(mode: str, answer: str, work: str, bare_mode: str, modes: Sequence[str]) -> str:
    """The text after "Assistant:" in one mode: direct, empty think, worked, or bare."""
    if mode == "answer":
        return f" <answer>{answer}</answer>"
    if mode == "empty_think":
        return f" <think></think> <answer>{answer}</answer>"
    if mode == "scratchpad":
        return f" <think> {work} </think> <answer>{answer}</answer>"
    if mode == bare_mode:
        return f" {answer}"
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(modes)}")


def model_config(config: Any, vocab_size: int, eos_id: int) -> ModelConfig:
    """The Llama-style model of a build config (tied embeddings, 1024 positions)."""
    return ModelConfig(
        model_type="llama", vocab_size=vocab_size, hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_layers=config.num_layers,
        num_heads=config.num_heads, num_kv_heads=config.num_kv_heads, head_dim=config.head_dim,
        max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=eos_id,
        pad_token_id=eos_id,
    )  # fmt: skip


_AT_LEAST_ONE = (
    "num_docs", "tokenizer_docs", "vocab_size", "hidden_size", "intermediate_size",
    "num_layers", "num_heads", "num_kv_heads", "head_dim", "seq_len", "batch_size", "steps",
)  # fmt: skip


def check_build_numbers(config: Any, modes: Sequence[str]) -> None:
    """Raise ValueError, naming the field, if a number of a build config is out of range.

    Checked when a config is made (so `--set steps=0` fails at once, not
    minutes into a build): the mode shares, the sizes and counts, the
    optimiser's numbers, and the model shape (through `ModelConfig`'s checks).
    """
    shares = [getattr(config, f"{m}_share") for m in modes]
    if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise ValueError(f"transcript mode shares must be >= 0 and sum to 1, got {shares}")
    if not 0.0 <= config.transcript_share <= 1.0:
        raise ValueError(f"transcript_share must be in [0, 1], got {config.transcript_share}")
    if config.seed < 0:
        raise ValueError(f"seed must be >= 0, got {config.seed}")
    for name in _AT_LEAST_ONE:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("lr", "grad_clip"):
        if not 0 < getattr(config, name) < math.inf:  # also false for NaN
            raise ValueError(f"{name} must be > 0 and finite, got {getattr(config, name)}")
    if not 0.0 <= config.min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {config.min_lr_ratio}")
    if config.warmup_steps < 0 or not 0 <= config.weight_decay < math.inf:
        raise ValueError(
            f"need warmup_steps >= 0 and weight_decay >= 0, got {config.warmup_steps} and "
            f"{config.weight_decay}"
        )
    model_config(config, config.vocab_size, 0)  # num_heads vs num_kv_heads, even head_dim
