"""Triton kernels: log p(target) and entropy under an LM head, forward and backward, fused.

For every token row n (h = hidden[n], W the (V, H) head, T the temperature, y = targets[n]):

    z = W h / T,   logp_y = z_y - logsumexp(z),   entropy = -sum_j p_j log p_j

The (N, V) logits never exist in memory. Each program computes a (BLOCK_N, BLOCK_V) logits tile
with tl.dot over BLOCK_H slices of H (16-bit operands, fp32 accumulation), folds it into
per-row online-softmax statistics (m, dm1, s) and moves on to the next vocab tile. The
statistics, their merge rule and the backward formula are derived in kernels/logprob_torch.py,
the PyTorch twin these kernels are tested against; the kernels follow it line by line.

Three kernels:

    _fwd_kernel     grid (N / BLOCK_N, SPLIT_V). Program (i, k) scans the k-th vocab range for
                    rows block i and writes partial (m, dm1, s, z_y); the SPLIT_V partials are
                    merged in PyTorch (O(SPLIT_V * N) work). SPLIT_V > 1 when N is small, so a
                    handful of tokens still occupies every SM.
    _bwd_dh_kernel  same grid. Recomputes each tile, forms dz = dL/dz, and accumulates
                    dh += dz @ W_tile into an fp32 (SPLIT_V, N, H) buffer; each program owns its
                    slice, so there are no atomics, and the split slices are summed at the end.
    _bwd_dw_kernel  grid (V / BLOCK_V,). Each program owns BLOCK_V rows of dW and loops over all
                    token blocks in a fixed order: deterministic, no atomics, fp32 accumulator.

Backward therefore recomputes the logits twice (once per gradient kernel): 10 N H V FLOPs in
all instead of the 6 N H V of an unfused forward + backward, the price of determinism and of
never storing logits. Accumulators are fp32 (bf16 accumulation across token blocks is a known
source of instability); gradients are cast to the parameter dtype once, at the end.

Row offsets are int64: V * H and SPLIT_V * N * H can exceed 2^31 elements.

Under TRITON_INTERPRET=1 (CPU tests) the kernels upcast tiles to fp32 before tl.dot, because
the interpreter's tl.dot on bf16 operands returns garbage; dz is still rounded to the input
dtype first, so the interpreter reproduces the GPU numerics up to summation order.

Shapes: N tokens, H hidden size, V vocab size.

Tests: python -m pytest -q tests/test_kernels.py
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

from kernels.logprob_torch import finalize_stats, merge_stats

# ------------------------------------------------------------------------------------ kernels


@triton.jit
def _logits_tile(
    h_ptr,  # hidden (N, H)
    w_ptr,  # weight (V, H)
    rows,  # (BLOCK_N,) int64 token indices
    row_mask,  # (BLOCK_N,) rows < N
    cols,  # (BLOCK_V,) int64 vocab indices
    col_mask,  # (BLOCK_V,) cols < V
    H,
    stride_hn,
    stride_hh,
    stride_wv,
    stride_wh,
    inv_temp,  # 1 / T
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr,  # interpreter only: run tl.dot on fp32 copies
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 inputs (no TF32), ignored for 16-bit
):
    """(BLOCK_N, BLOCK_V) fp32 tile of z = h W^T / T, accumulated over H in BLOCK_H slices."""
    acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
    offs_h = tl.arange(0, BLOCK_H)
    for k0 in range(0, H, BLOCK_H):
        ks = k0 + offs_h
        k_mask = ks < H
        h = tl.load(
            h_ptr + rows[:, None] * stride_hn + ks[None, :] * stride_hh,
            mask=row_mask[:, None] & k_mask[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_H)
        w = tl.load(
            w_ptr + cols[:, None] * stride_wv + ks[None, :] * stride_wh,
            mask=col_mask[:, None] & k_mask[None, :],
            other=0.0,
        )  # (BLOCK_V, BLOCK_H), contiguous along H
        if UPCAST:
            h = h.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=DOT_PRECISION)
    return acc * inv_temp


@triton.jit
def _merge_stats(m_a, dm1_a, s_a, m_b, dm1_b, s_b):
    """Merge two online-softmax states of the same rows (formula in kernels/logprob_torch.py)."""
    a_big = m_a >= m_b
    m_big = tl.where(a_big, m_a, m_b)
    m_small = tl.where(a_big, m_b, m_a)
    dm1_big = tl.where(a_big, dm1_a, dm1_b)
    dm1_small = tl.where(a_big, dm1_b, dm1_a)
    s_big = tl.where(a_big, s_a, s_b)
    s_small = tl.where(a_big, s_b, s_a)
    shift = m_small - m_big
    alpha = tl.exp(shift)
    d_small = 1.0 + dm1_small
    return m_big, dm1_big + alpha * d_small, s_big + alpha * (s_small + shift * d_small)


@triton.jit
def _grad_logits_tile(z, cols, col_mask, y, lse, logp_y, one_minus_p_y, ent, g_lp, g_ent):
    """dL/dz for a (BLOCK_N, BLOCK_V) tile; zero on masked columns and on rows with zero grads."""
    valid = col_mask[None, :]
    is_target = cols[None, :] == y[:, None]
    logp = tl.where(valid, z - lse[:, None], 0.0)  # (BLOCK_N, BLOCK_V)
    # The forward's logp_y keeps a confident row's tiny 1 - p_y, which z_y - lse rounds away.
    logp = tl.where(is_target, logp_y[:, None], logp)
    p = tl.where(valid, tl.exp(logp), 0.0)
    # Target column: (1 - p_y) g_lp with 1 - p_y precomputed as -expm1(logp_y); subtracting
    # p_y from 1 here would cancel when the row is confident.
    d_lp = tl.where(is_target, one_minus_p_y[:, None], -p) * g_lp[:, None]
    d_ent = -p * (logp + ent[:, None]) * g_ent[:, None]
    return d_lp + d_ent


@triton.jit
def _fwd_kernel(
    h_ptr,  # hidden (N, H), fp16 / bf16 / fp32
    w_ptr,  # weight (V, H), same dtype
    y_ptr,  # targets (N,) int64
    m_ptr,  # out: running max, (SPLIT_V, N) fp32
    dm1_ptr,  # out: softmax denominator minus 1, (SPLIT_V, N) fp32
    s_ptr,  # out: sum exp(z - m) (z - m), (SPLIT_V, N) fp32
    zy_ptr,  # out: target logit if it lies in this split, else 0, (SPLIT_V, N) fp32
    N,
    V,
    H,
    stride_hn,
    stride_hh,
    stride_wv,
    stride_wh,
    v_per_split,  # vocab columns per split, a multiple of BLOCK_V
    inv_temp,  # 1 / T
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    y = tl.load(y_ptr + rows, mask=row_mask, other=-1)

    # -1e30 rather than -inf as the initial max: exp(-1e30 - m) is still 0, and the merge's
    # (m_small - m_big) * d_small stays finite instead of becoming -inf * 0 = nan.
    m = tl.full([BLOCK_N], -1.0e30, dtype=tl.float32)
    dm1 = tl.zeros([BLOCK_N], dtype=tl.float32)
    s = tl.zeros([BLOCK_N], dtype=tl.float32)
    zy = tl.zeros([BLOCK_N], dtype=tl.float32)

    v_begin = pid_v * v_per_split
    v_end = tl.minimum(v_begin + v_per_split, V)
    for v0 in range(v_begin, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < V
        z = _logits_tile(
            h_ptr, w_ptr, rows, row_mask, cols, col_mask, H,
            stride_hn, stride_hh, stride_wv, stride_wh, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        valid = col_mask[None, :]
        # Masked columns are -inf for the max and excluded from every sum below.
        m_t = tl.max(tl.where(valid, z, float("-inf")), axis=1)  # (BLOCK_N,)
        zc = tl.where(valid, z - m_t[:, None], 0.0)
        e = tl.where(valid, tl.exp(zc), 0.0)
        is_max = valid & (zc == 0.0)
        n_max = tl.sum(is_max.to(tl.float32), axis=1)
        # (count - 1) first, then the small mass: see "d - 1" in kernels/logprob_torch.py.
        dm1_t = tl.sum(tl.where(is_max, 0.0, e), axis=1) + (n_max - 1.0)
        s_t = tl.sum(e * zc, axis=1)
        m, dm1, s = _merge_stats(m, dm1, s, m_t, dm1_t, s_t)
        zy += tl.sum(tl.where(cols[None, :] == y[:, None], z, 0.0), axis=1)

    out = pid_v.to(tl.int64) * N + rows
    tl.store(m_ptr + out, m, mask=row_mask)
    tl.store(dm1_ptr + out, dm1, mask=row_mask)
    tl.store(s_ptr + out, s, mask=row_mask)
    tl.store(zy_ptr + out, zy, mask=row_mask)


@triton.jit
def _load_row_vectors(y_ptr, row_ptr, rows, row_mask, N):
    """Per-row inputs of the backward: target, lse, logp_y, 1 - p_y, entropy, g_lp, g_ent.

    row_ptr is an fp32 (6, N) array of [lse, logp_y, 1 - p_y, entropy, g_lp, g_ent]; padded
    rows read zeros, so their dz is exactly zero.
    """
    y = tl.load(y_ptr + rows, mask=row_mask, other=-1)
    lse = tl.load(row_ptr + rows, mask=row_mask, other=0.0)
    logp_y = tl.load(row_ptr + N + rows, mask=row_mask, other=0.0)
    omp = tl.load(row_ptr + 2 * N + rows, mask=row_mask, other=0.0)
    ent = tl.load(row_ptr + 3 * N + rows, mask=row_mask, other=0.0)
    g_lp = tl.load(row_ptr + 4 * N + rows, mask=row_mask, other=0.0)
    g_ent = tl.load(row_ptr + 5 * N + rows, mask=row_mask, other=0.0)
    return y, lse, logp_y, omp, ent, g_lp, g_ent


@triton.jit
def _bwd_dh_kernel(
    h_ptr,  # hidden (N, H)
    w_ptr,  # weight (V, H)
    y_ptr,  # targets (N,) int64
    row_ptr,  # per-row fp32 (6, N): lse, logp_y, 1 - p_y, entropy, g_lp, g_ent
    dh_ptr,  # out: fp32 (SPLIT_V, N, H), zero-initialised; slice k holds vocab range k's part
    N,
    V,
    H,
    stride_hn,
    stride_hh,
    stride_wv,
    stride_wh,
    v_per_split,
    inv_temp,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    y, lse, logp_y, omp, ent, g_lp, g_ent = _load_row_vectors(y_ptr, row_ptr, rows, row_mask, N)
    dh_base = dh_ptr + pid_v.to(tl.int64) * N * H
    offs_h = tl.arange(0, BLOCK_H)

    v_begin = pid_v * v_per_split
    v_end = tl.minimum(v_begin + v_per_split, V)
    for v0 in range(v_begin, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V).to(tl.int64)
        col_mask = cols < V
        z = _logits_tile(
            h_ptr, w_ptr, rows, row_mask, cols, col_mask, H,
            stride_hn, stride_hh, stride_wv, stride_wh, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        dz = _grad_logits_tile(z, cols, col_mask, y, lse, logp_y, omp, ent, g_lp, g_ent)
        # Chain rule through z = W h / T, then round to the input dtype for the tensor cores.
        dz = (dz * inv_temp).to(w_ptr.dtype.element_ty)
        if UPCAST:
            dz = dz.to(tl.float32)
        for k0 in range(0, H, BLOCK_H):
            ks = k0 + offs_h
            k_mask = ks < H
            w = tl.load(
                w_ptr + cols[:, None] * stride_wv + ks[None, :] * stride_wh,
                mask=col_mask[:, None] & k_mask[None, :],
                other=0.0,
            )  # (BLOCK_V, BLOCK_H)
            if UPCAST:
                w = w.to(tl.float32)
            dh_ptrs = dh_base + rows[:, None] * H + ks[None, :]
            dh_mask = row_mask[:, None] & k_mask[None, :]
            acc = tl.load(dh_ptrs, mask=dh_mask, other=0.0)  # (BLOCK_N, BLOCK_H) fp32
            acc = tl.dot(dz, w, acc, input_precision=DOT_PRECISION)
            tl.store(dh_ptrs, acc, mask=dh_mask)


@triton.jit
def _bwd_dw_kernel(
    h_ptr,  # hidden (N, H)
    w_ptr,  # weight (V, H)
    y_ptr,  # targets (N,) int64
    row_ptr,  # per-row fp32 (6, N): lse, logp_y, 1 - p_y, entropy, g_lp, g_ent
    dw_ptr,  # out: fp32 (V, H), zero-initialised
    N,
    V,
    H,
    stride_hn,
    stride_hh,
    stride_wv,
    stride_wh,
    inv_temp,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_H: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_v = tl.program_id(0)
    cols = pid_v.to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
    col_mask = cols < V
    offs_h = tl.arange(0, BLOCK_H)

    # Token blocks are visited in a fixed order by the one program that owns these dW rows, so
    # the fp32 sums are bitwise reproducible (atomics across N-blocks would not be).
    for n0 in range(0, N, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        row_mask = rows < N
        y, lse, logp_y, omp, ent, g_lp, g_ent = _load_row_vectors(y_ptr, row_ptr, rows, row_mask, N)
        z = _logits_tile(
            h_ptr, w_ptr, rows, row_mask, cols, col_mask, H,
            stride_hn, stride_hh, stride_wv, stride_wh, inv_temp,
            BLOCK_N, BLOCK_V, BLOCK_H, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        dz = _grad_logits_tile(z, cols, col_mask, y, lse, logp_y, omp, ent, g_lp, g_ent)
        dz_t = tl.trans((dz * inv_temp).to(h_ptr.dtype.element_ty))  # (BLOCK_V, BLOCK_N)
        if UPCAST:
            dz_t = dz_t.to(tl.float32)
        for k0 in range(0, H, BLOCK_H):
            ks = k0 + offs_h
            k_mask = ks < H
            h = tl.load(
                h_ptr + rows[:, None] * stride_hn + ks[None, :] * stride_hh,
                mask=row_mask[:, None] & k_mask[None, :],
                other=0.0,
            )  # (BLOCK_N, BLOCK_H)
            if UPCAST:
                h = h.to(tl.float32)
            dw_ptrs = dw_ptr + cols[:, None] * H + ks[None, :]
            dw_mask = col_mask[:, None] & k_mask[None, :]
            acc = tl.load(dw_ptrs, mask=dw_mask, other=0.0)  # (BLOCK_V, BLOCK_H) fp32
            acc = tl.dot(dz_t, h, acc, input_precision=DOT_PRECISION)
            tl.store(dw_ptrs, acc, mask=dw_mask)


# ---------------------------------------------------------------------------------- launchers

INTERPRETED = isinstance(_fwd_kernel, InterpretedFunction)
"""True when TRITON_INTERPRET=1 was set before this module was imported: kernels run on CPU."""


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and parallelism for one call; the same tiles serve all three kernels."""

    block_n: int  # token rows per tile
    block_v: int  # vocab columns per tile
    block_h: int  # slice of H per tl.dot
    split_v: int  # vocab ranges scanned in parallel per token block (forward and dh)
    num_warps: int
    num_stages: int


