"""PyTorch twin of the fused LM-head log-prob + entropy kernel: the CPU path and the test oracle.

For every token row n, with h = hidden[n], W the LM head, T the temperature, y = targets[n]:

    z        = W h / T                              (V logits, never stored for all rows)
    logp_y   = z_y - logsumexp(z)
    entropy  = -sum_j p_j log p_j,    p = softmax(z)

The logits are produced chunk by chunk (chunk_n rows x chunk_v vocab columns) and folded into
three running statistics per row, so peak extra memory is O(chunk_n * chunk_v), not O(N * V).
Backward recomputes each chunk instead of saving it.

Running statistics of a row over the columns seen so far (the "online softmax"):

    m    = max_j z_j
    dm1  = sum_j exp(z_j - m) - 1          (the softmax denominator d, minus 1)
    s    = sum_j exp(z_j - m) (z_j - m)

    lse      = m + log1p(dm1)
    logp_y   = (z_y - m) - log1p(dm1)
    entropy  = lse - E_p[z] = log1p(dm1) - s / (1 + dm1)

Why "d - 1" and not d: the largest logit contributes exactly exp(0) = 1 to d, so d - 1 is the
mass of all the other columns. When the model is confident, d = 1 + 1e-6 and fp32 can only
store d to within 6e-8, so log(d) = -logp_y would carry a ~6% relative error; dm1 keeps every
bit of that small mass. Likewise s is kept relative to m (not sum p z) so that entropy is not
the difference of two large numbers when |z| is large.

Merging two sets of statistics a, b (two vocab chunks of the same rows), with M = max(m_a, m_b)
and the smaller-max side rescaled by alpha = exp(m_small - M):

    dm1 = dm1_big + alpha (1 + dm1_small)
    s   = s_big   + alpha (s_small + (m_small - M)(1 + dm1_small))

Backward, with upstream grads g_lp, g_ent per row and logp_j = z_j - lse:

    dL/dz_j = g_lp (1[j = y] - p_j) - g_ent p_j (logp_j + entropy)

and 1 - p_y is taken as -expm1(logp_y): that is where confident rows lose precision otherwise.

Shapes: N tokens, H hidden size, V vocab size; n <= chunk_n and v <= chunk_v for one chunk.

Tests: python -m pytest -q tests/test_kernels.py
"""

from __future__ import annotations

import torch
from torch import Tensor

# One (chunk_n, chunk_v) fp32 logits chunk is 16 MiB; a few temporaries of that size live at
# once. Large enough that per-op overhead and small matmuls do not dominate on CPU, small enough
# to be negligible next to the naive path's (N, V) logits (N = 16k, V = 152k: 9.3 GiB in fp32).
DEFAULT_CHUNK_N = 512
DEFAULT_CHUNK_V = 8192

RowStats = tuple[Tensor, Tensor, Tensor]  # (m, dm1, s), each (n,) fp32


# ----------------------------------------------------------------------------- row statistics


def tile_stats(z: Tensor) -> RowStats:
    """Online-softmax statistics (m, dm1, s) of an (n, v) fp32 logits tile, per row."""
    m, argmax = z.max(dim=1)  # (n,), (n,)
    zc = z - m[:, None]  # (n, v), <= 0
    e = torch.exp(zc)
    # The max column contributes exactly exp(0) = 1: drop it from the sum instead of
    # subtracting 1 afterwards (1 + 3e-6 - 1 in fp32 keeps one digit of the 3e-6). Other columns
    # tied with the max still add exact ones. s is unchanged, since zc = 0 there.
    e.scatter_(1, argmax[:, None], 0.0)
    dm1 = e.sum(dim=1)
    s = e.mul_(zc).sum(dim=1)
    return m, dm1, s


def merge_stats(a: RowStats, b: RowStats) -> RowStats:
    """Combine the statistics of two disjoint column sets of the same rows."""
    m_a, dm1_a, s_a = a
    m_b, dm1_b, s_b = b
    a_big = m_a >= m_b
    m_big = torch.where(a_big, m_a, m_b)
    m_small = torch.where(a_big, m_b, m_a)
    dm1_big = torch.where(a_big, dm1_a, dm1_b)
    dm1_small = torch.where(a_big, dm1_b, dm1_a)
    s_big = torch.where(a_big, s_a, s_b)
    s_small = torch.where(a_big, s_b, s_a)
    shift = m_small - m_big  # <= 0
    alpha = torch.exp(shift)
    d_small = 1.0 + dm1_small
    return m_big, dm1_big + alpha * d_small, s_big + alpha * (s_small + shift * d_small)


