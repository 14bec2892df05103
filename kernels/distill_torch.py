"""PyTorch twin of the fused teacher-student distillation loss: the CPU path and the oracle.

Inputs: the student's last hidden states h_s (N, d_s) and LM head W_s (V, d_s), the frozen
teacher's h_t (N, d_t) and W_t (V, d_t), one weight per token row w (N,) (1 / the number
of completion tokens for a token mean, 0 for padding). For every row n, with T the
temperature, s = W_s h_s[n] / T, t = W_t h_t[n] / T, p_S = softmax(s), p_T = softmax(t):

    D_n  = KL(p_T || p_S)                              beta = 0 (forward KL)
         = KL(p_S || p_T)                              beta = 1 (reverse KL)
         = beta KL(p_T || M) + (1 - beta) KL(p_S || M)  otherwise, M = beta p_T + (1-beta) p_S
    loss = sum_n w_n D_n

The definitions are those of grpo/experiments/distill_loss.py (and TRL's GKD). The gradient
with respect to the student's tempered logits, in closed form:

    dD/ds = p_S - p_T                                   beta = 0
          = p_S * (g - sum_v p_S g)                     otherwise, with
            g = log p_S - log p_T                       beta = 1
            g = (1 - beta) (log p_S - log M)            0 < beta < 1

(the derivative of the JSD with respect to p_S is (1 - beta)(log p_S - log M): the terms
that come from M cancel), and then dL/dh_s[n] = w_n (dD/ds) W_s / T and
dL/dW_s = sum_n w_n (dD/ds)^T h_s[n] / T.

The rows are processed `chunk_rows` at a time, so the (N, V) logits of neither model ever
exist: the peak is a few (chunk_rows, V) fp32 blocks, plus dL/dW_s (V, d_s) (and fp32
copies of bf16 heads: the logits are computed in fp32). The gradients
are computed in the forward pass, chunk by chunk, while the chunk's logits exist (as
Liger-Kernel's fused linear losses do), and backward only scales them by the upstream
gradient. The teacher gets no gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_CHUNK_ROWS = 256


def check_settings(beta: float, temperature: float) -> None:
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number, got {temperature}")


def _kl(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) per row from p and both log-probabilities (0 log 0 = 0)."""
    return torch.where(p > 0, p * (log_p - log_q), 0.0).sum(-1)


def divergence_and_grad(s: Tensor, t: Tensor, beta: float,
                        need_grad: bool = True) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """(D (n,), dD/ds (n, V) or None) from tempered logits s, t (n, V), in their dtype."""
    log_s = torch.log_softmax(s, dim=-1)
    log_t = torch.log_softmax(t, dim=-1)
    p_t = log_t.exp()
    grad = None
    if beta == 0.0:  # p_S only for the gradient: one (n, V) tensor less under autograd
        d = _kl(p_t, log_t, log_s)
        if need_grad:
            grad = log_s.exp() - p_t
        return d, grad
    p_s = log_s.exp()
    if beta == 1.0:
        d = _kl(p_s, log_s, log_t)
        g = log_s - log_t
    else:
        log_m = torch.logaddexp(log_t + math.log(beta), log_s + math.log(1.0 - beta))
        d = beta * _kl(p_t, log_t, log_m) + (1.0 - beta) * _kl(p_s, log_s, log_m)
        g = (1.0 - beta) * (log_s - log_m)
    if need_grad:
        g = torch.where(p_s > 0, g, 0.0)  # a token the student never emits: no gradient
        grad = p_s * (g - (p_s * g).sum(-1, keepdim=True))
    return d, grad


