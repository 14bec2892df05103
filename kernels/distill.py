"""The fused teacher-student distillation loss: checks and dispatch to a backend.

    loss = fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta=0.0, temperature=1.0)

is sum_n weights[n] D_n, D_n the divergence between the teacher's and the student's
next-token distributions at row n (forward KL at beta 0, reverse KL at beta 1, the
generalized JSD between: kernels/distill_torch.py has the formulas), computed from the
hidden states and LM heads without the (N, V) logits of either model, and differentiable
with respect to the student's hidden states and head. Backends:

    "triton"  kernels/distill_triton.py; CUDA tensors, or CPU ones under TRITON_INTERPRET=1
    "torch"   kernels/distill_torch.py, rows in chunks; any device; the oracle
    "auto"    "triton" for CUDA tensors when Triton is installed and the kernel passes its
              self-check on that device (once, at first use), "torch" otherwise; a failed
              check prints one warning line saying why

Tests: python -m pytest -q tests/test_distill_kernel.py tests/test_distill_loss.py
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor

from kernels.distill_torch import check_inputs, torch_fused_linear_divergence

BACKENDS = ("auto", "triton", "torch")
# The self-check's tolerances, relative to the twin (bf16 inputs; the loss is computed in fp32
# by both, the gradients are rounded to bf16): tests/test_distill_kernel.py, TOL, doubled.
SELF_CHECK_RTOL = {"loss": 2e-4, "hidden gradient": 4e-2, "head gradient": 4e-2}
_SELF_CHECKED: dict[str, str | None] = {}  # device -> why the kernel failed (None: it passed)


def distill_self_check(device: torch.device | str, candidate: Callable | None = None) -> str | None:
    """None if the Triton kernel matches the twin on `device` (bf16, irregular shapes, JSD at
    beta 0.5, T 0.7: loss and both gradients), else one line saying why."""
    try:
        if candidate is None:
            from kernels.distill_triton import triton_fused_linear_divergence as candidate
        g = torch.Generator().manual_seed(0)
        h_s0 = torch.randn(37, 72, generator=g).to(device, torch.bfloat16)
        w_s0 = (0.2 * torch.randn(301, 72, generator=g)).to(device, torch.bfloat16)
        h_t = torch.randn(37, 40, generator=g).to(device, torch.bfloat16)
        w_t = (0.3 * torch.randn(301, 40, generator=g)).to(device, torch.bfloat16)
        weights = torch.rand(37, generator=g).to(device)
        out = []
        for fn in (candidate, torch_fused_linear_divergence):
            h_s, w_s = h_s0.clone().requires_grad_(), w_s0.clone().requires_grad_()
            loss = fn(h_s, w_s, h_t, w_t, weights, 0.5, 0.7)
            loss.backward()
            out.append((loss.detach().float().reshape(1), h_s.grad.float(), w_s.grad.float()))
        for what, a, b in zip(("loss", "hidden gradient", "head gradient"), *out):
            err, scale = float((a - b).abs().max()), float(b.abs().max())
            if not err <= SELF_CHECK_RTOL[what] * max(scale, 1e-6):  # also catches NaN
                return f"its {what} differs from the PyTorch twin's by {err:.3g} (max {scale:.3g})"
        return None
    except Exception as e:  # noqa: BLE001 - any failure means: do not use the kernel
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ("triton" or "torch") that `backend` means on `device`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from kernels.logprobs import _auto_backend

    return _auto_backend(device, distill_self_check, _SELF_CHECKED, "distillation")


def fused_linear_divergence(h_s: Tensor, w_s: Tensor, h_t: Tensor, w_t: Tensor,
                            weights: Tensor, beta: float = 0.0, temperature: float = 1.0,
                            backend: str = "auto") -> Tensor:  # fmt: skip
    """sum_n weights[n] D_n; h_s (N, d_s), w_s (V, d_s): the student's hidden states and head
    (with gradients); h_t (N, d_t), w_t (V, d_t): the frozen teacher's; weights (N,).
    A scalar in fp32 (fp64 for fp64 inputs on the twin). ValueError on malformed input."""
    check_inputs(h_s, w_s, h_t, w_t, weights, beta, temperature)
    if resolve_backend(backend, h_s.device) == "torch":
        return torch_fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta, temperature)
    if importlib.util.find_spec("triton") is None:
        raise RuntimeError("backend='triton' needs the triton package; use backend='torch'")
    from kernels.distill_triton import triton_fused_linear_divergence

    return triton_fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta, temperature)
