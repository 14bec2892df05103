"""Matrix-multiply FLOPs of the work a run asks of the model: the numerator of MFU.

A multiply-add counts as 2 FLOPs. Only matrix products are counted: the
q/k/v/o projections, the attention scores (q . k) and the weighted values
(p . v), the SwiGLU MLP and the LM head. Norms, RoPE, softmax and sampling
are O(H) per token against O(H^2) and are left out, as in the usual
"6 N" estimates. What is counted is the work the computation needs:
padding, a finished row that keeps running, and logits nobody reads are not,
so FLOPs / (seconds x the machine's matmul peak) is the model FLOPs
utilisation (MFU) of a phase, and its shortfall includes the waste.

    per_token = linear_flops(cfg)                # all layers, no LM head
    f = tokens_flops(cfg, n_new=10, context=96)  # 10 tokens after 96 cached ones
    f = rollout_flops(cfg, prompt_lens, completion_lens, group_size=8)
    f = update_flops(cfg, prompt_lens, completion_lens, group_size=8)  # forward + backward

Test: tests/test_flops.py (against torch.utils.flop_counter on our model).
"""

from __future__ import annotations

from collections.abc import Sequence

from model.config import ModelConfig


def linear_flops(cfg: ModelConfig) -> int:
    """FLOPs of one token through every layer's projections and MLP (no attention, no head)."""
    H, D, I = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
    qkvo = H * cfg.num_heads * D * 2 + H * cfg.num_kv_heads * D * 2  # q, o; k, v
    mlp = 3 * H * I  # gate, up, down
    return 2 * (qkvo + mlp) * cfg.num_layers


def head_flops(cfg: ModelConfig) -> int:
    """FLOPs of one row of logits (the LM head)."""
    return 2 * cfg.hidden_size * cfg.vocab_size


def attention_flops(cfg: ModelConfig, keys: int) -> int:
    """FLOPs of one query token attending to `keys` keys, every layer (scores and values)."""
    return 4 * cfg.num_heads * cfg.head_dim * keys * cfg.num_layers


def tokens_flops(cfg: ModelConfig, n_new: int, context: int = 0, head: int = 0) -> int:
    """Forward FLOPs of `n_new` tokens that follow `context` earlier tokens (causal), plus
    `head` rows of logits. Token j (0-based) attends to context + j + 1 keys."""
    if n_new <= 0:
        return head * head_flops(cfg)
    keys = n_new * context + n_new * (n_new + 1) // 2
    return (
        n_new * linear_flops(cfg)
        + attention_flops(cfg, 1) * keys
        + head * head_flops(cfg)
    )  # fmt: skip


def rollout_flops(
    cfg: ModelConfig, prompt_lens: Sequence[int], completion_lens: Sequence[int],
    group_size: int = 1,
) -> int:  # fmt: skip
    """Sampling: each prompt prefilled once (one row of logits), then every completion
    token but the last fed back through the cache (each gives one row of logits).
    completion_lens has len(prompt_lens) * group_size entries, grouped by prompt."""
    total = sum(tokens_flops(cfg, p, 0, head=1) for p in prompt_lens)
    for i, c in enumerate(completion_lens):
        p = prompt_lens[i // group_size]
        total += tokens_flops(cfg, c - 1, p, head=c - 1)
    return total


def update_flops(
    cfg: ModelConfig, prompt_lens: Sequence[int], completion_lens: Sequence[int],
    group_size: int = 1,
) -> int:  # fmt: skip
    """A log-prob forward and its backward (2x the forward) over the completions: each
    prompt runs once (shared by its group), every completion token is predicted (one row
    of logits each) from the prompt and the completion tokens before it."""
    fwd = sum(tokens_flops(cfg, p, 0) for p in prompt_lens)
    for i, c in enumerate(completion_lens):
        p = prompt_lens[i // group_size]
        fwd += tokens_flops(cfg, c - 1, p, head=c)
    return 3 * fwd