class _FusedLinearDivergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h_s, w_s, h_t, w_t, weights, beta, temperature, chunk_rows):
        N = h_s.shape[0]
        acc = torch.promote_types(h_s.dtype, torch.float32)  # fp32, or fp64 for the oracle
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros(h_s.shape, dtype=acc, device=h_s.device) if need_h else None
        grad_w = torch.zeros(w_s.shape, dtype=acc, device=w_s.device) if need_w else None
        loss = torch.zeros((), dtype=acc, device=h_s.device)
        w_all = weights.to(acc)
        # The logits in fp32 (bf16 inputs upcast once), as the Triton kernel accumulates them.
        w_s_acc, w_t_acc = w_s.to(acc), w_t.to(acc)
        for a in range(0, N, chunk_rows):
            b = min(a + chunk_rows, N)
            s = (h_s[a:b].to(acc) @ w_s_acc.T) / temperature
            with torch.no_grad():
                t = (h_t[a:b].to(acc) @ w_t_acc.T) / temperature
            d, g = divergence_and_grad(s, t, beta, need_h or need_w)
            w = w_all[a:b]
            loss += (w * d).sum()
            if g is not None:
                g = g * (w / temperature)[:, None]  # dL/d(raw student logits), (c, V)
                if need_h:
                    grad_h[a:b] = g @ w_s_acc
                if need_w:
                    grad_w += g.T @ h_s[a:b].to(acc)
        ctx.save_for_backward(
            grad_h if grad_h is not None else torch.empty(0),
            grad_w if grad_w is not None else torch.empty(0),
        )
        ctx.dtypes = (h_s.dtype, w_s.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        dh, dw = None, None
        if ctx.needs_input_grad[0]:
            dh = (grad_h * grad_out).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            dw = (grad_w * grad_out).to(ctx.dtypes[1])
        return dh, dw, None, None, None, None, None, None


def check_inputs(h_s: Tensor, w_s: Tensor, h_t: Tensor, w_t: Tensor, weights: Tensor,
                 beta: float, temperature: float) -> None:  # fmt: skip
    """ValueError, in one line, for inputs the fused loss cannot take (either backend)."""
    check_settings(beta, temperature)
    for name, x, dims in (("h_s", h_s, 2), ("w_s", w_s, 2), ("h_t", h_t, 2), ("w_t", w_t, 2),
                          ("weights", weights, 1)):  # fmt: skip
        if not isinstance(x, Tensor) or x.dim() != dims or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a {dims}-D floating-point tensor, got {shape}")
    if w_s.shape[0] != w_t.shape[0]:
        raise ValueError(
            f"the student's LM head scores {w_s.shape[0]} tokens and the teacher's "
            f"{w_t.shape[0]}: token-level distillation needs one vocabulary for both"
        )
    if not (h_s.shape[0] == h_t.shape[0] == weights.shape[0]):
        raise ValueError(f"rows differ: student {h_s.shape[0]}, teacher {h_t.shape[0]}, "
                         f"weights {weights.shape[0]}")  # fmt: skip
    if h_s.shape[1] != w_s.shape[1] or h_t.shape[1] != w_t.shape[1]:
        raise ValueError("hidden states and LM head disagree on the hidden size")
    if h_s.dtype != w_s.dtype or h_t.dtype != w_t.dtype:
        raise ValueError(f"each model's hidden states and head must share a dtype: student "
                         f"{h_s.dtype}/{w_s.dtype}, teacher {h_t.dtype}/{w_t.dtype}")  # fmt: skip
    if len({x.device for x in (h_s, w_s, h_t, w_t, weights)}) != 1:
        raise ValueError("the student's and the teacher's tensors must be on one device")


def torch_fused_linear_divergence(h_s: Tensor, w_s: Tensor, h_t: Tensor, w_t: Tensor,
                                  weights: Tensor, beta: float = 0.0, temperature: float = 1.0,
                                  chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Tensor:  # fmt: skip
    """sum_n weights[n] * D_n (module docstring), without the (N, V) logits of either model.

    h_s (N, d_s), w_s (V, d_s): the student's hidden states and LM head (with gradients);
    h_t (N, d_t), w_t (V, d_t): the teacher's (no gradient); weights (N,).
    """
    check_inputs(h_s, w_s, h_t, w_t, weights, beta, temperature)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return _FusedLinearDivergence.apply(h_s, w_s, h_t.detach(), w_t.detach(), weights.detach(),
                                        float(beta), float(temperature), int(chunk_rows))
