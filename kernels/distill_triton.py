"""Triton kernels: the fused teacher-student distillation loss and its student-side gradients.

The loss is kernels/distill_torch.py's, and this file follows it line by line (that twin is
the CPU path and these kernels' test oracle). For every token row n, with s = W_s h_s[n] / T
and t = W_t h_t[n] / T the student's and the frozen teacher's tempered logits:

    loss = sum_n w_n D_n(softmax(s), softmax(t); beta)
    dL/ds = w_n (p_S - p_T)                 beta = 0
          = w_n p_S (g - c_n)               otherwise, c_n = sum_v p_S g (g: the twin's)

and dL/dh_s = dL/ds W_s / T, dL/dW_s = dL/ds^T h_s / T. Neither model's (N, V) logits exist:
each program computes (BLOCK_N, BLOCK_V) tiles of s and t with tl.dot over BLOCK_H slices
(the tile function of kernels/logprob_triton.py, fp32 accumulation) and moves on.

Four kernels, each one pass over the vocabulary (the logits are recomputed in each, the
price of never storing them):

    _lse_kernel     grid (N / BLOCK_N,). Online logsumexp of s and of t per row.
    _div_kernel     same grid. With both logsumexps known: D_n, and c_n for beta > 0.
    _grad_dh_kernel same grid. dz = dL/ds tile by tile, dh += dz @ W_s_tile / T into an fp32
                    (N, d_s) buffer; each program owns its rows: no atomics.
    _grad_dw_kernel grid (V / BLOCK_V,). Each program owns BLOCK_V rows of dW_s and visits the
                    token blocks in a fixed order: deterministic, no atomics, fp32 accumulator.

As in the twin, the gradients are computed in the forward call (when the student needs
them) and backward only scales them by the upstream gradient; the teacher gets none.

The divergence mode is a constexpr (MODE 0: forward KL, 1: reverse KL, 2: JSD at BETA), so
each compiled kernel holds only its own formula. Masked vocabulary columns get logit -inf,
probability 0 and contribute nothing; 0 log 0 is 0, as in the twin.

The tile sizes on CUDA are a first guess, not tuned or timed on a GPU (none was available
when this was written): benchmarks/gpu_report.py runs benchmarks/distill_loss.py there.
Under TRITON_INTERPRET=1 (the CPU tests) tiles are upcast to fp32 before tl.dot, as in
kernels/logprob_triton.py.

Tests: python -m pytest -q tests/test_distill_kernel.py
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.logprob_triton import INTERPRETED, _logits_tile

MODES = {"forward": 0, "reverse": 1, "jsd": 2}


def mode_of(beta: float) -> int:
    """The kernel's MODE for a beta: 0 at beta = 0, 1 at beta = 1, 2 (JSD) between."""
    return 0 if beta == 0.0 else 1 if beta == 1.0 else 2


# ------------------------------------------------------------------------------------ kernels


@triton.jit
def _pair_tiles(
    hs_ptr, ws_ptr, ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Ds, Dt,
    s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr, DOT_S: tl.constexpr, DOT_T: tl.constexpr,
):  # fmt: skip
    """The (BLOCK_N, BLOCK_V) fp32 tiles of s and t; -inf on masked columns."""
    s = _logits_tile(
        hs_ptr, ws_ptr, rows, row_mask, cols, col_mask, Ds,
        s_hs_n, s_hs_h, s_ws_v, s_ws_h, inv_temp, BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_S,
    )  # fmt: skip
    t = _logits_tile(
        ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Dt,
        s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp, BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_T,
    )  # fmt: skip
    valid = col_mask[None, :]
    return tl.where(valid, s, float("-inf")), tl.where(valid, t, float("-inf"))


@triton.jit
def _log_probs(s, t, lse_s, lse_t, valid):
    """log p_S, log p_T, p_S, p_T of a tile (log-probabilities 0 where masked)."""
    log_s = tl.where(valid, s - lse_s[:, None], 0.0)
    log_t = tl.where(valid, t - lse_t[:, None], 0.0)
    p_s = tl.where(valid, tl.exp(log_s), 0.0)
    p_t = tl.where(valid, tl.exp(log_t), 0.0)
    return log_s, log_t, p_s, p_t


