"""Tests for kernels/: fused LM-head log-prob + entropy against a naive fp64 full-logits reference.

Every backend is checked forward and backward (dh and dW through logp alone, entropy alone, and
both with random upstream grads): the chunked PyTorch twin, the Triton kernels (interpreted on
CPU, compiled on CUDA) and the from-logits path. The reference is computed in fp64 from the
*same rounded inputs*, so the tolerances measure the kernels' arithmetic, not input rounding.

Tolerances (values: absolute; gradients: max |error| / max |reference|):

    inputs   logp, entropy   dh, dW    why
    fp32     2e-5            1e-5      fp32 accumulation over H; tl.dot forced to IEEE fp32
    fp16     2e-5            2e-3      products are exact in fp32, so values stay fp32-accurate;
                                       dz is rounded to fp16 for the gradient GEMMs and the
                                       gradients are returned in fp16 (2^-11 = 4.9e-4)
    bf16     2e-5            2e-2      as fp16 with 2^-8 = 3.9e-3 rounding

The Triton kernels upcast their tiles to fp32 under the interpreter (its bf16 tl.dot is broken)
but still round dz to the input dtype, so CPU runs exercise the GPU's rounding too. The GPU-only
test checks that bf16 Triton is no less accurate than the naive bf16 PyTorch path.

Run: python -m pytest -q tests/test_kernels.py      (GPU-only tests skip without CUDA)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# The Triton backend decides interpreter vs compiler when kernels.logprob_triton is first
# imported, so this must precede that import. On a CUDA machine the compiled kernels are tested.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kernels import logprobs_and_entropy, logprobs_and_entropy_from_logits  # noqa: E402
from kernels.logprob_torch import torch_logprobs_and_entropy  # noqa: E402
from kernels.logprobs import _resolve_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
DEVICE = "cuda" if HAS_CUDA else "cpu"

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# (values atol, gradient tolerance relative to the largest reference gradient)
TOL = {
    torch.float32: (2e-5, 1e-5),
    torch.float16: (2e-5, 2e-3),
    torch.bfloat16: (2e-5, 2e-2),
}
BACKENDS = ["torch", pytest.param("triton", marks=needs_triton), "from_logits"]


# ---------------------------------------------------------------------------------- helpers


def make_inputs(n: int, h: int, v: int, dtype=torch.float32, seed: int = 0):
    """hidden (n, h), weight (v, h) as leaves that require grad, targets (n,); logits std ~2."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g)
    weight = torch.randn(v, h, generator=g) * (2.0 / h**0.5)
    targets = torch.randint(0, v, (n,), generator=g)
    hidden = hidden.to(DEVICE, dtype).requires_grad_()
    weight = weight.to(DEVICE, dtype).requires_grad_()
    return hidden, weight, targets.to(DEVICE)


