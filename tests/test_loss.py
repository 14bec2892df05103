"""Tests for grpo/loss.py: hand-computed values, clipping gradients, and micro-batching."""

import math

import pytest
import torch

from grpo.loss import (
    LossConfig,
    clipped_surrogate,
    finalize_metrics,
    grpo_loss,
    k3_kl,
    token_weights,
)

F64 = torch.float64
# A ragged (3, 4) completion mask: lengths 4, 2, 1.
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"aggregation": "mean"}, "valid: grpo, dapo, dr_grpo"),
        ({"eps_low": -0.1}, "eps must be >= 0"),
        ({"eps_high": -0.1}, "eps must be >= 0"),
        ({"beta": -1e-3}, "beta"),
        ({"aggregation": "dr_grpo"}, "needs max_new_tokens"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
    ],
)
def test_loss_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossConfig(**kwargs)


# ---------------------------------------------------------------- k3 KL


def test_k3_hand_values():
    # d = ref_logp - logp; kl = e^d - d - 1.
    cases = [
        (0.0, 0.0),
        (math.log(2), 2 - math.log(2) - 1),
        (-1.0, math.exp(-1)),
        (3.0, math.exp(3) - 4),
    ]
    for d, want in cases:
        got = k3_kl(torch.tensor([0.0], dtype=F64), torch.tensor([d], dtype=F64)).item()
        assert abs(got - want) < 1e-12, f"d={d}: {got} vs {want}"
    # Sign convention: logp = log 2 above a reference of 0 gives d = -log 2.
    got = k3_kl(torch.tensor([math.log(2)]), torch.tensor([0.0])).item()
    assert abs(got - (0.5 + math.log(2) - 1)) < 1e-6, got


def test_k3_nonnegative_and_finite_for_large_d():
    g = torch.Generator().manual_seed(0)
    d = torch.cat([torch.linspace(-100, 100, 2001), 30 * torch.randn(1000, generator=g)])
    for dtype in (torch.float32, F64):
        kl = k3_kl(torch.zeros_like(d, dtype=dtype), d.to(dtype))
        assert torch.isfinite(kl).all(), f"{dtype}: non-finite k3 for d in [-100, 100]"
        assert (kl >= 0).all(), f"{dtype}: negative k3, min {kl.min().item()}"
    # +-100 lands on the clamp at +-20.
    logp = torch.zeros(2, requires_grad=True)
    kl = k3_kl(logp, torch.tensor([100.0, -100.0]))
    want = [math.exp(20) - 21, math.exp(-20) + 19]
    assert abs(kl[0].item() / want[0] - 1) < 1e-6 and abs(kl[1].item() - want[1]) < 1e-5, kl
    kl.sum().backward()
    assert torch.isfinite(logp.grad).all(), f"non-finite KL gradient at d = +-100: {logp.grad}"


@pytest.mark.parametrize("d", [1e-8, -1e-8, 1e-6, -3e-5, 1e-3, 0.05, -0.0999, 0.1, -0.1, 0.3])
def test_k3_small_d_is_accurate_in_fp32(d):
    d32 = torch.tensor([d], dtype=torch.float32)
    exact_d = d32.item()  # the fp32 value actually used, in Python double precision
    want = math.expm1(exact_d) - exact_d
    got = k3_kl(torch.zeros(1), d32).item()
    assert abs(got - want) <= 1e-5 * want, f"d={d}: k3 {got} vs {want} (rel {got / want - 1})"
    if abs(d) <= 1e-6:
        assert abs(got / (exact_d**2 / 2) - 1) < 1e-6, f"d={d}: {got} vs d^2/2"
    # Gradient w.r.t. logp is -(e^d - 1) = -expm1(d).
    logp = torch.zeros(1, requires_grad=True)
    k3_kl(logp, d32).sum().backward()
    g_want = -math.expm1(exact_d)
    assert abs(logp.grad.item() - g_want) <= 1e-5 * abs(g_want), f"d={d}: grad {logp.grad.item()}"


def test_naive_k3_cancels_in_fp32():
    # Proves the accuracy test above is sensitive: e^d - d - 1 in fp32 is useless at d = 1e-4.
    d = torch.tensor([1e-4])
    naive = (torch.exp(d) - d - 1).item()
    want = math.expm1(d.item()) - d.item()
    assert abs(naive / want - 1) > 0.5, f"naive fp32 k3 unexpectedly accurate: {naive} vs {want}"


# ---------------------------------------------------------------- clipped surrogate