@triton.jit
def _log_mixture(log_s, log_t, log_beta, log_1mb):
    """log M = log(beta p_T + (1 - beta) p_S), a stable logaddexp."""
    a = log_t + log_beta
    b = log_s + log_1mb
    hi = tl.maximum(a, b)
    return hi + tl.log(tl.exp(a - hi) + tl.exp(b - hi))


@triton.jit
def _xlogy_diff(p, log_p, log_q):
    """p (log p - log q), 0 where p = 0."""
    return tl.where(p > 0.0, p * (log_p - log_q), 0.0)


@triton.jit
def _lse_kernel(
    hs_ptr, ws_ptr, ht_ptr, wt_ptr, lse_ptr,  # lse_ptr: out, fp32 (2, N): lse_s, lse_t
    N, V, Ds, Dt,
    s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr, DOT_S: tl.constexpr, DOT_T: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    # -1e30, not -inf, as the running max: exp(-inf - (-1e30)) is 0, never nan.
    m_s = tl.full([BLOCK_N], -1.0e30, dtype=tl.float32)
    m_t = tl.full([BLOCK_N], -1.0e30, dtype=tl.float32)
    l_s = tl.zeros([BLOCK_N], dtype=tl.float32)
    l_t = tl.zeros([BLOCK_N], dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < V
        s, t = _pair_tiles(
            hs_ptr, ws_ptr, ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Ds, Dt,
            s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_S, DOT_T,
        )  # fmt: skip
        new_s = tl.maximum(m_s, tl.max(s, axis=1))
        l_s = l_s * tl.exp(m_s - new_s) + tl.sum(tl.exp(s - new_s[:, None]), axis=1)
        m_s = new_s
        new_t = tl.maximum(m_t, tl.max(t, axis=1))
        l_t = l_t * tl.exp(m_t - new_t) + tl.sum(tl.exp(t - new_t[:, None]), axis=1)
        m_t = new_t
    tl.store(lse_ptr + rows, m_s + tl.log(l_s), mask=row_mask)
    tl.store(lse_ptr + N + rows, m_t + tl.log(l_t), mask=row_mask)


@triton.jit
def _div_kernel(
    hs_ptr, ws_ptr, ht_ptr, wt_ptr, lse_ptr,
    out_ptr,  # out, fp32 (2, N): D_n, c_n
    N, V, Ds, Dt,
    s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
    beta, log_beta, log_1mb,
    MODE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr, DOT_S: tl.constexpr, DOT_T: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    lse_s = tl.load(lse_ptr + rows, mask=row_mask, other=0.0)
    lse_t = tl.load(lse_ptr + N + rows, mask=row_mask, other=0.0)
    d = tl.zeros([BLOCK_N], dtype=tl.float32)
    c = tl.zeros([BLOCK_N], dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < V
        s, t = _pair_tiles(
            hs_ptr, ws_ptr, ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Ds, Dt,
            s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_S, DOT_T,
        )  # fmt: skip
        log_s, log_t, p_s, p_t = _log_probs(s, t, lse_s, lse_t, col_mask[None, :])
        if MODE == 0:
            d += tl.sum(_xlogy_diff(p_t, log_t, log_s), axis=1)
        elif MODE == 1:
            d += tl.sum(_xlogy_diff(p_s, log_s, log_t), axis=1)
        else:
            log_m = _log_mixture(log_s, log_t, log_beta, log_1mb)
            kl_sm = tl.sum(_xlogy_diff(p_s, log_s, log_m), axis=1)
            d += beta * tl.sum(_xlogy_diff(p_t, log_t, log_m), axis=1) + (1.0 - beta) * kl_sm
            c += (1.0 - beta) * kl_sm
    if MODE == 1:
        c = d  # sum_v p_S (log p_S - log p_T) is the reverse KL itself
    tl.store(out_ptr + rows, d, mask=row_mask)
    tl.store(out_ptr + N + rows, c, mask=row_mask)


@triton.jit
def _grad_tile(s, t, col_mask, lse_s, lse_t, c, scale, log_beta, log_1mb, beta,
               MODE: tl.constexpr):  # fmt: skip
    """dL/d(raw student logits) for a tile: scale_n = w_n / T times dD/ds (zero where masked)."""
    log_s, log_t, p_s, p_t = _log_probs(s, t, lse_s, lse_t, col_mask[None, :])
    if MODE == 0:
        g = p_s - p_t
    else:
        if MODE == 1:
            gl = log_s - log_t
        else:
            gl = (1.0 - beta) * (log_s - _log_mixture(log_s, log_t, log_beta, log_1mb))
        gl = tl.where(p_s > 0.0, gl, 0.0)  # a token the student never emits: no gradient
        g = p_s * (gl - c[:, None])
    return g * scale[:, None]


@triton.jit
def _load_rows(row_ptr, rows, row_mask, N):
    """Per-row backward inputs from the fp32 (4, N) buffer: lse_s, lse_t, c, w / T."""
    lse_s = tl.load(row_ptr + rows, mask=row_mask, other=0.0)
    lse_t = tl.load(row_ptr + N + rows, mask=row_mask, other=0.0)
    c = tl.load(row_ptr + 2 * N + rows, mask=row_mask, other=0.0)
    scale = tl.load(row_ptr + 3 * N + rows, mask=row_mask, other=0.0)  # padded rows: 0
    return lse_s, lse_t, c, scale


@triton.jit
def _grad_dh_kernel(
    hs_ptr, ws_ptr, ht_ptr, wt_ptr, row_ptr,
    dh_ptr,  # out: fp32 (N, Ds), zero-initialised
    N, V, Ds, Dt,
    s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
    beta, log_beta, log_1mb,
    MODE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr, DOT_S: tl.constexpr, DOT_T: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    lse_s, lse_t, c, scale = _load_rows(row_ptr, rows, row_mask, N)
    offs_h = tl.arange(0, BLOCK_H)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < V
        s, t = _pair_tiles(
            hs_ptr, ws_ptr, ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Ds, Dt,
            s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_S, DOT_T,
        )  # fmt: skip
        dz = _grad_tile(s, t, col_mask, lse_s, lse_t, c, scale, log_beta, log_1mb, beta, MODE)
        dz = dz.to(ws_ptr.dtype.element_ty)  # the input dtype, for the tensor cores
        if UPCAST:
            dz = dz.to(tl.float32)
        for k0 in range(0, Ds, BLOCK_H):
            ks = k0 + offs_h
            k_mask = ks < Ds
            w = tl.load(ws_ptr + cols[:, None] * s_ws_v + ks[None, :] * s_ws_h,
                        mask=col_mask[:, None] & k_mask[None, :], other=0.0)  # fmt: skip
            if UPCAST:
                w = w.to(tl.float32)
            ptrs = dh_ptr + rows[:, None] * Ds + ks[None, :]
            mask = row_mask[:, None] & k_mask[None, :]
            acc = tl.load(ptrs, mask=mask, other=0.0)
            acc = tl.dot(dz, w, acc, input_precision=DOT_S)
            tl.store(ptrs, acc, mask=mask)


@triton.jit
def _grad_dw_kernel(
    hs_ptr, ws_ptr, ht_ptr, wt_ptr, row_ptr,
    dw_ptr,  # out: fp32 (V, Ds), zero-initialised
    N, V, Ds, Dt,
    s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
    beta, log_beta, log_1mb,
    MODE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr, DOT_S: tl.constexpr, DOT_T: tl.constexpr,
):  # fmt: skip
    cols = tl.program_id(0).to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
    col_mask = cols < V
    offs_h = tl.arange(0, BLOCK_H)
    for n0 in range(0, N, BLOCK_N):  # a fixed order: the fp32 sums are reproducible
        rows = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        row_mask = rows < N
        lse_s, lse_t, c, scale = _load_rows(row_ptr, rows, row_mask, N)
        s, t = _pair_tiles(
            hs_ptr, ws_ptr, ht_ptr, wt_ptr, rows, row_mask, cols, col_mask, Ds, Dt,
            s_hs_n, s_hs_h, s_ws_v, s_ws_h, s_ht_n, s_ht_h, s_wt_v, s_wt_h, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_S, DOT_T,
        )  # fmt: skip
        dz = _grad_tile(s, t, col_mask, lse_s, lse_t, c, scale, log_beta, log_1mb, beta, MODE)
        dz_t = tl.trans(dz.to(hs_ptr.dtype.element_ty))  # (BLOCK_V, BLOCK_N)
        if UPCAST:
            dz_t = dz_t.to(tl.float32)
        for k0 in range(0, Ds, BLOCK_H):
            ks = k0 + offs_h
            k_mask = ks < Ds
            h = tl.load(hs_ptr + rows[:, None] * s_hs_n + ks[None, :] * s_hs_h,
                        mask=row_mask[:, None] & k_mask[None, :], other=0.0)  # fmt: skip
            if UPCAST:
                h = h.to(tl.float32)
            ptrs = dw_ptr + cols[:, None] * Ds + ks[None, :]
            mask = col_mask[:, None] & k_mask[None, :]
            acc = tl.load(ptrs, mask=mask, other=0.0)
            acc = tl.dot(dz_t, h, acc, input_precision=DOT_S)
            tl.store(ptrs, acc, mask=mask)


# ---------------------------------------------------------------------------------- launchers


@dataclass(frozen=True)
class DistillLaunch:
    """Tile sizes of one call; the same tiles serve the four kernels."""

    block_n: int
    block_v: int
    block_h: int
    num_warps: int
    num_stages: int


# (BLOCK_N, BLOCK_V, BLOCK_H, num_warps, num_stages) on CUDA by the student's dtype: a first
# guess (two logit tiles live at once, so smaller than the log-prob kernel's), not tuned.
GPU_TILES = {
    torch.float16: (32, 128, 32, 8, 2),
    torch.bfloat16: (32, 128, 32, 8, 2),
    torch.float32: (32, 64, 32, 4, 2),
}


def pick_launch(vocab: int, dtype: torch.dtype) -> DistillLaunch:
    """The tiles: the table above on CUDA; under the interpreter, about 16 vocab tiles."""
    if INTERPRETED:
        return DistillLaunch(16, min(4096, max(64, triton.next_power_of_2(vocab // 16))), 32, 1, 1)
    return DistillLaunch(*GPU_TILES[dtype])


def _dot_precision(dtype: torch.dtype) -> str:
    # tl.dot on fp32 operands defaults to TF32; fp32 callers expect fp32.
    return "ieee" if dtype == torch.float32 else "tf32"


def _launch_args(h_s, w_s, h_t, w_t, temperature):
    """The arguments the four kernels share, in order, after their own pointers."""
    return (h_s.shape[0], w_s.shape[0], h_s.shape[1], h_t.shape[1],
            h_s.stride(0), h_s.stride(1), w_s.stride(0), w_s.stride(1),
            h_t.stride(0), h_t.stride(1), w_t.stride(0), w_t.stride(1),
            1.0 / temperature)  # fmt: skip


def triton_divergence(
    h_s: Tensor, w_s: Tensor, h_t: Tensor, w_t: Tensor, weights: Tensor,
    beta: float, temperature: float, need_h: bool, need_w: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:  # fmt: skip
    """(loss, dL/dh_s, dL/dW_s): fp32 scalar and fp32 gradients (None where not needed)."""
    n_rows, vocab = h_s.shape[0], w_s.shape[0]
    cfg = pick_launch(vocab, h_s.dtype)
    mode = mode_of(beta)
    log_beta = math.log(beta) if 0.0 < beta < 1.0 else 0.0
    log_1mb = math.log(1.0 - beta) if 0.0 < beta < 1.0 else 0.0
    shared = _launch_args(h_s, w_s, h_t, w_t, temperature)
    tiles = dict(BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_H=cfg.block_h,
                 UPCAST=INTERPRETED, DOT_S=_dot_precision(h_s.dtype),
                 DOT_T=_dot_precision(h_t.dtype), num_warps=cfg.num_warps,
                 num_stages=cfg.num_stages)  # fmt: skip
    div = (beta, log_beta, log_1mb)
    dev = h_s.device
    row_grid = (triton.cdiv(n_rows, cfg.block_n),)
    lse = torch.empty(2, n_rows, dtype=torch.float32, device=dev)
    _lse_kernel[row_grid](h_s, w_s, h_t, w_t, lse, *shared, **tiles)
    dc = torch.empty(2, n_rows, dtype=torch.float32, device=dev)
    _div_kernel[row_grid](h_s, w_s, h_t, w_t, lse, dc, *shared, *div, MODE=mode, **tiles)
    w32 = weights.float()
    loss = (w32 * dc[0]).sum()
    dh = dw = None
    if need_h or need_w:
        rows = torch.stack([lse[0], lse[1], dc[1], w32 / temperature]).contiguous()  # (4, N)
        if need_h:
            dh = torch.zeros(n_rows, h_s.shape[1], dtype=torch.float32, device=dev)
            _grad_dh_kernel[row_grid](h_s, w_s, h_t, w_t, rows, dh, *shared, *div, MODE=mode,
                                      **tiles)  # fmt: skip
        if need_w:
            dw = torch.zeros(vocab, w_s.shape[1], dtype=torch.float32, device=dev)
            _grad_dw_kernel[(triton.cdiv(vocab, cfg.block_v),)](
                h_s, w_s, h_t, w_t, rows, dw, *shared, *div, MODE=mode, **tiles)  # fmt: skip
    return loss, dh, dw


class _TritonFusedLinearDivergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h_s, w_s, h_t, w_t, weights, beta, temperature):
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if h_s.shape[0] == 0:  # an empty grid is not launchable
            loss = torch.zeros((), dtype=torch.float32, device=h_s.device)
            dh = torch.zeros(h_s.shape, dtype=torch.float32, device=h_s.device) if need_h else None
            dw = torch.zeros(w_s.shape, dtype=torch.float32, device=w_s.device) if need_w else None
        else:
            with torch.cuda.device(h_s.device) if h_s.is_cuda else nullcontext():
                loss, dh, dw = triton_divergence(h_s, w_s, h_t, w_t, weights, beta,
                                                 temperature, need_h, need_w)  # fmt: skip
        ctx.save_for_backward(dh if dh is not None else torch.empty(0),
                              dw if dw is not None else torch.empty(0))  # fmt: skip
        ctx.dtypes = (h_s.dtype, w_s.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        dh, dw = ctx.saved_tensors
        gh = (dh * grad_out).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        gw = (dw * grad_out).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return gh, gw, None, None, None, None, None


def triton_fused_linear_divergence(h_s: Tensor, w_s: Tensor, h_t: Tensor, w_t: Tensor,
                                   weights: Tensor, beta: float = 0.0,
                                   temperature: float = 1.0) -> Tensor:  # fmt: skip
    """The fused loss on the Triton kernels; inputs as kernels.distill.fused_linear_divergence,
    assumed validated there (fp16 / bf16 / fp32; CUDA, or CPU under TRITON_INTERPRET=1)."""
    for x in (h_s, h_t):
        if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"the Triton backend supports fp16, bf16 and fp32, not {x.dtype}")
    if h_s.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"backend='triton' got {h_s.device.type} tensors, but the kernels were compiled "
            "for CUDA: set TRITON_INTERPRET=1 before kernels.distill_triton is first imported "
            "to run them on CPU, or use backend='torch'"
        )
    return _TritonFusedLinearDivergence.apply(
        h_s, w_s, h_t.detach(), w_t.detach(), weights.detach(), float(beta), float(temperature)
    )