def finalize_stats(stats: RowStats, z_target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(m, dm1, s) and the target logit z_y -> (lse, logp_y, entropy), each (n,) fp32."""
    m, dm1, s = stats
    log_d = torch.log1p(dm1)
    lse = m + log_d
    logp = (z_target - m) - log_d
    entropy = log_d - s / (1.0 + dm1)
    return lse, logp, entropy


def grad_logits(
    z: Tensor,
    local_targets: Tensor,
    lse: Tensor,
    logp: Tensor,
    entropy: Tensor,
    g_lp: Tensor | None,
    g_ent: Tensor | None,
) -> Tensor:
    """dL/dz for an (n, v) fp32 logits chunk; local_targets may fall outside [0, v).

    A row whose target lies in another vocab chunk gets only the -p_j terms here. A missing
    upstream gradient (None) counts as zero.
    """
    v = z.shape[1]
    in_chunk = (local_targets >= 0) & (local_targets < v)  # (n,)
    col = local_targets.clamp(0, v - 1)[:, None]  # (n, 1)
    logp_all = z - lse[:, None]  # (n, v)
    # The target column takes the forward's logp_y: z_y - lse would lose a confident row's
    # 1 - p_y ~ 1e-6 to the rounding of lse (one ulp of 22 is 2e-6).
    logp_all.scatter_(1, col, torch.where(in_chunk, logp, logp_all.gather(1, col)[:, 0])[:, None])
    p = torch.exp(logp_all)
    # Off the target column: dz = p * (-g_ent * logp - (g_ent * entropy + g_lp)), one addcmul.
    zeros = torch.zeros_like(logp)
    g_lp = g_lp if g_lp is not None else zeros
    neg_g_ent = -g_ent if g_ent is not None else zeros
    row_term = neg_g_ent * entropy - g_lp  # (n,)
    dz = torch.addcmul(row_term[:, None], logp_all, neg_g_ent[:, None]).mul_(p)
    # The target column, from per-row values: (1 - p_y) g_lp with 1 - p_y = -expm1(logp_y),
    # because 1 - p_y computed from p_y cancels catastrophically when p_y -> 1.
    target_grad = -torch.expm1(logp) * g_lp + neg_g_ent * torch.exp(logp) * (logp + entropy)
    dz.scatter_(1, col, torch.where(in_chunk, target_grad, dz.gather(1, col)[:, 0])[:, None])
    return dz


# ------------------------------------------------------------------------- fused linear path


def _logits_chunk(h_scaled: Tensor, weight: Tensor, v0: int, v1: int) -> Tensor:
    """(n, H) fp32 rows, already divided by T, x weight[v0:v1] -> (n, v) fp32 logits.

    The weight chunk is upcast *before* the matmul. A bf16 matmul would round every logit to
    bf16 (absolute error up to 0.06 at |z| = 16) before the softmax; the upcast is exact, so the
    only error left is fp32 accumulation, which is also what the Triton kernel does (its bf16
    products are exact in fp32 and accumulate in fp32). Dividing the (n, H) rows by T instead
    of the (n, v) logits saves a pass over the larger tensor.
    """
    return h_scaled @ weight[v0:v1].float().T


class _ChunkedLinearLogprobEntropy(torch.autograd.Function):
    """hidden @ weight.T -> (logp, entropy) without ever holding all (N, V) logits."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk_n, chunk_v):
        n_rows, vocab = hidden.shape[0], weight.shape[0]
        lse = hidden.new_empty(n_rows, dtype=torch.float32)
        logp = torch.empty_like(lse)
        entropy = torch.empty_like(lse)
        for n0 in range(0, n_rows, chunk_n):
            n1 = min(n0 + chunk_n, n_rows)
            h_scaled = hidden[n0:n1].float() / temperature  # (n, H)
            y = targets[n0:n1]
            stats = None
            z_target = torch.zeros(n1 - n0, dtype=torch.float32, device=hidden.device)
            for v0 in range(0, vocab, chunk_v):
                v1 = min(v0 + chunk_v, vocab)
                z = _logits_chunk(h_scaled, weight, v0, v1)  # (n, v)
                in_chunk = (y >= v0) & (y < v1)
                col = (y - v0).clamp(0, v1 - v0 - 1)[:, None]
                z_target = torch.where(in_chunk, z.gather(1, col)[:, 0], z_target)
                tile = tile_stats(z)
                stats = tile if stats is None else merge_stats(stats, tile)
            lse[n0:n1], logp[n0:n1], entropy[n0:n1] = finalize_stats(stats, z_target)

        ctx.save_for_backward(hidden, weight, targets, lse, logp, entropy)
        ctx.temperature, ctx.chunk_n, ctx.chunk_v = temperature, chunk_n, chunk_v
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, g_lp, g_ent):
        hidden, weight, targets, lse, logp, entropy = ctx.saved_tensors
        need_dh, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if (g_lp is None and g_ent is None) or not (need_dh or need_dw):
            return None, None, None, None, None, None
        g_lp = g_lp.float() if g_lp is not None else None
        g_ent = g_ent.float() if g_ent is not None else None
        n_rows, vocab = hidden.shape[0], weight.shape[0]
        temperature, chunk_n, chunk_v = ctx.temperature, ctx.chunk_n, ctx.chunk_v

        # Accumulate in fp32 and cast once at the end: summing many token chunks into a bf16
        # buffer would drop the small contributions (bf16 keeps 8 mantissa bits).
        f32 = dict(dtype=torch.float32, device=hidden.device)
        dh = torch.zeros(hidden.shape, **f32) if need_dh else None  # (N, H)
        dw = torch.zeros(weight.shape, **f32) if need_dw else None  # (V, H)
        for n0 in range(0, n_rows, chunk_n):
            n1 = min(n0 + chunk_n, n_rows)
            h_scaled = hidden[n0:n1].float() / temperature  # (n, H)
            rows = slice(n0, n1)
            g_lp_c = g_lp[rows] if g_lp is not None else None
            g_ent_c = g_ent[rows] if g_ent is not None else None
            for v0 in range(0, vocab, chunk_v):
                v1 = min(v0 + chunk_v, vocab)
                z = _logits_chunk(h_scaled, weight, v0, v1)  # (n, v)
                dz = grad_logits(
                    z, targets[rows] - v0, lse[rows], logp[rows], entropy[rows], g_lp_c, g_ent_c
                )
                # Chain rule through z = (h / T) W^T: dW sees the scaled rows, dh gets 1 / T.
                if dh is not None:
                    dh[rows] += (dz @ weight[v0:v1].float()) / temperature  # (n, H)
                if dw is not None:
                    dw[v0:v1] += dz.T @ h_scaled  # (v, H)
        dh = dh.to(hidden.dtype) if dh is not None else None
        dw = dw.to(weight.dtype) if dw is not None else None
        return dh, dw, None, None, None, None