def _hand_pg(ratio: float, a: float, eps_low: float, eps_high: float) -> tuple[float, bool]:
    """-min(r A, clip(r) A) and whether the clipped (constant) term is the one picked."""
    clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
    if ratio * a <= clipped * a:
        return -ratio * a, False
    return -clipped * a, True


def test_clipped_surrogate_values_gradients_and_masks():
    el, eh = 0.2, 0.28  # clip range [0.8, 1.28]
    ratios = [0.5, 0.85, 1.0, 1.25, 1.5]
    advs = [2.0, -1.0, 0.0]
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0, -1.5]] * 3, dtype=F64)
    logp = (old + torch.tensor(ratios, dtype=F64).log()).requires_grad_()
    pg, low, high = clipped_surrogate(logp, old, torch.tensor(advs, dtype=F64), el, eh)
    pg.sum().backward()
    for i, a in enumerate(advs):
        for t, r in enumerate(ratios):
            want, frozen = _hand_pg(r, a, el, eh)
            assert abs(pg[i, t].item() - want) < 1e-12, f"A={a} r={r}: pg {pg[i, t].item()}"
            g_want = 0.0 if frozen else -a * r
            g = logp.grad[i, t].item()
            assert abs(g - g_want) < 1e-12, f"A={a} r={r}: grad {g} vs {g_want}"
            if frozen:
                assert g == 0.0, f"A={a} r={r}: clipped token has gradient {g}"
    # Hand-listed masks: A > 0 clips above 1.28 only; A < 0 clips below 0.8 only.
    want_high = [[False, False, False, False, True], [False] * 5, [False] * 5]
    want_low = [[False] * 5, [True, False, False, False, False], [False] * 5]
    assert high.tolist() == want_high, f"clipped_high {high.tolist()}"
    assert low.tolist() == want_low, f"clipped_low {low.tolist()}"
    # The unbounded sides keep their gradient: A > 0 with r = 0.5, A < 0 with r = 1.5.
    assert logp.grad[0, 0].item() == pytest.approx(-1.0), "A>0, r<1-eps must still learn"
    assert logp.grad[1, 4].item() == pytest.approx(1.5), "A<0, r>1+eps must still learn"


def test_clipped_surrogate_accepts_per_token_advantages_and_checks_shapes():
    logp = torch.zeros(2, 3)
    a = torch.tensor([1.0, -1.0])
    pg1, _, _ = clipped_surrogate(logp, logp, a, 0.2, 0.2)
    pg2, _, _ = clipped_surrogate(logp, logp, a[:, None].expand(2, 3), 0.2, 0.2)
    assert torch.equal(pg1, pg2), f"(N,) and (N, T) advantages disagree: {pg1} {pg2}"
    with pytest.raises(ValueError, match="advantages must be"):
        clipped_surrogate(logp, logp, torch.zeros(3), 0.2, 0.2)
    with pytest.raises(ValueError, match="must both be"):
        clipped_surrogate(logp, torch.zeros(2, 4), a, 0.2, 0.2)


# ---------------------------------------------------------------- aggregation

# Per-token losses; masked positions hold a huge value that must not leak into the loss.
X = 1e6
L_TOKENS = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, X, X], [7.0, X, X, X]], dtype=F64)


@pytest.mark.parametrize(
    "aggregation, max_new_tokens, want",
    [
        ("grpo", None, (10 / 4 + 11 / 2 + 7 / 1) / 3),  # mean of per-sequence means = 5
        ("dapo", None, (10 + 11 + 7) / 7),  # global token mean = 4
        ("dr_grpo", 4, (10 + 11 + 7) / (3 * 4)),
        ("dr_grpo", 5, (10 + 11 + 7) / (3 * 5)),
    ],
)
def test_token_weights_hand_values(aggregation, max_new_tokens, want):
    w = token_weights(MASK, aggregation, max_new_tokens)
    assert w.dtype == torch.float32, w.dtype
    assert (w[~MASK] == 0).all(), f"{aggregation}: nonzero weight on padding"
    got = (w * L_TOKENS).sum().item()
    assert abs(got - want) < 1e-5, f"{aggregation}: loss {got} vs hand value {want}"
    # The same from 0/1 integer masks.
    assert torch.equal(token_weights(MASK.long(), aggregation, max_new_tokens), w)


def test_token_weights_empty_row_counts_in_n():
    # Decision (as in TRL): a row with no completion tokens has weight 0 but still counts
    # in N for grpo and dr_grpo; dapo only counts tokens.
    mask = torch.tensor([[1, 1], [0, 0]])
    l_tok = torch.tensor([[2.0, 4.0], [X, X]])
    cases = {"grpo": (2 + 4) / 2 / 2, "dapo": (2 + 4) / 2, "dr_grpo": (2 + 4) / (2 * 2)}
    for agg, want in cases.items():
        got = (token_weights(mask, agg, 2) * l_tok).sum().item()
        assert got == pytest.approx(want), f"{agg}: {got} vs {want}"
    assert token_weights(torch.zeros(2, 3), "dapo").sum().item() == 0, "all-empty batch"