def reference(hidden, weight, targets, temperature):
    """Naive fp64 path over full logits: fp64 leaves and (logp, entropy)."""
    h64 = hidden.detach().double().requires_grad_()
    w64 = weight.detach().double().requires_grad_()
    logp_all = torch.log_softmax(h64 @ w64.T / temperature, dim=-1)  # (N, V)
    logp = logp_all.gather(1, targets[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
    return h64, w64, logp, entropy


def run(backend: str, hidden, weight, targets, temperature=1.0, **kwargs):
    """(logp, entropy) from one backend, differentiable w.r.t. hidden and weight."""
    if backend == "torch":
        # Small chunks so that the tests cross several token and vocab chunk boundaries.
        chunks = {"chunk_n": 16, "chunk_v": 256, **kwargs}
        return torch_logprobs_and_entropy(hidden, weight, targets, temperature, **chunks)
    if backend == "triton":
        from kernels.logprob_triton import triton_logprobs_and_entropy

        return triton_logprobs_and_entropy(hidden, weight, targets, temperature, **kwargs)
    if backend == "from_logits":
        # Logits from upcast operands (exact products), so only the softmax part is under test.
        logits = hidden.float() @ weight.float().T
        return logprobs_and_entropy_from_logits(logits, targets, temperature)
    raise AssertionError(backend)


def assert_values_close(actual, expected, atol, what):
    assert actual.dtype == torch.float32, f"{what}: dtype {actual.dtype}, want float32"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    err = (actual.double() - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:.1g}"


def assert_grad_close(actual, expected, rtol, what):
    """max |actual - expected| <= rtol * max |expected|: a normwise check that is blind to the
    magnitude of the gradient, so it stays meaningful when gradients are tiny (confident rows)."""
    assert actual is not None, f"{what}: no gradient"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    scale = expected.abs().max().item()
    err = (actual.double() - expected).abs().max().item()
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:.1g} * max |ref| {scale:.3g}"


def check_against_reference(
    backend,
    hidden,
    weight,
    targets,
    temperature,
    patterns=("logp", "entropy", "both"),
    tol=None,
    **kwargs,
):
    """Forward values and upstream-gradient patterns (through logp only, entropy only, both
    with random weights), against the fp64 reference. tol overrides TOL[dtype]."""
    atol, grad_rtol = tol or TOL[hidden.dtype]
    logp, entropy = run(backend, hidden, weight, targets, temperature, **kwargs)
    h64, w64, ref_logp, ref_entropy = reference(hidden, weight, targets, temperature)
    assert_values_close(logp, ref_logp, atol, f"{backend} logp")
    assert_values_close(entropy, ref_entropy, atol, f"{backend} entropy")

    g = torch.Generator().manual_seed(1)
    g_lp = torch.randn(len(targets), generator=g, dtype=torch.float64).to(DEVICE)
    g_ent = torch.randn(len(targets), generator=g, dtype=torch.float64).to(DEVICE)
    cases = {
        "logp": ([logp], [ref_logp], [g_lp]),
        "entropy": ([entropy], [ref_entropy], [g_ent]),
        "both": ([logp, entropy], [ref_logp, ref_entropy], [g_lp, g_ent]),
    }
    for name in patterns:
        outs, ref_outs, grads = cases[name]
        got = torch.autograd.grad(
            outs, [hidden, weight], [x.float() for x in grads], retain_graph=True
        )
        want = torch.autograd.grad(ref_outs, [h64, w64], grads, retain_graph=True)
        assert got[0].dtype == hidden.dtype and got[1].dtype == weight.dtype
        assert_grad_close(got[0], want[0], grad_rtol, f"{backend} dh (through {name})")
        assert_grad_close(got[1], want[1], grad_rtol, f"{backend} dW (through {name})")


# ------------------------------------------------------------------- correctness vs fp64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "n, h, v, temperature",
    [
        (37, 96, 1000, 1.0),  # N and V not multiples of any block or chunk
        (37, 96, 4099, 0.7),  # V = 4096 + 3: a last vocab tile with 3 live columns
        (1, 96, 1000, 0.7),
    ],
)
def test_matches_fp64_reference(backend, n, h, v, temperature):
    hidden, weight, targets = make_inputs(n, h, v)
    check_against_reference(backend, hidden, weight, targets, temperature)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(backend, dtype):
    hidden, weight, targets = make_inputs(37, 64, 1000, dtype)
    check_against_reference(backend, hidden, weight, targets, 0.7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_qwen_sized_vocab(backend):
    # V = 151,936 (Qwen2.5) with a few tokens: the shape of a single-sequence rollout step.
    hidden, weight, targets = make_inputs(3, 16, 151_936)
    targets[-1] = 151_935  # the very last column, in the last (partial) tile
    # One backward only: the interpreter pays ~2 s per pass at this vocabulary size.
    check_against_reference(backend, hidden, weight, targets, 1.0, patterns=("both",))


@needs_triton
def test_split_v_partials_merge_to_the_same_result():
    from kernels.logprob_triton import pick_config

    n, h, v = 5, 32, 1000
    cfg = pick_config(n, v, h, torch.float32, torch.device(DEVICE))
    assert cfg.split_v > 1, "small N should split the vocab"
    hidden, weight, targets = make_inputs(n, h, v)
    for split_v in (1, 3, 100):  # 100 > number of vocab tiles: clamped to one tile per split
        check_against_reference("triton", hidden, weight, targets, 0.7, split_v=split_v)


def test_from_logits_accepts_half_logits_and_computes_in_fp32():
    g = torch.Generator().manual_seed(3)
    targets = torch.randint(0, 500, (20,), generator=g).to(DEVICE)
    for dtype, grad_rtol in ((torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
        logits = (3 * torch.randn(20, 500, generator=g)).to(DEVICE, dtype).requires_grad_()
        logp, entropy = logprobs_and_entropy_from_logits(logits, targets, 0.7)
        z64 = logits.detach().double().requires_grad_()
        ref_all = torch.log_softmax(z64 / 0.7, dim=-1)
        ref_logp = ref_all.gather(1, targets[:, None])[:, 0]
        ref_entropy = -(ref_all.exp() * ref_all).sum(-1)
        # fp32 accuracy although the inputs are 16-bit: nothing is computed in the input dtype.
        assert_values_close(logp, ref_logp, 2e-5, f"{dtype} logp")
        assert_values_close(entropy, ref_entropy, 2e-5, f"{dtype} entropy")
        g_lp, g_ent = torch.randn(20, device=DEVICE), torch.randn(20, device=DEVICE)
        (got,) = torch.autograd.grad((logp * g_lp + entropy * g_ent).sum(), logits)
        (want,) = torch.autograd.grad((ref_logp * g_lp + ref_entropy * g_ent).sum(), z64)
        assert got.dtype == dtype
        assert_grad_close(got, want, grad_rtol, f"{dtype} dlogits")


# ------------------------------------------------------------------------- special regimes


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_with_zero_upstream_grad_contribute_nothing(backend):
    hidden, weight, targets = make_inputs(37, 32, 300)
    keep = torch.rand(37, generator=torch.Generator().manual_seed(5)).to(DEVICE) < 0.5
    g_lp = torch.randn(37, device=DEVICE) * keep
    g_ent = torch.randn(37, device=DEVICE) * keep
    logp, entropy = run(backend, hidden, weight, targets)
    dh, dw = torch.autograd.grad((logp * g_lp + entropy * g_ent).sum(), [hidden, weight])
    assert torch.all(dh[~keep] == 0), "masked rows received a non-zero dh"

    # dW must equal the gradient of the kept rows alone.
    sub_h = hidden.detach()[keep].requires_grad_()
    sub_w = weight.detach().clone().requires_grad_()
    logp_k, entropy_k = run(backend, sub_h, sub_w, targets[keep])
    loss_k = (logp_k * g_lp[keep] + entropy_k * g_ent[keep]).sum()
    dh_k, dw_k = torch.autograd.grad(loss_k, [sub_h, sub_w])
    assert_grad_close(dw, dw_k.double(), 1e-5, f"{backend} dW with masked rows")
    assert_grad_close(dh[keep], dh_k.double(), 1e-5, f"{backend} dh of kept rows")


@pytest.mark.parametrize("backend", BACKENDS)
def test_confident_rows_keep_relative_accuracy(backend):
    """p(target) > 0.999: logp ~ -1e-6 must be right *relatively*, and so must the gradient,
    which is made of (1 - p_y) and the tiny p_j: the `p - 1` cancellation regime."""
    n, h, v = 8, 64, 1000
    hidden, weight, targets = make_inputs(n, h, v)
    targets = torch.randperm(v, generator=torch.Generator().manual_seed(7))[:n].to(DEVICE)
    with torch.no_grad():
        # Give each row's target a logit of 22 (the others are ~N(0, 4)).
        hd = hidden.detach()
        weight[targets] = 22.0 * hd / (hd * hd).sum(dim=1, keepdim=True)
    logp, entropy = run(backend, hidden, weight, targets)
    h64, w64, ref_logp, ref_entropy = reference(hidden, weight, targets, 1.0)
    assert torch.all(ref_logp.exp() > 0.999) and torch.all(ref_logp < -1e-8), "bad test setup"

    rel = ((logp.double() - ref_logp) / ref_logp).abs().max().item()
    assert rel < 1e-4, f"{backend}: logp relative error {rel:.2g} on confident rows"
    rel_ent = ((entropy.double() - ref_entropy) / ref_entropy).abs().max().item()
    assert rel_ent < 1e-4, f"{backend}: entropy relative error {rel_ent:.2g} on confident rows"

    # The regime is real: a plain fp32 log_softmax misses logp by far more than the bound above.
    naive = torch.log_softmax((hidden @ weight.T).detach().float(), dim=-1)
    naive_rel = ((naive.gather(1, targets[:, None])[:, 0].double() - ref_logp) / ref_logp).abs()
    assert naive_rel.max().item() > 1e-3, "fp32 log_softmax was accurate: the test lost its bite"

    g_lp = torch.randn(n, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for name, out, ref_out in (("logp", logp, ref_logp), ("entropy", entropy, ref_entropy)):
        got = torch.autograd.grad(out, [hidden, weight], g_lp.float().to(DEVICE), retain_graph=True)
        want = torch.autograd.grad(ref_out, [h64, w64], g_lp.to(DEVICE), retain_graph=True)
        assert_grad_close(got[0], want[0], 1e-3, f"{backend} dh through {name}")
        assert_grad_close(got[1], want[1], 1e-3, f"{backend} dW through {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [-300.0, 300.0])
def test_logits_far_from_zero(backend, offset):
    """Softmax is shift-invariant, so all logits near +-300 must work; with -300 a padded vocab
    column that entered the max as 0 instead of -inf would underflow every exp to zero."""
    hidden, weight, targets = make_inputs(20, 32, 1000)  # V = 1000: the last tile is padded
    with torch.no_grad():
        hidden[:, 0] = 1.0
        weight[:, 0] = offset  # z = offset + (the usual ~N(0, 4) logits)
    logp, entropy = run(backend, hidden, weight, targets)
    h64, w64, ref_logp, ref_entropy = reference(hidden, weight, targets, 1.0)
    # fp32 spacing near 300 is 3e-5 and a dot product of such terms is off by a few spacings.
    assert_values_close(logp, ref_logp, 5e-4, f"{backend} logp")
    assert_values_close(entropy, ref_entropy, 5e-4, f"{backend} entropy")
    g_lp, g_ent = torch.randn(20, device=DEVICE), torch.randn(20, device=DEVICE)
    got = torch.autograd.grad((logp * g_lp + entropy * g_ent).sum(), [hidden, weight])
    want = torch.autograd.grad((ref_logp * g_lp + ref_entropy * g_ent).sum(), [h64, w64])
    # dh[:, 0] = 300 * sum_j dz_j is a sum that is exactly 0 only in exact arithmetic (it is
    # ill-conditioned for any fp32 code), so it is left out; the other columns are not.
    assert_grad_close(got[0][:, 1:], want[0][:, 1:], 1e-3, f"{backend} dh")
    assert_grad_close(got[1], want[1], 1e-3, f"{backend} dW")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    hidden, weight, targets = make_inputs(0, 16, 50)
    logp, entropy = run(backend, hidden, weight, targets)
    assert logp.shape == entropy.shape == (0,)
    assert logp.dtype == entropy.dtype == torch.float32
    dh, dw = torch.autograd.grad((logp.sum() + entropy.sum()), [hidden, weight])
    assert dh.shape == (0, 16) and torch.all(dw == 0)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
def test_strided_inputs(backend):
    """Views are read through their strides: a column-sliced hidden and a transposed weight."""
    hidden_wide, _, targets = make_inputs(21, 300, 48)
    weight_t = (torch.randn(150, 48, generator=torch.Generator().manual_seed(2)) * 0.2).to(DEVICE)
    weight_t.requires_grad_()  # (H, V) storage
    hidden = hidden_wide[:, ::2]  # (21, 150), strides (300, 2)
    weight = weight_t.T  # (48, 150), strides (1, 48)
    assert not hidden.is_contiguous() and not weight.is_contiguous()
    logp, entropy = run(backend, hidden, weight, targets, 0.7)
    h64, w64, ref_logp, ref_entropy = reference(hidden, weight, targets, 0.7)
    assert_values_close(logp, ref_logp, 2e-5, f"{backend} logp")
    assert_values_close(entropy, ref_entropy, 2e-5, f"{backend} entropy")
    got = torch.autograd.grad(logp.sum() + entropy.sum(), [hidden_wide, weight_t])
    want = torch.autograd.grad(ref_logp.sum() + ref_entropy.sum(), [h64, w64])
    assert_grad_close(got[0][:, ::2], want[0], 1e-5, f"{backend} dh")
    assert_grad_close(got[1].T, want[1], 1e-5, f"{backend} dW")
    assert torch.all(got[0][:, 1::2] == 0), "columns outside the view received gradient"


def test_public_function_routes_every_backend_to_the_same_answer(monkeypatch):
    hidden, weight, targets = make_inputs(9, 24, 77)
    backends = ["auto", "torch"] + (["triton"] if HAS_TRITON else [])
    results = {b: logprobs_and_entropy(hidden, weight, targets, 0.9, backend=b) for b in backends}
    _, _, ref_logp, ref_entropy = reference(hidden, weight, targets, 0.9)
    for b, (logp, entropy) in results.items():
        assert_values_close(logp, ref_logp, 2e-5, f"backend={b} logp")
        assert_values_close(entropy, ref_entropy, 2e-5, f"backend={b} entropy")
        dh, dw = torch.autograd.grad(logp.sum() + entropy.sum(), [hidden, weight])
        assert torch.isfinite(dh).all() and torch.isfinite(dw).all()
    assert _resolve_backend("auto", torch.device("cpu")) == "torch"
    if HAS_TRITON:
        import kernels.logprobs as lp

        # As if the kernel had passed its self-check on cuda (no CUDA device here to run it).
        monkeypatch.setattr(lp, "_SELF_CHECKED", {"cuda": None})
        assert _resolve_backend("auto", torch.device("cuda")) == "triton"


# ------------------------------------------------------------------------------ memory


def _saved_tensor_sizes(fn) -> list[int]:
    """Element counts of every tensor autograd saves for backward while fn() runs."""
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sizes


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_triton)])
def test_no_vocab_sized_tensor_is_saved_for_backward(backend):
    n, h, v = 512, 8, 8000
    hidden, weight, targets = make_inputs(n, h, v)
    kwargs = {"chunk_n": 64, "chunk_v": 8192} if backend == "torch" else {}
    sizes = _saved_tensor_sizes(lambda: run(backend, hidden, weight, targets, **kwargs))
    assert sizes, "nothing was saved: the hook did not see the autograd graph"
    assert max(sizes) <= weight.numel(), f"{backend} saved a tensor of {max(sizes)} elements"

    # The same hook does catch the naive path's (N, V) logits, so the check above can fail.
    naive = _saved_tensor_sizes(lambda: torch.log_softmax(hidden @ weight.T, dim=-1))
    assert max(naive) >= n * v


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "change, match",
    [
        ({"hidden": torch.zeros(4, 7)}, "disagree on H"),
        ({"hidden": torch.zeros(4)}, "hidden must be a 2-D tensor"),
        ({"hidden": torch.zeros(4, 8, dtype=torch.int64)}, "floating-point"),
        ({"weight": torch.zeros(10, 8, dtype=torch.float16)}, "dtypes differ"),
        ({"weight": torch.zeros(0, 8)}, "empty vocabulary"),
        ({"targets": torch.zeros(4, dtype=torch.int32)}, "int64"),
        ({"targets": torch.zeros(3, dtype=torch.int64)}, r"shape \(4,\)"),
        ({"targets": torch.tensor([0, 1, 2, 10])}, r"\[0, 10\)"),
        ({"targets": torch.tensor([0, -1, 2, 3])}, r"\[0, 10\)"),
        ({"temperature": 0.0}, "> 0"),
        ({"temperature": -1.0}, "> 0"),
        ({"temperature": float("nan")}, "> 0"),
        ({"backend": "cuda"}, "unknown backend"),
    ],
)
def test_bad_input_raises_value_error(change, match):
    args = {
        "hidden": torch.zeros(4, 8),
        "weight": torch.zeros(10, 8),
        "targets": torch.tensor([0, 1, 2, 3]),
        "temperature": 1.0,
        "backend": "auto",
    }
    with pytest.raises(ValueError, match=match):
        logprobs_and_entropy(**{**args, **change})


@pytest.mark.parametrize(
    "logits, targets, temperature, match",
    [
        (torch.zeros(10), torch.tensor([0]), 1.0, "2-D"),
        (torch.zeros(2, 5), torch.tensor([0, 5]), 1.0, r"\[0, 5\)"),
        (torch.zeros(2, 5), torch.tensor([0, 1], dtype=torch.int32), 1.0, "int64"),
        (torch.zeros(2, 5), torch.tensor([0, 1]), 0.0, "> 0"),
    ],
)
def test_from_logits_bad_input_raises_value_error(logits, targets, temperature, match):
    with pytest.raises(ValueError, match=match):
        logprobs_and_entropy_from_logits(logits, targets, temperature)


@needs_triton
def test_triton_backend_rejects_fp64():
    hidden, weight, targets = make_inputs(4, 8, 10, torch.float64)
    with pytest.raises(ValueError, match="fp16, bf16 and fp32"):
        logprobs_and_entropy(hidden, weight, targets, backend="triton")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_without_triton_falls_back_to_torch():
    code = """
import sys
sys.modules["triton"] = None  # `import triton` raises ImportError, find_spec returns None
import torch
from kernels import logprobs_and_entropy
h, w, y = torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1, 4])
logprobs_and_entropy(h, w, y)  # auto -> torch
try:
    logprobs_and_entropy(h, w, y, backend="triton")
except RuntimeError as e:
    print("ERR", e)
"""
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert "ERR backend='triton' needs the triton package" in res.stdout, res.stdout


@needs_triton
def test_triton_on_cpu_without_interpreter_is_a_clear_error():
    code = """
import torch
from kernels import logprobs_and_entropy
h, w, y = torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1, 4])
try:
    logprobs_and_entropy(h, w, y, backend="triton")
except ValueError as e:
    print("ERR", e)
"""
    res = _python(code, TRITON_INTERPRET="0", CUDA_VISIBLE_DEVICES="")
    assert res.returncode == 0, res.stderr
    assert "ERR" in res.stdout and "TRITON_INTERPRET=1" in res.stdout, res.stdout


@needs_triton
@pytest.mark.skipif(HAS_CUDA, reason="on CUDA the compiled kernels are tested instead")
def test_cpu_runs_really_use_the_triton_interpreter():
    import kernels.logprob_triton as kt

    assert kt.INTERPRETED, (
        "kernels.logprob_triton was imported before TRITON_INTERPRET=1 was set, so its kernels "
        "were built for a GPU; the Triton tests here would not be testing the CPU interpreter"
    )


@needs_triton
def test_kernels_compile_for_hopper():
    """The interpreter accepts programs the GPU compiler rejects; compile for sm_90 ahead of
    time (no GPU needed) so a CPU-only CI still catches a kernel that would not build."""
    code = """
import warnings
warnings.filterwarnings("ignore")
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import kernels.logprob_triton as kt
assert not kt.INTERPRETED
names = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
for dtype, (bn, bv, bh, nw, ns) in kt.GPU_TILES.items():
    consts = dict(BLOCK_N=bn, BLOCK_V=bv, BLOCK_H=bh, UPCAST=False,
                  DOT_PRECISION=kt._kernel_constants(dtype)["DOT_PRECISION"])
    ptrs = {"h_ptr": "*" + names[dtype], "w_ptr": "*" + names[dtype], "y_ptr": "*i64"}
    for kernel in (kt._fwd_kernel, kt._bwd_dh_kernel, kt._bwd_dw_kernel):
        sig = {a: "constexpr" if a in consts else ptrs.get(a, "*fp32" if a.endswith("_ptr")
               else "fp32" if a == "inv_temp" else "i32") for a in kernel.arg_names}
        out = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts),
                             target=GPUTarget("cuda", 90, 32),
                             options={"num_warps": nw, "num_stages": ns})
        print(names[dtype], kernel.fn.__name__, len(out.asm["cubin"]) > 0)
"""
    res = _python(code, TRITON_INTERPRET="0")
    if "ptxas" in res.stderr and "not found" in res.stderr.lower():
        pytest.skip("this Triton install has no ptxas")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("True") == 9, res.stdout


# ------------------------------------------------------------------------------- GPU only


@pytest.mark.gpu
@needs_cuda
@needs_triton
def test_gpu_bf16_triton_is_no_less_accurate_than_naive_bf16():
    from kernels.logprob_triton import triton_logprobs_and_entropy

    hidden, weight, targets = make_inputs(1024, 896, 32_000, torch.bfloat16)
    h64, w64, ref_logp, ref_entropy = reference(hidden, weight, targets, 1.0)
    g_lp, g_ent = torch.randn(1024, device=DEVICE), torch.randn(1024, device=DEVICE)
    want = torch.autograd.grad(
        (ref_logp * g_lp.double() + ref_entropy * g_ent.double()).sum(), [h64, w64]
    )

    def errors(logp, entropy):
        grads = torch.autograd.grad((logp * g_lp + entropy * g_ent).sum(), [hidden, weight])
        return [
            (logp.double() - ref_logp).abs().max().item(),
            (entropy.double() - ref_entropy).abs().max().item(),
            *[(a.double() - b).abs().max().item() for a, b in zip(grads, want)],
        ]

    logits = hidden @ weight.T  # the naive path: bf16 logits, softmax in fp32
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    naive = errors(logp_all.gather(1, targets[:, None])[:, 0], -(logp_all.exp() * logp_all).sum(-1))
    ours = errors(*triton_logprobs_and_entropy(hidden, weight, targets))
    for name, o, b in zip(["logp", "entropy", "dh", "dW"], ours, naive):
        assert o <= 2.0 * b + 1e-6, f"{name}: Triton bf16 error {o:.3g} vs naive bf16 {b:.3g}"


@pytest.mark.gpu
@pytest.mark.slow
@needs_cuda
@needs_triton
def test_gpu_offsets_beyond_int32():
    """V * H = 151,936 * 16,384 > 2^31: the last weight rows are only reachable with int64."""
    n, h, v = 4, 16_384, 151_936
    hidden = torch.randn(n, h, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    weight = (torch.randn(v, h, device=DEVICE) * h**-0.5).bfloat16().requires_grad_()
    targets = torch.tensor([0, v - 1, v - 2, 100_000], device=DEVICE)
    logp, entropy = logprobs_and_entropy(hidden, weight, targets, backend="triton")
    ref_logp, ref_entropy = torch_logprobs_and_entropy(hidden, weight, targets)
    assert_values_close(logp, ref_logp.double(), 1e-4, "logp")
    assert_values_close(entropy, ref_entropy.double(), 1e-4, "entropy")
    (dw,) = torch.autograd.grad(logp.sum(), weight)
    (ref_dw,) = torch.autograd.grad(ref_logp.sum(), weight)
    assert_grad_close(dw[-2:], ref_dw[-2:].double(), 2e-2, "dW of the last vocab rows")
