"""grpo/experiments/distill_loss.py: each divergence against a hand computation in plain
Python floats, the closed-form gradient against autograd of the naive formula, the masked
mean, lmbda's row split, and a vocabulary mismatch refused in one line."""

from __future__ import annotations

import math

import pytest
import torch

from grpo.experiments.distill_loss import (
    VocabularyMismatch,
    check_vocabularies,
    distill_loss,
    divergence,
    forward_kl,
    on_policy_rows,
    reverse_kl,
)
from kernels.distill_torch import divergence_and_grad
from kernels.distill_torch import torch_fused_linear_divergence as fused_linear_divergence

S = [2.0, 0.5, -1.0, 0.0]  # student logits of one token, V = 4
T = [0.0, 1.5, 0.5, -2.0]  # teacher logits


def softmax(z, temp=1.0):
    e = [math.exp(v / temp) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def jsd(p_t, p_s, beta):
    m = [beta * a + (1 - beta) * b for a, b in zip(p_t, p_s)]
    return beta * kl(p_t, m) + (1 - beta) * kl(p_s, m)


def logits(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_forward_kl_by_hand():
    expected = kl(softmax(T), softmax(S))  # KL(teacher || student)
    assert math.isclose(forward_kl(logits(S), logits(T)).item(), expected, rel_tol=1e-6)
    assert math.isclose(divergence(logits(S), logits(T), beta=0.0).item(), expected, rel_tol=1e-6)


def test_reverse_kl_by_hand():
    expected = kl(softmax(S), softmax(T))  # KL(student || teacher)
    assert math.isclose(reverse_kl(logits(S), logits(T)).item(), expected, rel_tol=1e-6)
    assert expected != pytest.approx(kl(softmax(T), softmax(S)))  # the two directions differ


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_generalized_jsd_by_hand(beta):
    expected = jsd(softmax(T), softmax(S), beta)
    got = divergence(logits(S), logits(T), beta=beta).item()
    assert math.isclose(got, expected, rel_tol=1e-6), (beta, got, expected)


def test_jsd_half_is_symmetric_and_bounded_by_log2():
    a, b = logits(S), logits(T)
    assert divergence(a, b, 0.5).item() == pytest.approx(divergence(b, a, 0.5).item(), rel=1e-6)
    far = logits([30.0, -30.0]), logits([-30.0, 30.0])  # disjoint supports
    assert divergence(*far, 0.5).item() == pytest.approx(math.log(2), rel=1e-6)


def test_jsd_near_the_ends_is_a_scaled_kl():
    eps = 1e-4
    s, t = logits(S), logits(T)
    assert divergence(s, t, eps).item() / eps == pytest.approx(forward_kl(s, t).item(), rel=1e-3)
    assert (divergence(s, t, 1 - eps).item() / eps
            == pytest.approx(reverse_kl(s, t).item(), rel=1e-3))  # fmt: skip


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_temperature_divides_both_logits(beta):
    temp = 2.5
    p_s, p_t = softmax(S, temp), softmax(T, temp)
    expected = {0.0: kl(p_t, p_s), 1.0: kl(p_s, p_t)}.get(beta, jsd(p_t, p_s, beta))
    got = divergence(logits(S), logits(T), beta, temperature=temp).item()
    assert math.isclose(got, expected, rel_tol=1e-6)


def test_identical_distributions_diverge_by_zero():
    z = logits(S, T)
    for beta in (0.0, 0.3, 1.0):
        assert divergence(z, z + 7.0, beta).abs().max().item() < 1e-12  # a shift changes nothing


def test_a_zero_probability_token_is_handled():
    s = logits([0.0, 0.0, float("-inf")])  # the student never emits token 2
    t = logits([1.0, 0.0, float("-inf")])
    expected = kl(softmax([1.0, 0.0]), softmax([0.0, 0.0]))
    for beta in (0.0, 0.5, 1.0):
        v = divergence(s, t, beta).item()
        assert math.isfinite(v)
    assert divergence(s, t, 0.0).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("temp", [1.0, 0.7])
def test_closed_form_gradient_matches_autograd_of_the_naive_formula(beta, temp):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 11, generator=g, dtype=torch.float64) * 3
    t = torch.randn(5, 11, generator=g, dtype=torch.float64) * 3
    s.requires_grad_(True)
    # The naive formula, written out with softmax and logs, differentiated by autograd.
    p_s, p_t = torch.softmax(s / temp, -1), torch.softmax(t / temp, -1)
    if beta == 0.0:
        naive = (p_t * (p_t.log() - p_s.log())).sum()
    elif beta == 1.0:
        naive = (p_s * (p_s.log() - p_t.log())).sum()
    else:
        m = beta * p_t + (1 - beta) * p_s
        naive = (beta * (p_t * (p_t.log() - m.log())).sum()
                 + (1 - beta) * (p_s * (p_s.log() - m.log())).sum())  # fmt: skip
    (auto,) = torch.autograd.grad(naive, s)
    _, closed = divergence_and_grad(s.detach() / temp, t / temp, beta)
    closed = closed / temp
    assert torch.allclose(closed, auto, rtol=1e-5, atol=1e-7), (closed - auto).abs().max()


def test_on_policy_loss_gradient_flows_to_the_student_only():
    s = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss = distill_loss(s, t.detach(), mask, beta=1.0)
    loss.backward()
    assert t.grad is None and s.grad is not None
    assert s.grad[0, 2].abs().max() == 0 and s.grad[1, 1:].abs().max() == 0  # masked tokens


def test_distill_loss_is_the_mean_over_completion_tokens():
    s = logits([S, S, T], [T, S, S])
    t = logits([T, T, T], [S, S, S])
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    per = [kl(softmax(T), softmax(S)), kl(softmax(T), softmax(S)),
           kl(softmax(S), softmax(T)), 0.0]  # fmt: skip
    got = distill_loss(s, t, mask, beta=0.0).item()
    assert got == pytest.approx(sum(per) / 4, rel=1e-6)
    assert distill_loss(s, t, torch.zeros(2, 3), beta=0.0).item() == 0.0


def test_on_policy_rows_takes_round_lmbda_n():
    g = torch.Generator().manual_seed(0)
    assert on_policy_rows(8, 0.0, g).sum() == 0 and on_policy_rows(8, 1.0, g).all()
    assert on_policy_rows(8, 0.5, g).sum() == 4 and on_policy_rows(10, 0.25, g).sum() == 3
    a = on_policy_rows(16, 0.5, torch.Generator().manual_seed(3))
    b = on_policy_rows(16, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # the seed decides which rows
    with pytest.raises(ValueError, match="lmbda must be in"):
        on_policy_rows(4, 1.5)


@pytest.mark.parametrize("kw, message", [
    ({"beta": -0.1}, "beta must be in"), ({"beta": 1.1}, "beta must be in"),
    ({"temperature": 0.0}, "temperature must be"), ({"temperature": float("nan")}, "temperature"),
])  # fmt: skip
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        divergence(logits(S), logits(T), **kw)


def test_vocabulary_mismatch_is_refused_in_one_line():
    with pytest.raises(VocabularyMismatch) as e:
        check_vocabularies(512, 768)
    msg = str(e.value)
    assert "\n" not in msg and "512" in msg and "768" in msg
    with pytest.raises(VocabularyMismatch, match="one vocabulary"):
        divergence(torch.zeros(2, 5), torch.zeros(2, 6))
    check_vocabularies(512, 512)  # equal sizes, no tokenizers: accepted


def test_vocabulary_mismatch_of_same_size_tokenizers_is_refused():
    from model.tokenizer import train_bpe_tokenizer

    texts = ["abc abd abe 12 + 34"] * 50
    a = train_bpe_tokenizer(texts, vocab_size=300, atomic_strings=("<think>",))
    b = train_bpe_tokenizer(texts, vocab_size=300, atomic_strings=("<answer>",))
    assert a.vocab_size == b.vocab_size
    with pytest.raises(VocabularyMismatch) as e:
        check_vocabularies(a.vocab_size, b.vocab_size, a, b)
    assert "\n" not in str(e.value) and "tokenizers differ" in str(e.value)
    check_vocabularies(a.vocab_size, a.vocab_size, a, a)


# --- the fused twin (kernels/distill_torch.py) against fp64 on materialised logits ---------


def _naive(h_s, w_s, h_t, w_t, weights, beta, temp):
    """The fp64 reference: both (N, V) logit matrices, the divergence, autograd."""
    h, w = h_s.double().detach().requires_grad_(True), w_s.double().detach().requires_grad_(True)
    loss = (weights.double() * divergence(h @ w.T, h_t.double() @ w_t.double().T, beta, temp)).sum()
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _inputs(N, V, d_s, d_t, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(N, d_s, generator=g).to(dtype)
    w_s = (torch.randn(V, d_s, generator=g) / d_s**0.5).to(dtype)
    h_t = torch.randn(N, d_t, generator=g).to(dtype)
    w_t = (torch.randn(V, d_t, generator=g) * 2 / d_t**0.5).to(dtype)
    weights = torch.rand(N, generator=g)
    weights[::4] = 0.0  # padding rows
    return h_s, w_s, h_t, w_t, weights / weights.sum()


# fp64 is exact up to rounding. fp32: ~1e-6 relative error per logit. bf16 inputs are
# rounded before either side sees them, the twin computes the logits and the divergence in
# fp32 from them, and returns its gradients in bf16 (rounding ~4e-3 relative).
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-5, 2e-5), torch.bfloat16: (2e-5, 1e-2)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 0.2])
@pytest.mark.parametrize("N, V, chunk", [(37, 53, 8), (5, 130, 256), (64, 17, 64)])
def test_fused_twin_matches_fp64(dtype, beta, N, V, chunk):
    h_s, w_s, h_t, w_t, weights = _inputs(N, V, 12, 20, dtype)
    temp = 1.3 if beta == 0.2 else 1.0
    ref_loss, ref_h, ref_w = _naive(h_s, w_s, h_t, w_t, weights, beta, temp)
    hs, ws = h_s.clone().requires_grad_(True), w_s.clone().requires_grad_(True)
    loss = fused_linear_divergence(hs, ws, h_t, w_t, weights, beta, temp, chunk_rows=chunk)
    (2.0 * loss).backward()  # the upstream gradient scales both gradients
    rtol_loss, rtol_grad = TOL[dtype]
    assert loss.item() == pytest.approx(ref_loss.item(), rel=rtol_loss, abs=1e-12)
    assert hs.grad.dtype == dtype and ws.grad.dtype == dtype
    for got, ref in [(hs.grad, ref_h), (ws.grad, ref_w)]:
        err = (got.double() - 2.0 * ref).abs().max().item()
        assert err <= rtol_grad * (2.0 * ref).abs().max().item() + 1e-12, (dtype, beta, err)


def test_fused_twin_refuses_bad_input_in_one_line():
    h_s, w_s, h_t, w_t, weights = _inputs(6, 10, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="one vocabulary") as e:
        fused_linear_divergence(h_s, w_s, h_t, w_t[:9], weights)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="beta must be in"):
        fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta=2.0)
    with pytest.raises(ValueError, match="rows differ"):
        fused_linear_divergence(h_s, w_s, h_t[:5], w_t, weights)


def test_fused_twin_gives_the_teacher_no_gradient():
    h_s, w_s, h_t, w_t, weights = _inputs(6, 10, 4, 4, torch.float32)
    w_t.requires_grad_(True)
    h_s.requires_grad_(True)
    fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta=1.0).backward()
    assert w_t.grad is None and h_s.grad is not None
