"""Public entry points for token log-probs and entropy under an LM head: checks and dispatch.

    logp, entropy = logprobs_and_entropy(hidden, weight, targets, temperature, backend="auto")

computes, for every row n, log softmax(weight @ hidden[n] / T)[targets[n]] and the entropy of
that softmax, both fp32, without materialising the (N, V) logits, and is differentiable with
respect to hidden and weight through both outputs. Backends:

    "triton"  fused kernels (kernels/logprob_triton.py); CUDA tensors, or CPU tensors when
              TRITON_INTERPRET=1 was set before the kernels were first imported
    "torch"   chunked PyTorch twin (kernels/logprob_torch.py); any device
    "auto"    "triton" for CUDA tensors when Triton is installed and the kernel passes its
              self-check on that device (`triton_self_check`, run once per device at first
              use), "torch" otherwise; a failed check prints one warning line saying why

When the logits already exist (small vocabularies), logprobs_and_entropy_from_logits gives the
same outputs and gradients from them.

Triton is imported only when the Triton backend is first used, so `import kernels` works on
machines without it.

Shapes: N tokens, H hidden size, V vocab size.

Tests: python -m pytest -q tests/test_kernels.py
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable

import torch
from torch import Tensor

from kernels.logprob_torch import torch_logprobs_and_entropy, torch_logprobs_and_entropy_from_logits

BACKENDS = ("auto", "triton", "torch")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_targets(targets: Tensor, n_rows: int, vocab: int) -> None:
    if not isinstance(targets, Tensor) or targets.dim() != 1 or targets.shape[0] != n_rows:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must have shape ({n_rows},), got {shape}")
    if targets.dtype != torch.int64:
        raise ValueError(f"targets must be int64 (torch.long), got {targets.dtype}")
    # One host sync per call; an out-of-range index would otherwise read outside the weight.
    if n_rows > 0:
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"targets must lie in [0, {vocab}), got values in [{lo}, {hi}]")


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a Python number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")


def _check_linear_inputs(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float):
    for name, t in (("hidden", hidden), ("weight", weight)):
        if not isinstance(t, Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 2-D tensor, got {shape}")
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden (N, H) = {tuple(hidden.shape)} and weight (V, H) = {tuple(weight.shape)} "
            "disagree on H"
        )
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden and weight dtypes differ: {hidden.dtype} vs {weight.dtype}")
    if weight.shape[0] == 0:
        raise ValueError("weight has an empty vocabulary (V = 0)")
    if not (hidden.device == weight.device == targets.device):
        raise ValueError(
            f"tensors on different devices: hidden {hidden.device}, weight {weight.device}, "
            f"targets {targets.device}"
        )
    _check_targets(targets, hidden.shape[0], weight.shape[0])
    _check_temperature(temperature)


# The self-check's tolerances: each backend is within (2e-5, 2e-2) of an fp64 reference in
# bf16 (tests/test_kernels.py, TOL), so two backends are within twice that of each other.
SELF_CHECK_ATOL = 4e-5  # log-probs and entropies, absolute
SELF_CHECK_GRAD_RTOL = 4e-2  # gradients, relative to the twin's largest entry
_SELF_CHECKED: dict[str, str | None] = {}  # device -> why the kernel failed (None: it passed)


def triton_self_check(device: torch.device | str, candidate: Callable | None = None) -> str | None:
    """None if the Triton kernel matches the PyTorch twin on `device`, else one line saying why.

    A small random bf16 input with irregular shapes (37 tokens, H 72, V 301, T 0.7), forward
    and backward through both outputs. `candidate` replaces the Triton kernel (tests inject
    failures with it). Any exception (Triton missing, a compile error) counts as a failure.
    """
    try:
        if candidate is None:
            from kernels.logprob_triton import triton_logprobs_and_entropy as candidate
        g = torch.Generator().manual_seed(0)
        h0 = torch.randn(37, 72, generator=g).to(device, torch.bfloat16)
        w0 = (0.2 * torch.randn(301, 72, generator=g)).to(device, torch.bfloat16)
        t = torch.randint(0, 301, (37,), generator=g).to(device)
        results = []
        for fn in (candidate, torch_logprobs_and_entropy):
            h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
            logp, ent = fn(h, w, t, 0.7)
            (logp.sum() + 0.5 * ent.sum()).backward()
            results.append(tuple(x.detach().float() for x in (logp, ent, h.grad, w.grad)))
        (lp, en, gh, gw), (lp0, en0, gh0, gw0) = results
        for what, a, b in (("log-probs", lp, lp0), ("entropies", en, en0)):
            err = float((a - b).abs().max())
            if not err <= SELF_CHECK_ATOL:  # also catches NaN
                return f"its {what} differ from the PyTorch twin's by {err:.3g}"
        for what, a, b in (("hidden", gh, gh0), ("weight", gw, gw0)):
            err, scale = float((a - b).abs().max()), float(b.abs().max())
            if not err <= SELF_CHECK_GRAD_RTOL * scale:
                return f"its {what} gradient differs from the twin's by {err:.3g} (max {scale:.3g})"
        return None
    except Exception as e:  # noqa: BLE001 - any failure means: do not use the kernel
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def _auto_backend(device: torch.device, check: Callable[[torch.device], str | None],
                  checked: dict[str, str | None] | None = None,
                  kernel: str = "log-prob") -> str:  # fmt: skip
    """What "auto" means on `device`: the Triton kernel on CUDA if it passes `check` once
    (`checked` remembers each device's verdict; kernels/distill.py passes its own)."""
    if device.type != "cuda" or importlib.util.find_spec("triton") is None:
        return "torch"
    checked = _SELF_CHECKED if checked is None else checked
    key = str(device)
    if key not in checked:
        checked[key] = check(device)
        if checked[key] is not None:
            print(f"warning: the Triton {kernel} kernel failed its self-check on {key} "
                  f"({checked[key]}); using the PyTorch twin", file=sys.stderr)  # fmt: skip
    return "torch" if checked[key] is not None else "triton"


def _resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend ("triton" or "torch") that `backend` means for tensors on `device`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        return _auto_backend(device, triton_self_check)
    return backend


def logprobs_and_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    temperature: float = 1.0,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """log p(targets) and entropy of softmax(hidden @ weight.T / temperature), fused with the head.

    hidden (N, H) and weight (V, H) of one floating dtype, targets (N,) int64 in [0, V).
    Returns (logp, entropy), both (N,) fp32, differentiable w.r.t. hidden and weight.
    Raises ValueError on malformed input or an unknown backend.
    """
    _check_linear_inputs(hidden, weight, targets, temperature)
    if _resolve_backend(backend, hidden.device) == "torch":
        return torch_logprobs_and_entropy(hidden, weight, targets, temperature)
    if importlib.util.find_spec("triton") is None:
        raise RuntimeError("backend='triton' needs the triton package; use backend='torch'")
    from kernels.logprob_triton import triton_logprobs_and_entropy

    return triton_logprobs_and_entropy(hidden, weight, targets, temperature)


def logprobs_and_entropy_from_logits(
    logits: Tensor, targets: Tensor, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """log p(targets) and entropy of softmax(logits / temperature), computed in fp32.

    logits (N, V) of any floating dtype, targets (N,) int64 in [0, V).
    Returns (logp, entropy), both (N,) fp32, differentiable w.r.t. logits.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a 2-D (N, V) tensor, got {shape}")
    if logits.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if logits.shape[1] == 0:
        raise ValueError("logits have an empty vocabulary (V = 0)")
    if isinstance(targets, Tensor) and targets.device != logits.device:
        raise ValueError(f"targets on {targets.device} but logits on {logits.device}")
    _check_targets(targets, logits.shape[0], logits.shape[1])
    _check_temperature(temperature)
    return torch_logprobs_and_entropy_from_logits(logits, targets, temperature)