def test_token_weights_errors():
    with pytest.raises(ValueError, match="needs max_new_tokens"):
        token_weights(MASK, "dr_grpo")
    with pytest.raises(ValueError, match="> max_new_tokens=3"):
        token_weights(MASK, "dr_grpo", 3)
    with pytest.raises(ValueError, match="valid: grpo, dapo, dr_grpo"):
        token_weights(MASK, "seq_mean")
    with pytest.raises(ValueError, match="mask must be"):
        token_weights(MASK[0], "dapo")


# Hand-made micro-batch for end-to-end loss values.
LOGP = [[-1.0, -0.5, -2.0, -0.1], [-0.3, -1.2, 0.0, 0.0], [-0.7, 0.0, 0.0, 0.0]]
OLD = [[-1.1, -0.9, -1.7, -0.1], [-0.2, -1.5, 0.0, 0.0], [-0.4, 0.0, 0.0, 0.0]]
REF = [[-0.8, -0.6, -2.5, -0.3], [-0.3, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]
ENT = [[1.0, 0.5, 2.0, 0.3], [0.8, 1.1, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]]
ADV = [1.0, -2.0, 0.5]


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_grpo_loss_hand_value(aggregation):
    el, eh, beta, c, max_new = 0.2, 0.28, 0.1, 0.01, 6
    per_seq, pg_seq = [], []  # per-token l and pg with Python floats, grpo/loss.py's formulas
    for i in range(3):
        row, pg_row = [], []
        for t in range(int(MASK[i].sum())):
            ratio = math.exp(LOGP[i][t] - OLD[i][t])
            pg, _ = _hand_pg(ratio, ADV[i], el, eh)
            d = REF[i][t] - LOGP[i][t]
            row.append(pg + beta * (math.exp(d) - d - 1) - c * ENT[i][t])
            pg_row.append(pg)
        per_seq.append(row)
        pg_seq.append(pg_row)

    def aggregate(seqs: list[list[float]]) -> float:
        return {
            "grpo": sum(sum(r) / len(r) for r in seqs) / 3,
            "dapo": sum(map(sum, seqs)) / sum(map(len, seqs)),
            "dr_grpo": sum(map(sum, seqs)) / (3 * max_new),
        }[aggregation]

    want = aggregate(per_seq)
    cfg = LossConfig(aggregation, el, eh, beta, c, max_new)
    loss, sums = grpo_loss(
        torch.tensor(LOGP, dtype=F64, requires_grad=True),
        torch.tensor(OLD, dtype=F64),
        torch.tensor(REF, dtype=F64),
        torch.tensor(ADV, dtype=F64),
        token_weights(MASK, aggregation, max_new),
        MASK,
        cfg,
        entropy=torch.tensor(ENT, dtype=F64),
    )
    assert abs(loss.item() - want) < 1e-6, f"{aggregation}: loss {loss.item()} vs hand {want}"
    pg_want = aggregate(pg_seq)
    assert abs(sums["pg_loss"].item() - pg_want) < 1e-6, f"pg_loss {sums['pg_loss']} vs {pg_want}"
    # Token 1 of row 0 has ratio e^0.4 = 1.49 > 1.28 with A > 0; token 0 of row 2 has
    # ratio e^-0.3 = 0.74 < 0.8 but A > 0, so it is not clipped.
    assert sums["clipped_high"].item() == 1 and sums["clipped_low"].item() == 0, sums
    assert sums["tokens"].item() == 7, sums


def test_grpo_loss_argument_errors():
    z = torch.zeros(3, 4)
    w = token_weights(MASK, "dapo")
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(z, None, None, torch.zeros(3), w, MASK, LossConfig(beta=0.01))
    with pytest.raises(ValueError, match="entropy"):
        grpo_loss(z, None, None, torch.zeros(3), w, MASK, LossConfig(entropy_coef=0.01))
    with pytest.raises(ValueError, match="logp must be"):
        grpo_loss(z[0], None, None, torch.zeros(3), w[0], MASK[0], LossConfig())
    with pytest.raises(ValueError, match="old_logp must match"):
        grpo_loss(z, torch.zeros(3, 5), None, torch.zeros(3), w, MASK, LossConfig())
    with pytest.raises(ValueError, match="weights must match"):
        grpo_loss(z, None, None, torch.zeros(3), w[:2], MASK, LossConfig())
    with pytest.raises(ValueError, match="advantages must be"):
        grpo_loss(z, None, None, torch.zeros(4), w, MASK, LossConfig())


# ---------------------------------------------------------------- on-policy, masking


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_on_policy_is_reinforce(aggregation):
    # old_logp None: ratio == 1 exactly, nothing clips, and d loss / d logp_{i,t} = -A_i w_{i,t}.
    adv = [1.5, -0.5, 2.0]
    lengths = [4, 2, 1]
    hand_w = {  # weight of each token of row i, by hand
        "grpo": [1 / (3 * n) for n in lengths],
        "dapo": [1 / 7] * 3,
        "dr_grpo": [1 / (3 * 4)] * 3,
    }[aggregation]
    logp = torch.tensor(LOGP, dtype=F64, requires_grad=True)
    cfg = LossConfig(aggregation, eps_low=0.0, eps_high=0.0, max_new_tokens=4)
    w = token_weights(MASK, aggregation, 4)
    loss, sums = grpo_loss(logp, None, None, torch.tensor(adv, dtype=F64), w, MASK, cfg)
    loss.backward()
    want_grad = torch.tensor(
        [[-adv[i] * hand_w[i] if t < lengths[i] else 0.0 for t in range(4)] for i in range(3)],
        dtype=F64,
    )
    torch.testing.assert_close(logp.grad, want_grad, rtol=1e-6, atol=1e-9)
    want_loss = sum(-adv[i] * hand_w[i] * lengths[i] for i in range(3))
    assert abs(loss.item() - want_loss) < 1e-6, f"loss {loss.item()} vs {want_loss}"
    assert sums["ratio"].item() == 7.0, f"ratio sum {sums['ratio'].item()} != 7 tokens"
    assert sums["clipped_low"].item() == 0 and sums["clipped_high"].item() == 0, sums
    # Passing logp itself (still on the graph) as old_logp must not cancel the gradient.
    logp.grad = None
    grpo_loss(logp, logp, None, torch.tensor(adv, dtype=F64), w, MASK, cfg)[0].backward()
    torch.testing.assert_close(logp.grad, want_grad, rtol=1e-6, atol=1e-9)


def test_garbage_at_masked_positions_does_not_poison():
    cfg = LossConfig("grpo", 0.2, 0.28, beta=0.1, entropy_coef=0.01)
    w = token_weights(MASK, "grpo")
    adv = torch.tensor(ADV, dtype=F64)
    clean = [torch.tensor(v, dtype=F64) for v in (LOGP, OLD, REF, ENT)]
    dirty = [v.clone() for v in clean]
    junk = (float("nan"), float("inf"), -float("inf"), float("nan"))
    for v, j in zip(dirty, junk, strict=True):
        v[~MASK] = j
    results = []
    w_dirty = torch.where(MASK, w, 1.0)  # weights on padding must be ignored too
    for (logp, old, ref, ent), ww in ((clean, w), (dirty, w_dirty)):
        logp, ent = logp.requires_grad_(), ent.requires_grad_()
        loss, sums = grpo_loss(logp, old, ref, adv, ww, MASK, cfg, entropy=ent)
        loss.backward()
        results.append((loss.detach(), logp.grad, ent.grad, sums))
    (l0, g0, e0, s0), (l1, g1, e1, s1) = results
    assert torch.isfinite(l1), f"loss poisoned by masked garbage: {l1}"
    assert torch.isfinite(g1).all() and torch.isfinite(e1).all(), f"grad poisoned: {g1} {e1}"
    assert (g1[~MASK] == 0).all() and (e1[~MASK] == 0).all(), "masked tokens got gradient"
    assert torch.equal(l0, l1) and torch.equal(g0, g1), "garbage changed the loss or gradient"
    for k in s0:
        assert torch.equal(s0[k], s1[k]), f"metric {k}: {s0[k]} vs {s1[k]}"


# ---------------------------------------------------------------- micro-batching


N, T, H, V = 8, 6, 5, 7
LENGTHS = [6, 3, 1, 0, 5, 2, 4, 6]
SPLITS = [(0, 3), (3, 4), (4, 8)]  # uneven micro-batches: 3 + 1 + 4 rows


def _toy_batch():
    """A tiny differentiable policy: linear head + log_softmax over a toy vocabulary."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, T, H, generator=g, dtype=F64)
    targets = torch.randint(0, V, (N, T), generator=g)
    head = torch.randn(H, V, generator=g, dtype=F64, requires_grad=True)

    def policy(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        logp_all = torch.log_softmax(x[lo:hi] @ head, dim=-1)  # (n, T, V)
        logp = logp_all.gather(-1, targets[lo:hi, :, None]).squeeze(-1)  # (n, T)
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # (n, T), carries gradient
        return logp, entropy

    with torch.no_grad():
        logp0, _ = policy(0, N)
    old = logp0 + 0.3 * torch.randn(N, T, generator=g, dtype=F64)  # some tokens clip
    ref = logp0 + 0.5 * torch.randn(N, T, generator=g, dtype=F64)
    adv = torch.randn(N, generator=g, dtype=F64)
    mask = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]
    return head, policy, old, ref, adv, mask


def _grad_and_sums(aggregation, naive=False):
    head, policy, old, ref, adv, mask = _toy_batch()
    cfg = LossConfig(aggregation, 0.2, 0.28, beta=0.05, entropy_coef=0.01, max_new_tokens=T)
    w_full = token_weights(mask, aggregation, T)
    logp, ent = policy(0, N)
    loss_full, sums_full = grpo_loss(logp, old, ref, adv, w_full, mask, cfg, entropy=ent)
    grad_full = torch.autograd.grad(loss_full, head)[0]

    loss_acc, sums_list = 0.0, []
    for lo, hi in SPLITS:
        if naive:  # normalise inside the micro-batch, then divide by the number of them
            w = token_weights(mask[lo:hi], aggregation, T) / len(SPLITS)
        else:
            w = w_full[lo:hi]
        logp, ent = policy(lo, hi)
        loss, sums = grpo_loss(logp, old[lo:hi], ref[lo:hi], adv[lo:hi], w, mask[lo:hi], cfg, ent)
        loss.backward()  # gradient accumulation: no division
        loss_acc += loss.item()
        sums_list.append(sums)
    return loss_full.item(), grad_full, loss_acc, head.grad, sums_full, sums_list


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_micro_batching_equals_full_batch(aggregation):
    loss_full, grad_full, loss_acc, grad_acc, sums_full, _ = _grad_and_sums(aggregation)
    assert sums_full["clipped_low"] > 0 and sums_full["clipped_high"] > 0, (
        f"test batch should exercise both clip sides: {sums_full}"
    )
    assert abs(loss_acc - loss_full) < 1e-9, f"{aggregation}: {loss_acc} vs {loss_full}"
    err = (grad_acc - grad_full).abs().max().item()
    assert err < 1e-6, f"{aggregation}: accumulated grad differs from full batch by {err}"
    assert grad_full.abs().max() > 1e-3, "gradient too small for the comparison to mean much"


@pytest.mark.parametrize("aggregation", ["grpo", "dapo", "dr_grpo"])
def test_naive_per_micro_batch_normalisation_is_wrong(aggregation):
    # Proves the test above is sensitive: per-micro-batch normalisation changes the gradient.
    _, grad_full, _, grad_naive, _, _ = _grad_and_sums(aggregation, naive=True)
    err = (grad_naive - grad_full).abs().max().item()
    assert err > 1e-3, f"{aggregation}: naive normalisation matched the full batch ({err})"


def test_finalize_metrics_of_micro_batches_equals_full_batch():
    _, _, _, _, sums_full, sums_list = _grad_and_sums("dapo")
    summed = {k: sum(s[k] for s in sums_list) for k in sums_list[0]}
    full, split = finalize_metrics(sums_full), finalize_metrics(summed)
    assert full.keys() == split.keys(), f"{full.keys()} vs {split.keys()}"
    for k in full:
        assert abs(full[k] - split[k]) < 1e-9, f"{k}: full {full[k]} vs micro-batched {split[k]}"
    # Independent count of clipped tokens with Python floats.
    _, policy, old, _, adv, mask = _toy_batch()
    with torch.no_grad():
        logp, _ = policy(0, N)
    low = high = 0
    for i in range(N):
        for t in range(LENGTHS[i]):
            r = math.exp(logp[i, t].item() - old[i, t].item())
            low += r < 0.8 and adv[i].item() < 0
            high += r > 1.28 and adv[i].item() > 0
    assert full["tokens"] == sum(LENGTHS), full
    assert full["clip_frac_low"] == pytest.approx(low / sum(LENGTHS)), (full, low)
    assert full["clip_frac_high"] == pytest.approx(high / sum(LENGTHS)), (full, high)
    assert full["clip_frac"] == pytest.approx((low + high) / sum(LENGTHS)), full
    assert set(full) >= {"kl", "entropy", "ratio_mean", "pg_loss"}, full.keys()
    assert full["kl"] > 0 and full["entropy"] > 0, full