# (BLOCK_N, BLOCK_V, BLOCK_H, num_warps, num_stages) on CUDA, by input dtype; see pick_config.
GPU_TILES = {
    torch.float16: (64, 128, 32, 8, 3),
    torch.bfloat16: (64, 128, 32, 8, 3),
    torch.float32: (32, 64, 32, 4, 2),
}


def pick_config(
    n_rows: int, vocab: int, hidden: int, dtype: torch.dtype, device: torch.device
) -> LaunchConfig:
    """Tile sizes by a small rule table; split_v so that small N still fills the device.

    The GPU tiles were chosen without GPU access, by compiling for sm_90 and reading ptxas
    resource usage, not by timing: 16-bit 64 x 128 x 32 tiles at 8 warps are the largest that
    compile without register spills in all three kernels (BLOCK_H = 64 spills in backward:
    the int64 pointer tiles cost two registers per element). fp32 inputs (plain FMA, no tensor
    cores) use 32 x 64 x 32 at 4 warps. At 255 registers per thread only one 8-warp program
    fits on an SM, so split_v aims at one program per SM: more would only grow the
    (SPLIT_V, N, H) fp32 dh buffer. Under the interpreter tiles are small and about 16 vocab
    tiles cover V whatever its size, because the interpreter pays per tile, not per element.
    """
    if INTERPRETED:
        block_n, block_h = 16, 32
        block_v = min(4096, max(64, triton.next_power_of_2(vocab // 16)))
        num_warps, num_stages = 1, 1
        # Pretend a 4-SM device so that the split-V path runs in small CPU tests.
        parallel_target = 4
    else:
        block_n, block_v, block_h, num_warps, num_stages = GPU_TILES[dtype]
        parallel_target = torch.cuda.get_device_properties(device).multi_processor_count
    n_blocks = triton.cdiv(max(n_rows, 1), block_n)
    v_tiles = triton.cdiv(vocab, block_v)
    split_v = 1
    if n_blocks < parallel_target:
        split_v = min(v_tiles, triton.cdiv(parallel_target, n_blocks))
    return LaunchConfig(block_n, block_v, block_h, split_v, num_warps, num_stages)


def _kernel_constants(dtype: torch.dtype) -> dict:
    """The constexpr arguments shared by the three kernels."""
    return {
        "UPCAST": INTERPRETED,
        # tl.dot on fp32 operands defaults to TF32 (10-bit mantissa); fp32 callers expect fp32.
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
    }


def _split_ranges(vocab: int, cfg: LaunchConfig) -> tuple[int, int]:
    """(v_per_split, n_splits): whole vocab tiles per split, and no empty split."""
    v_tiles = triton.cdiv(vocab, cfg.block_v)
    tiles_per_split = triton.cdiv(v_tiles, cfg.split_v)
    return tiles_per_split * cfg.block_v, triton.cdiv(v_tiles, tiles_per_split)


def forward_launch(
    hidden: Tensor, weight: Tensor, targets: Tensor, inv_temp: float, cfg: LaunchConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Run _fwd_kernel and merge its split partials -> (lse, logp, entropy), each (N,) fp32."""
    n_rows, hid = hidden.shape
    vocab = weight.shape[0]
    v_per_split, n_splits = _split_ranges(vocab, cfg)
    m, dm1, s, zy = torch.empty(4, n_splits, n_rows, dtype=torch.float32, device=hidden.device)
    grid = (triton.cdiv(n_rows, cfg.block_n), n_splits)
    _fwd_kernel[grid](
        hidden, weight, targets, m, dm1, s, zy,
        n_rows, vocab, hid,
        hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1),
        v_per_split, inv_temp,
        BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_H=cfg.block_h,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        **_kernel_constants(hidden.dtype),
    )  # fmt: skip
    stats = (m[0], dm1[0], s[0])
    for k in range(1, n_splits):
        stats = merge_stats(stats, (m[k], dm1[k], s[k]))
    # Only the split that holds the target wrote a non-zero z_y, so the sum is that value.
    return finalize_stats(stats, zy.sum(dim=0))


def backward_launch(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    row_vectors: Tensor,
    inv_temp: float,
    cfg: LaunchConfig,
    need_dh: bool,
    need_dw: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """Run the gradient kernels; row_vectors is the fp32 (6, N) input of _load_row_vectors."""
    n_rows, hid = hidden.shape
    vocab = weight.shape[0]
    common = dict(
        BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_H=cfg.block_h,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        **_kernel_constants(hidden.dtype),
    )  # fmt: skip
    strides = (hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1))
    dh = dw = None
    if need_dh:
        v_per_split, n_splits = _split_ranges(vocab, cfg)
        dh_parts = torch.zeros(n_splits, n_rows, hid, dtype=torch.float32, device=hidden.device)
        grid = (triton.cdiv(n_rows, cfg.block_n), n_splits)
        _bwd_dh_kernel[grid](
            hidden, weight, targets, row_vectors, dh_parts,
            n_rows, vocab, hid, *strides, v_per_split, inv_temp, **common,
        )  # fmt: skip
        dh = dh_parts.sum(dim=0).to(hidden.dtype)  # (N, H)
    if need_dw:
        dw32 = torch.zeros(vocab, hid, dtype=torch.float32, device=weight.device)
        grid = (triton.cdiv(vocab, cfg.block_v),)
        _bwd_dw_kernel[grid](
            hidden, weight, targets, row_vectors, dw32,
            n_rows, vocab, hid, *strides, inv_temp, **common,
        )  # fmt: skip
        dw = dw32.to(weight.dtype)  # (V, H)
    return dh, dw


# ------------------------------------------------------------------------- autograd function


class _TritonLogprobEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, split_v):
        n_rows, hid = hidden.shape
        cfg = pick_config(n_rows, weight.shape[0], hid, hidden.dtype, hidden.device)
        if split_v is not None:
            cfg = LaunchConfig(**{**cfg.__dict__, "split_v": split_v})
        if n_rows == 0:  # an empty grid is not launchable
            lse, logp, entropy = hidden.new_zeros(3, 0, dtype=torch.float32)
        else:
            # Triton launches on the current CUDA device, which need not be the inputs' device.
            with torch.cuda.device(hidden.device) if hidden.is_cuda else nullcontext():
                lse, logp, entropy = forward_launch(hidden, weight, targets, 1 / temperature, cfg)
        ctx.save_for_backward(hidden, weight, targets, lse, logp, entropy)
        ctx.inv_temp, ctx.cfg = 1.0 / temperature, cfg
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, g_lp, g_ent):
        hidden, weight, targets, lse, logp, entropy = ctx.saved_tensors
        need_dh, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if (g_lp is None and g_ent is None) or not (need_dh or need_dw):
            return None, None, None, None, None
        if hidden.shape[0] == 0:
            dh = torch.zeros_like(hidden) if need_dh else None
            dw = torch.zeros_like(weight) if need_dw else None
            return dh, dw, None, None, None
        zeros = torch.zeros_like(lse)
        row_vectors = torch.stack(
            [
                lse,
                logp,
                -torch.expm1(logp),  # 1 - p_y without cancellation
                entropy,
                g_lp.float() if g_lp is not None else zeros,
                g_ent.float() if g_ent is not None else zeros,
            ]
        ).contiguous()  # (6, N)
        with torch.cuda.device(hidden.device) if hidden.is_cuda else nullcontext():
            dh, dw = backward_launch(
                hidden, weight, targets, row_vectors, ctx.inv_temp, ctx.cfg, need_dh, need_dw
            )
        return dh, dw, None, None, None


# ---------------------------------------------------------------------------- public function


def triton_logprobs_and_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    temperature: float = 1.0,
    *,
    split_v: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused log p(targets) and entropy of softmax(hidden @ weight.T / temperature).

    hidden (N, H) and weight (V, H) in fp16 / bf16 / fp32, targets (N,) int64; returns
    (logp, entropy), both (N,) fp32. split_v overrides the number of parallel vocab ranges
    (tests use it). Inputs are assumed validated (kernels.logprobs_and_entropy does that).
    """
    if hidden.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"the Triton backend supports fp16, bf16 and fp32, not {hidden.dtype}")
    if hidden.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"backend='triton' got {hidden.device.type} tensors, but the kernels were compiled "
            "for CUDA: set TRITON_INTERPRET=1 before kernels.logprob_triton is first imported to "
            "run them on CPU, or use backend='torch'"
        )
    if split_v is not None and split_v < 1:
        raise ValueError(f"split_v must be >= 1, got {split_v}")
    return _TritonLogprobEntropy.apply(hidden, weight, targets, float(temperature), split_v)