def torch_logprobs_and_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    temperature: float = 1.0,
    *,
    chunk_n: int = DEFAULT_CHUNK_N,
    chunk_v: int = DEFAULT_CHUNK_V,
) -> tuple[Tensor, Tensor]:
    """Chunked PyTorch log p(targets) and entropy of softmax(hidden @ weight.T / temperature).

    hidden (N, H), weight (V, H), targets (N,) int64 -> (logp, entropy), both (N,) fp32.
    Inputs are assumed validated (kernels.logprobs_and_entropy does that).
    """
    return _ChunkedLinearLogprobEntropy.apply(
        hidden, weight, targets, float(temperature), int(chunk_n), int(chunk_v)
    )


# ------------------------------------------------------------------------ from existing logits


class _LogprobEntropyFromLogits(torch.autograd.Function):
    """(N, V) logits -> (logp, entropy) in fp32, with the same numerics as the fused paths."""

    @staticmethod
    def forward(ctx, logits, targets, temperature):
        z = logits.float() / temperature  # (N, V)
        z_target = z.gather(1, targets[:, None])[:, 0]
        lse, logp, entropy = finalize_stats(tile_stats(z), z_target)
        ctx.save_for_backward(logits, targets, lse, logp, entropy)
        ctx.temperature = temperature
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, g_lp, g_ent):
        logits, targets, lse, logp, entropy = ctx.saved_tensors
        if (g_lp is None and g_ent is None) or not ctx.needs_input_grad[0]:
            return None, None, None
        g_lp = g_lp.float() if g_lp is not None else None
        g_ent = g_ent.float() if g_ent is not None else None
        z = logits.float() / ctx.temperature  # recomputed: saving it would double the memory
        dz = grad_logits(z, targets, lse, logp, entropy, g_lp, g_ent) / ctx.temperature
        return dz.to(logits.dtype), None, None


def torch_logprobs_and_entropy_from_logits(
    logits: Tensor, targets: Tensor, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """log p(targets) and entropy of softmax(logits / temperature); logits (N, V) -> (N,), (N,)."""
    return _LogprobEntropyFromLogits.apply(logits, targets, float(temperature))
