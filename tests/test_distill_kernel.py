"""The Triton distillation kernel (kernels/distill_triton.py) against fp64 and its PyTorch twin.

On CPU the kernels run under TRITON_INTERPRET=1 (set below, before the kernels are first
imported); on a CUDA machine the compiled kernels are tested. Shapes are small and irregular
(V not a multiple of the vocabulary tile, N not of the row tile, padding rows of weight 0).

Tolerances, relative to the fp64 reference (the loss; each gradient against its largest entry):
    fp32   2e-5, 2e-5   the logits are fp32 dot products (no TF32), the sums fp32
    bf16   1e-4, 2e-2   the inputs are rounded before either side sees them, the logits and the
                        divergence are fp32, and dL/ds is rounded to bf16 before the gradient
                        dot products (as for the tensor cores); the gradients are returned in bf16

Run: python -m pytest -q tests/test_distill_kernel.py
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from grpo.experiments.distill_loss import divergence  # noqa: E402
from kernels import fused_linear_divergence  # noqa: E402
from kernels.distill import distill_self_check, resolve_backend  # noqa: E402
from kernels.distill_torch import torch_fused_linear_divergence  # noqa: E402

HAS_TRITON = importlib.util.find_spec("triton") is not None
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")

TOL = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (1e-4, 2e-2)}


def _inputs(N, V, d_s, d_t, dtype, t_dtype=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(N, d_s, generator=g).to(DEVICE, dtype)
    w_s = (torch.randn(V, d_s, generator=g) / d_s**0.5).to(DEVICE, dtype)
    h_t = torch.randn(N, d_t, generator=g).to(DEVICE, t_dtype or dtype)
    w_t = (torch.randn(V, d_t, generator=g) * 2 / d_t**0.5).to(DEVICE, t_dtype or dtype)
    weights = torch.rand(N, generator=g)
    weights[::4] = 0.0  # padding rows
    return h_s, w_s, h_t, w_t, (weights / max(float(weights.sum()), 1e-9)).to(DEVICE)


def _fp64(h_s, w_s, h_t, w_t, weights, beta, temp):
    """The reference: both (N, V) logit matrices in fp64, the divergence, autograd."""
    h = h_s.double().detach().requires_grad_(True)
    w = w_s.double().detach().requires_grad_(True)
    t = h_t.double() @ w_t.double().T
    loss = (weights.double() * divergence(h @ w.T, t, beta, temp)).sum()
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _triton(h_s, w_s, h_t, w_t, weights, beta, temp, upstream=1.0):
    hs, ws = h_s.clone().requires_grad_(True), w_s.clone().requires_grad_(True)
    loss = fused_linear_divergence(hs, ws, h_t, w_t, weights, beta, temp, backend="triton")
    (upstream * loss).backward()
    return loss.detach(), hs.grad, ws.grad


def _close(got, ref, rtol):
    err = (got.double() - ref).abs().max().item()
    return err <= rtol * ref.abs().max().item() + 1e-12, err


CASES = [(0.0, 1.0), (1.0, 1.0), (0.5, 1.0), (0.1, 0.7), (0.9, 2.0), (0.0, 0.5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("beta, temp", CASES)
@pytest.mark.parametrize("N, V, d_s, d_t", [(37, 53, 12, 20), (5, 301, 40, 24)])
def test_triton_matches_fp64(dtype, beta, temp, N, V, d_s, d_t):
    args = _inputs(N, V, d_s, d_t, dtype)
    ref_loss, ref_h, ref_w = _fp64(*args, beta, temp)
    loss, gh, gw = _triton(*args, beta, temp, upstream=2.0)
    rtol_loss, rtol_grad = TOL[dtype]
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref_loss.item(), rel=rtol_loss, abs=1e-9)
    assert gh.dtype == dtype and gw.dtype == dtype
    for got, ref in ((gh, 2.0 * ref_h), (gw, 2.0 * ref_w)):
        ok, err = _close(got, ref, rtol_grad)
        assert ok, (dtype, beta, temp, err)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_triton_matches_the_twin(beta):
    """Kernel and twin agree (fp32), a vocabulary spanning many tiles and rows many blocks."""
    args = _inputs(70, 1000, 33, 17, torch.float32, seed=3)
    loss, gh, gw = _triton(*args, beta, 1.1)
    hs, ws = args[0].clone().requires_grad_(True), args[1].clone().requires_grad_(True)
    ref = torch_fused_linear_divergence(hs, ws, *args[2:], beta, 1.1)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=2e-5)
    for got, want in ((gh, hs.grad), (gw, ws.grad)):
        assert _close(got, want.double(), 2e-5)[0]


def test_triton_mixed_dtypes_and_teacher_without_gradient():
    """A bf16 teacher with an fp32 student; the teacher's tensors get no gradient."""
    h_s, w_s, h_t, w_t, weights = _inputs(21, 77, 16, 8, torch.float32, t_dtype=torch.bfloat16)
    w_t.requires_grad_(True)
    ref_loss, ref_h, ref_w = _fp64(h_s, w_s, h_t, w_t.detach(), weights, 0.5, 1.0)
    loss, gh, gw = _triton(h_s, w_s, h_t, w_t, weights, 0.5, 1.0)
    assert w_t.grad is None
    assert loss.item() == pytest.approx(ref_loss.item(), rel=2e-5)
    assert _close(gh, ref_h, 2e-5)[0] and _close(gw, ref_w, 2e-5)[0]


def test_triton_is_deterministic_and_handles_no_rows():
    args = _inputs(19, 130, 8, 8, torch.float32, seed=5)
    a, b = _triton(*args, 0.5, 1.0), _triton(*args, 0.5, 1.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    empty = _inputs(0, 130, 8, 8, torch.float32)
    loss, gh, gw = _triton(*empty, 0.0, 1.0)
    assert loss.item() == 0.0 and gh.shape == (0, 8) and not gw.any()


def test_identical_models_give_zero_loss_and_zero_gradient():
    h_s, w_s, _, _, weights = _inputs(9, 40, 8, 8, torch.float32, seed=1)
    for beta in (0.0, 0.5, 1.0):
        loss, gh, gw = _triton(h_s, w_s, h_s, w_s, weights, beta, 1.0)
        assert abs(loss.item()) < 1e-6 and gh.abs().max() < 1e-6 and gw.abs().max() < 1e-6


def test_dispatch_and_self_check():
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    assert resolve_backend("auto", torch.device("cpu")) == "torch"  # CPU: the twin
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda", torch.device("cpu"))
    assert distill_self_check(DEVICE) is None
    broken = lambda *a: 1.01 * torch_fused_linear_divergence(*a)  # noqa: E731
    why = distill_self_check(DEVICE, candidate=broken)
    assert why is not None and "\n" not in why and "loss" in why
    args = _inputs(6, 10, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="one vocabulary"):
        fused_linear_divergence(*args[:3], args[3][:9], args[4], backend="triton")
