"""A compact decoder-only transformer (Qwen2/Qwen2.5, Qwen3, Llama 3.x, our tiny configs).

Read top to bottom: RMSNorm, rotary embeddings, attention, MLP, block, the
transformer, the static KV cache. Parameter names equal Hugging Face keys
(`model.layers.0.self_attn.q_proj.weight`, ...), so checkpoints load without
renaming.

Shape legend: B batch, T new tokens in this call, S cache capacity (or keys
attended to), H hidden size, V vocab, nh query heads, nkv key/value heads,
D head dim, L layers.

Padding: every call takes an `attention_mask` (B, T) of 1 for real tokens and
0 for padding, anywhere in the row. Each real token gets the position it
would have with the padding removed, and attends only to real tokens at or
before it, so a padded row computes what it would compute alone.

    logits = model(input_ids)                       # (B, T, V)
    h = model.hidden_states(input_ids, mask)        # (B, T, H), final norm applied
    logp = kernels.logprobs_and_entropy(h[...], model.lm_head.weight, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # The mean of squares is taken in fp32: in bf16 it loses most of its bits.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_inv_freq(cfg: ModelConfig) -> Tensor:
    """Inverse frequencies (D/2,) in fp32, computed exactly as `transformers` does."""
    D = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    s = cfg.rope_scaling
    if s is None:
        return inv_freq
    # Llama 3.x: divide low frequencies (long wavelengths) by `factor`, keep high
    # ones, and blend linearly in between.
    old = s.original_max_position_embeddings
    low_wavelen, high_wavelen = old / s.low_freq_factor, old / s.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
    smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rope_cos_sin(inv_freq: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """cos, sin of shape (B, T, D) in fp32 for integer positions (B, T)."""
    freqs = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # HF layout: the two halves repeat
    return emb.cos(), emb.sin()


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, n, T, D); cos/sin (B, T, D) fp32. Rotation done in fp32, result in x's dtype."""
    cos, sin = cos[:, None], sin[:, None]
    x32 = x.float()
    return (x32 * cos + rotate_half(x32) * sin).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, gqa: bool) -> Tensor:
    """softmax(q k^T / sqrt(D) + mask) v by torch's fused kernel. On CPU, bf16/fp16 inputs
    are attended in fp32 (result cast back): torch's CPU flash-attention kernel is
    over 2x slower forward+backward in bf16 than in fp32 at the demo's shapes
    (benchmarks/cpu_bf16.py), and fp32 is the more exact of the two."""
    if q.device.type != "cpu" or q.dtype not in (torch.bfloat16, torch.float16):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    with torch.autocast("cpu", enabled=False):
        y = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=mask, enable_gqa=gqa
        )  # fmt: skip
    return y.to(q.dtype)


class KVCache:
    """Static per-layer key/value buffers, preallocated for S positions per row.

    `valid` marks the columns that hold real tokens (prompt padding stays
    False); `length` is how many columns are filled (the same for every row,
    so rows of different lengths simply carry masked columns); `next_pos` is
    each row's rotary position for its next real token.

    `prefix` (optional): a filled cache of one row that every row continues (a
    template's instructions). Its keys and values are kept once, as
    `prefix_k` / `prefix_v` (L, nkv, Sp, D), and attended before each row's
    own columns; they are never copied per row.
    """

    def __init__(
        self, cfg: ModelConfig, batch_size: int, capacity: int,
        device: torch.device | str, dtype: torch.dtype, prefix: KVCache | None = None,
    ) -> None:  # fmt: skip
        L, B, n, S, D = cfg.num_layers, batch_size, cfg.num_kv_heads, capacity, cfg.head_dim
        self.k = torch.zeros(L, B, n, S, D, device=device, dtype=dtype)
        self.v = torch.zeros(L, B, n, S, D, device=device, dtype=dtype)
        self.valid = torch.zeros(B, S, dtype=torch.bool, device=device)
        self.next_pos = torch.zeros(B, dtype=torch.long, device=device)
        self.length = 0
        self.prefix_k = self.prefix_v = None
        if prefix is not None:
            if prefix.k.shape[1] != 1 or prefix.prefix_k is not None:
                raise ValueError("a cache's prefix must be a plain cache of one row")
            n_pre = prefix.length
            self.prefix_k = prefix.k[:, 0, :, :n_pre].contiguous()
            self.prefix_v = prefix.v[:, 0, :, :n_pre].contiguous()
            self.next_pos.fill_(int(prefix.next_pos[0]))

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k.shape[2]

    def _like(self, k: Tensor, v: Tensor, valid: Tensor, next_pos: Tensor) -> KVCache:
        new = object.__new__(KVCache)
        new.k, new.v, new.valid, new.next_pos, new.length = k, v, valid, next_pos, self.length
        new.prefix_k, new.prefix_v = self.prefix_k, self.prefix_v
        return new

    def select(self, rows: Tensor) -> KVCache:
        """A cache of only these rows (the sampler drops rows that have finished).
        Only the filled columns are copied; the shared prefix is not copied at all."""
        n, L, _, nkv, S, D = self.length, *self.k.shape
        k, v = self.k.new_empty(L, len(rows), nkv, S, D), self.v.new_empty(L, len(rows), nkv, S, D)
        k[:, :, :, :n] = self.k[:, :, :, :n].index_select(1, rows)
        v[:, :, :, :n] = self.v[:, :, :, :n].index_select(1, rows)
        valid, next_pos = self.valid.index_select(0, rows), self.next_pos.index_select(0, rows)
        return self._like(k, v, valid, next_pos)

    def repeat_interleave(self, repeats: int) -> KVCache:
        """Copy each row `repeats` times: prefill a prompt once, sample G completions from it."""
        return self._like(
            self.k.repeat_interleave(repeats, dim=1), self.v.repeat_interleave(repeats, dim=1),
            self.valid.repeat_interleave(repeats, dim=0),
            self.next_pos.repeat_interleave(repeats, dim=0),
        )  # fmt: skip


