"""The sampler's one-token step, written for speed: what `generate` runs per decoded token.

It computes what `model(tok[:, None], None, cache)[:, -1]` computes (the tests
hold the two together), with four changes that matter when a step feeds one
token to each of ~100 rows of a small model, where time goes to small
matmuls, attention over the cache, and per-op overhead rather than FLOPs:

1. Fused weights. q, k and v are one matmul, and so are the MLP's gate and
   up projections: 4 matmuls per layer instead of 7. The fused matrices are
   concatenated once per `generate` call (`Decoder(model)`), from the
   current weights; q's 1/sqrt(D) is folded into them, and the residual adds
   ride on the output projections (`addmm`). Under autocast they are cast to
   its dtype once, here, instead of by every matmul of every step.
2. Attention for one query token, with grouped-query heads, as two small
   batched matmuls and a softmax. The `g = nh / nkv` query heads that share a
   key head are stacked as rows of one matmul, so keys and values are never
   repeated per query head.
3. The shared prefix (a template's instructions, `KVCache.prefix_k`) is
   attended once for all rows: its scores are one matmul of all B*g query
   rows against its Sp keys, instead of reading B copies of it from the cache.
4. Rotary cos/sin come from a table made once per call, not recomputed, and
   q and k are rotated together. In fp32, RMSNorm is torch's `F.rms_norm`.

Scores of the prefix and of each row's own columns are softmaxed together
(one concatenated row), so the result is the ordinary attention over
[prefix | row], up to round-off. Shapes: B rows, H hidden, nh/nkv heads, D
head dim, g = nh/nkv, Sp prefix keys, S row keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from model.transformer import KVCache, RMSNorm, Transformer, rope_cos_sin, rotate_half


class Decoder:
    """`Decoder(model, max_positions)(tok, cache)` -> next-token logits (B, V); appends tok
    to the cache. max_positions: above every rotary position a step will use."""

    def __init__(self, model: Transformer, max_positions: int) -> None:
        cfg = model.config
        self.model = model
        dev = model.inv_freq.device
        # Under autocast, the fused weights are cast once here rather than by every matmul
        # of every step (autocast caches casts of parameters only, not of derived tensors).
        amp = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else None

        def cast(w: Tensor | None) -> Tensor | None:
            return w if w is None or amp is None else w.to(amp)

        self.nh, self.nkv, self.D = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.scale = 1.0 / math.sqrt(self.D)
        self.layers = []
        for blk in model.model.layers:
            a, mlp = blk.self_attn, blk.mlp
            # q is scaled by 1/sqrt(D) through its weights (unless a norm follows it).
            folded = a.q_norm is None
            qs = self.scale if folded else 1.0
            qkv_w = torch.cat([a.q_proj.weight * qs, a.k_proj.weight, a.v_proj.weight])
            qkv_b = (torch.cat([a.q_proj.bias * qs, a.k_proj.bias, a.v_proj.bias])
                     if a.q_proj.bias is not None else None)  # fmt: skip
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            q_scale = 1.0 if folded else self.scale  # what is left to apply to q
            self.layers.append((blk, cast(qkv_w), cast(qkv_b), cast(gate_up),
                                cast(a.o_proj.weight.t()), cast(mlp.down_proj.weight.t()),
                                q_scale))  # fmt: skip
        cos, sin = rope_cos_sin(model.inv_freq, torch.arange(max_positions, device=dev)[None])
        self.cos, self.sin = cos[0], sin[0]  # (positions, D) fp32

    def __call__(self, tok: Tensor, cache: KVCache) -> Tensor:
        model, nh, nkv, D = self.model, self.nh, self.nkv, self.D
        B, g, t = tok.shape[0], nh // nkv, cache.length
        if t + 1 > cache.capacity:
            raise ValueError(f"KV cache overflow: {t} + 1 > capacity {cache.capacity}")
        cache.valid[:, t] = True
        S, Sp = t + 1, cache.prefix_len
        # Additive mask over the row's own columns (prompt padding gets -inf).
        bias = torch.zeros(B, 1, 1, S, device=tok.device)
        bias.masked_fill_(~cache.valid[:, None, None, :S], float("-inf"))
        cos, sin = self.cos[cache.next_pos][:, None], self.sin[cache.next_pos][:, None]  # (B, 1, D)
        x = model.model.embed_tokens(tok)  # (B, H)
        # Under autocast, addmm would round the residual stream to bf16; x + mm keeps
        # it in x's dtype, as the general forward does.
        fuse = not torch.is_autocast_enabled(tok.device.type)
        for i, (blk, qkv_w, qkv_b, gate_up, o_t, down_t, q_scale) in enumerate(self.layers):
            a = blk.self_attn
            qkv = F.linear(self.norm(blk.input_layernorm, x), qkv_w, qkv_b)
            if a.q_norm is None:  # RoPE on q and k together: one set of ops
                qk = qkv[:, : (nh + nkv) * D].view(B, nh + nkv, D).float()
                qk = (qk * cos + rotate_half(qk) * sin).to(x.dtype)
                q, k = qk[:, :nh], qk[:, nh:]
            else:  # Qwen3: a per-head norm on each first
                q = a.q_norm(qkv[:, : nh * D].view(B, nh, D)).float()
                k = a.k_norm(qkv[:, nh * D : (nh + nkv) * D].view(B, nkv, D)).float()
                q = (q * cos + rotate_half(q) * sin).to(x.dtype)
                k = (k * cos + rotate_half(k) * sin).to(x.dtype)
            v = qkv[:, (nh + nkv) * D :].view(B, nkv, D)
            cache.k[i, :, :, t] = k
            cache.v[i, :, :, t] = v
            q = q.reshape(B, nkv, g, D)
            if q_scale != 1.0:
                q = q * q_scale
            rk, rv = cache.k[i, :, :, :S], cache.v[i, :, :, :S]  # (B, nkv, S, D)
            scores = torch.matmul(q, rk.transpose(-1, -2)) + bias  # (B, nkv, g, S)
            if Sp:
                qp = q.permute(1, 0, 2, 3).reshape(nkv, B * g, D)
                sp = torch.matmul(qp, cache.prefix_k[i].transpose(-1, -2))  # (nkv, B*g, Sp)
                scores = torch.cat([sp.view(nkv, B, g, Sp).permute(1, 0, 2, 3), scores], -1)
            p = torch.softmax(scores.float(), -1).to(x.dtype)
            y = torch.matmul(p[..., Sp:], rv)  # (B, nkv, g, D)
            if Sp:
                pp = p[..., :Sp].permute(1, 0, 2, 3).reshape(nkv, B * g, Sp)
                y = y + torch.matmul(pp, cache.prefix_v[i]).view(nkv, B, g, D).permute(1, 0, 2, 3)
            x = self.residual(x, y.reshape(B, nh * D), o_t, fuse)  # x + o_proj(y)
            gu = F.linear(self.norm(blk.post_attention_layernorm, x), gate_up)
            gate, up = gu.chunk(2, -1)
            x = self.residual(x, F.silu(gate) * up, down_t, fuse)  # x + down_proj(...)
        cache.length = S
        cache.next_pos += 1
        return model.lm_head(self.norm(model.model.norm, x))

    @staticmethod
    def residual(x: Tensor, h: Tensor, w_t: Tensor, fuse: bool) -> Tensor:
        return torch.addmm(x, h, w_t) if fuse else x + torch.matmul(h, w_t)

    @staticmethod
    def norm(module: RMSNorm, x: Tensor) -> Tensor:
        """The RMSNorm module's value. In fp32, torch's `F.rms_norm`: one Python call instead
        of the module's six ops (which it still runs inside, on CPU), so less overhead."""
        if x.dtype != torch.float32:
            return module(x)
        return F.rms_norm(x, module.weight.shape, module.weight, module.eps)