@dataclass
class Prefix:
    """A prompt's keys and values kept as autograd tensors: the prefix-shared GRPO update.

    `model.prefix_states(prompt_ids, mask)` runs U prompts once; `select(index)`
    copies each to the rows that share it (index_select, so in backward the
    rows' gradients are summed onto their prompt); `hidden_states(ids, mask,
    prefix=...)` then runs the completions on top. Unlike KVCache nothing is
    written in place, so gradients flow through it. Per layer, k and v are
    (B, nkv, P, D) after RoPE; `valid` (B, P) marks real prompt tokens,
    `next_pos` (B,) is each row's next position, `last` (B, H) the final
    hidden state of the last prompt column (it predicts the first completion
    token; prompts are left-padded, so that column is real).
    """

    k: list[Tensor]
    v: list[Tensor]
    valid: Tensor
    next_pos: Tensor
    last: Tensor

    def select(self, index: Tensor) -> Prefix:
        pick = lambda t: t.index_select(0, index)  # noqa: E731
        return Prefix([pick(k) for k in self.k], [pick(v) for v in self.v],
                      pick(self.valid), pick(self.next_pos), pick(self.last))  # fmt: skip


class _Present:
    """What a Prefix's layers append their (k, v) to. Not a list: module hooks that
    rebuild the lists and tuples among their arguments (FSDP2's) pass this very
    object on, not a copy the caller never sees."""

    def __init__(self) -> None:
        self.kv: list[tuple[Tensor, Tensor]] = []

    def append(self, kv: tuple[Tensor, Tensor]) -> None:
        self.kv.append(kv)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        H, D = cfg.hidden_size, cfg.head_dim
        self.nh, self.nkv, self.D = cfg.num_heads, cfg.num_kv_heads, D
        self.q_proj = nn.Linear(H, self.nh * D, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(H, self.nkv * D, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(H, self.nkv * D, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.nh * D, H, bias=False)
        if cfg.qk_norm:  # Qwen3: per-head RMSNorm on q and k, before RoPE
            self.q_norm = RMSNorm(D, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(D, cfg.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor,
        cache: KVCache | None = None, layer: int = 0,
        past: tuple[Tensor, Tensor] | None = None, present: _Present | None = None,
    ) -> Tensor:  # fmt: skip
        """`past`: a Prefix's (k, v) for this layer, attended before x's own keys;
        `present`: receives this call's (k, v) by `append` (for Prefix)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.D)
        k = self.k_proj(x).view(B, T, self.nkv, self.D)
        v = self.v_proj(x).view(B, T, self.nkv, self.D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, n, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if present is not None:
            present.append((k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        if cache is not None:
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            S = start + T  # this row part's keys attended to: its filled columns
            k, v = cache.k[layer, :, :, :S], cache.v[layer, :, :, :S]  # (B, nkv, S, D)
            if cache.prefix_k is not None:  # the shared prefix comes first in every row
                pk = cache.prefix_k[layer].expand(B, -1, -1, -1)
                k = torch.cat([pk, k], 2)
                v = torch.cat([cache.prefix_v[layer].expand(B, -1, -1, -1), v], 2)
        y = attention(q, k, v, mask, self.nkv != self.nh)  # (B, nh, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.nh * self.D))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        H, I = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor,
        cache: KVCache | None = None, layer: int = 0,
        past: tuple[Tensor, Tensor] | None = None, present: _Present | None = None,
    ) -> Tensor:  # fmt: skip
        h = self.input_layernorm(x)
        x = x + self.self_attn(h, cos, sin, mask, cache, layer, past, present)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """Embedding, blocks, final norm: the `model.` prefix of Hugging Face keys."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # Derived from the config, never loaded from a checkpoint.
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        # Per-block activation checkpointing (recompute in backward to save memory).
        self.gradient_checkpointing = False

    @property
    def head_weight(self) -> Tensor:
        """The LM head matrix (V, H): the fused log-prob kernel takes this, not logits."""
        return self.lm_head.weight

    def init_weights(self, seed: int = 0, std: float = 0.02) -> Transformer:
        """Random init for from-scratch training (GPT-2 style, scaled residual outputs)."""
        g = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                s = std / math.sqrt(2 * self.config.num_layers) if name.endswith(
                    ("o_proj.weight", "down_proj.weight")
                ) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * s)
        return self

    def hidden_states(
        self, input_ids: Tensor, attention_mask: Tensor | None = None,
        cache: KVCache | None = None, prefix: Prefix | None = None,
    ) -> Tensor:  # fmt: skip
        """Final hidden states (B, T, H), after the last RMSNorm.

        With a cache, the T tokens are appended after its `length` filled
        columns and the cache is advanced. With a prefix (see Prefix), they
        follow its prompt, and gradients flow back into it.
        """
        return self._run(input_ids, attention_mask, cache, prefix, None)

    def prefix_states(
        self, input_ids: Tensor, attention_mask: Tensor | None = None,
        prefix: Prefix | None = None,
    ) -> Prefix:  # fmt: skip
        """Run left-padded prompts once and keep what their completions need (see Prefix).

        With `prefix`, the prompts continue it (a template's text computed once for
        many prompts) and the result holds both: its keys and values, then theirs.
        """
        present = _Present()
        h = self._run(input_ids, attention_mask, None, prefix, present)
        valid = (
            torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
            if attention_mask is None
            else attention_mask.to(device=input_ids.device, dtype=torch.bool)
        )
        k, v = [p[0] for p in present.kv], [p[1] for p in present.kv]
        next_pos = valid.sum(1)
        if prefix is not None:
            k = [torch.cat([a, b], 2) for a, b in zip(prefix.k, k)]
            v = [torch.cat([a, b], 2) for a, b in zip(prefix.v, v)]
            valid, next_pos = torch.cat([prefix.valid, valid], 1), prefix.next_pos + next_pos
        return Prefix(k, v, valid, next_pos, h[:, -1])

    def _run(
        self, input_ids: Tensor, attention_mask: Tensor | None, cache: KVCache | None,
        prefix: Prefix | None, present: _Present | None,
    ) -> Tensor:  # fmt: skip
        if cache is not None and prefix is not None:
            raise ValueError("give a KV cache or a prefix, not both")
        B, T = input_ids.shape
        dev = input_ids.device
        valid = (
            torch.ones(B, T, dtype=torch.bool, device=dev)
            if attention_mask is None
            else attention_mask.to(device=dev, dtype=torch.bool)
        )
        # Position of each real token = number of real tokens before it in its row.
        if cache is not None:
            offset = cache.next_pos[:, None]
        elif prefix is not None:
            offset = prefix.next_pos[:, None]
        else:
            offset = 0
        positions = (offset + valid.long().cumsum(1) - 1).clamp(min=0)  # (B, T)
        if cache is not None:
            start = cache.length
            if start + T > cache.capacity:
                raise ValueError(f"KV cache overflow: {start} + {T} > capacity {cache.capacity}")
            cache.valid[:, start : start + T] = valid
            key_valid = cache.valid[:, : start + T]
            if cache.prefix_k is not None:  # every row attends the shared prefix first
                pre = torch.ones(B, cache.prefix_len, dtype=torch.bool, device=dev)
                key_valid = torch.cat([pre, key_valid], 1)
                start += cache.prefix_len
        elif prefix is not None:
            start = prefix.valid.shape[1]
            key_valid = torch.cat([prefix.valid, valid], 1)
        else:
            start, key_valid = 0, valid
        S = start + T
        q_idx = torch.arange(start, S, device=dev)[:, None]
        k_idx = torch.arange(S, device=dev)[None, :]
        # (B, 1, T, S): causal and real keys only. A padding query sees itself, so
        # no softmax row is empty (an all-masked row would give NaN).
        mask = ((k_idx <= q_idx) & key_valid[:, None, :]) | (k_idx == q_idx)
        mask = mask[:, None]
        cos, sin = rope_cos_sin(self.inv_freq, positions)
        x = self.model.embed_tokens(input_ids)
        for i, layer in enumerate(self.model.layers):
            past = (prefix.k[i], prefix.v[i]) if prefix is not None else None
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(
                    layer, x, cos, sin, mask, cache, i, past, present, use_reentrant=False
                )
            else:
                x = layer(x, cos, sin, mask, cache, i, past, present)
        if cache is not None:
            cache.length = S - cache.prefix_len
            cache.next_pos += valid.sum(1)
        return self.model.norm(x)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:  # fmt: skip
        """Logits (B, T, V) in the parameters' dtype."""
        # _run, not hidden_states: under FSDP2 each entry point has its own hooks
        # (grpo/parallel/fsdp.py), and one entered inside another would reshard on leaving.
        return self.lm_head(self._run(input_ids, attention_mask, cache, None, None))
