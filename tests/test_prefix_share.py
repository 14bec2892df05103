"""The prefix-shared update equals the unshared one (model.Prefix, share_prompt).

A group's G completions share one prompt. The shared path runs the prompt once,
copies its keys and values to the G rows, and runs the completions on top; the
unshared path (share_prompt=False, the oracle) runs every row's whole sequence.
Forward values are compared in fp32, and so are gradients, to 1e-6 relative to
their largest entry; whole training steps are compared in fp64.
"""

from __future__ import annotations

import pytest
import torch

from grpo.loss import AGGREGATIONS
from grpo.rollout import Batch, completion_logprobs
from grpo.run.config import TrainConfig
from grpo.trainer import Trainer
from model import ModelConfig, Transformer

CONFIGS = {
    "qwen2": dict(attention_bias=True),
    "qwen3": dict(qk_norm=True, tie_word_embeddings=True),
}


def _model(kind: str) -> Transformer:
    cfg = ModelConfig(
        vocab_size=61, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4,
        num_kv_heads=2, head_dim=8, max_position_embeddings=64, **CONFIGS[kind],
    )  # fmt: skip
    return Transformer(cfg).init_weights(seed=3).float()


def _ragged_batch(seed: int = 0) -> Batch:
    """3 groups of 3: prompts of 7, 4 and 5 real tokens (left-padded), ragged completions."""
    g = torch.Generator().manual_seed(seed)
    G, P, Tc = 3, 7, 6
    prompt_lens = [7, 4, 5]
    completion_lens = [[6, 1, 3], [2, 6, 4], [5, 5, 1]]
    N = len(prompt_lens) * G
    ids = torch.randint(1, 61, (N, P + Tc), generator=g)
    attn = torch.zeros(N, P + Tc, dtype=torch.bool)
    for b, (pl, cls) in enumerate(zip(prompt_lens, completion_lens)):
        prompt = torch.randint(1, 61, (P,), generator=g)
        for j, cl in enumerate(cls):
            r = b * G + j
            ids[r, :P] = prompt
            attn[r, P - pl : P] = True
            attn[r, P : P + cl] = True
    return Batch(ids, attn, attn[:, P:].clone(), P, torch.arange(N) // G)


def _template_batches(seed: int = 0) -> tuple[Batch, Batch]:
    """The same 3 groups of 3 twice: prompts = a common 4-token prefix + rests of 3, 1 and 2
    tokens. First as pack lays them out when prompts share a prefix ([common | padding |
    rest | completion], shared_len 4), then plainly left-padded (shared_len 0)."""
    g = torch.Generator().manual_seed(seed)
    G, k, R, Tc = 3, 4, 3, 6
    common = torch.randint(1, 61, (k,), generator=g)
    rests = [torch.randint(1, 61, (n,), generator=g) for n in (3, 1, 2)]
    completion_lens = [[6, 1, 3], [2, 6, 4], [5, 5, 1]]
    N, P = len(rests) * G, k + R
    mid, left = (torch.zeros(N, P + Tc, dtype=torch.long) for _ in range(2))
    mid_m, left_m = (torch.zeros(N, P + Tc, dtype=torch.bool) for _ in range(2))
    for b, (rest, cls) in enumerate(zip(rests, completion_lens)):
        prompt = torch.cat([common, rest])
        for j, cl in enumerate(cls):
            r = b * G + j
            comp = torch.randint(1, 61, (cl,), generator=g)
            mid[r, :k], mid[r, P - len(rest) : P] = common, rest
            mid_m[r, :k] = mid_m[r, P - len(rest) : P] = True
            left[r, P - len(prompt) : P], left_m[r, P - len(prompt) : P] = prompt, True
            for ids, m in ((mid, mid_m), (left, left_m)):
                ids[r, P : P + cl], m[r, P : P + cl] = comp, True
    group = torch.arange(N) // G
    return (Batch(mid, mid_m, mid_m[:, P:].clone(), P, group, shared_len=k),
            Batch(left, left_m, left_m[:, P:].clone(), P, group))  # fmt: skip


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    scale = max(float(b.abs().max()), 1.0)
    err = float((a - b).abs().max())
    assert err <= 1e-6 * scale, f"{what}: max difference {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_prefix_then_completion_equals_one_forward(kind):
    model = _model(kind)
    batch = _ragged_batch()
    P = batch.prompt_len
    ids, attn = batch.input_ids, batch.attention_mask
    with torch.no_grad():
        full = model.hidden_states(ids, attn)
        prefix = model.prefix_states(ids[:, :P], attn[:, :P])
        comp = model.hidden_states(ids[:, P:], attn[:, P:], prefix=prefix)
    m = attn[:, P:]
    _close(comp[m], full[:, P:][m], "completion hidden states")
    _close(prefix.last, full[:, P - 1], "last prompt state")
    assert prefix.next_pos.tolist() == attn[:, :P].sum(1).tolist()


def test_prefix_and_cache_are_exclusive():
    from model import KVCache

    model = _model("qwen2")
    ids = torch.ones(2, 3, dtype=torch.long)
    prefix = model.prefix_states(ids)
    cache = KVCache(model.config, 2, 8, "cpu", torch.float32)
    with pytest.raises(ValueError, match="not both"):
        model.hidden_states(ids, None, cache, prefix)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize(
    "rows",
    [slice(None), [4, 0, 8, 1, 3], [2], [3, 4, 5]],
    ids=["all", "split-groups", "one-row", "one-group"],
)
def test_shared_logprobs_and_gradients_equal_unshared(kind, checkpointing, rows):
    model = _model(kind).train()
    model.gradient_checkpointing = checkpointing
    batch = _ragged_batch(1)
    rows = rows if isinstance(rows, slice) else torch.tensor(rows)
    out = {}
    for share in (True, False):
        model.zero_grad(set_to_none=True)
        logp, ent = completion_logprobs(model, batch, rows, 0.7, "torch", share_prompt=share)
        w = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # an arbitrary per-token weight
        ((w * logp).sum() + 0.3 * ent.sum()).backward()
        out[share] = logp.detach(), ent.detach(), {n: p.grad for n, p in model.named_parameters()}
    (lp_s, en_s, g_s), (lp_u, en_u, g_u) = out[True], out[False]
    _close(lp_s, lp_u, "log-probs")
    _close(en_s, en_u, "entropies")
    for name, grad in g_u.items():
        _close(g_s[name], grad, f"gradient of {name}")


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize(
    "rows", [slice(None), [4, 0, 8, 1, 3], [2]], ids=["all", "split-groups", "one-row"]
)
def test_common_template_prefix_shared_once_equals_left_padded_unshared(kind, rows):
    """The prompts' common prefix computed once, then each prompt's rest, then completions:
    equal to running every row whole in the plain left-padded layout."""
    model = _model(kind).train()
    templ, plain = _template_batches(2)
    rows = rows if isinstance(rows, slice) else torch.tensor(rows)
    out = {}
    for name, batch, share in (("shared", templ, True), ("oracle", plain, False),
                               ("mid-padded", templ, False)):  # fmt: skip
        model.zero_grad(set_to_none=True)
        logp, ent = completion_logprobs(model, batch, rows, 0.7, "torch", share_prompt=share)
        w = torch.linspace(-1, 1, logp.numel()).view_as(logp)
        ((w * logp).sum() + 0.3 * ent.sum()).backward()
        out[name] = logp.detach(), ent.detach(), {n: p.grad for n, p in model.named_parameters()}
    lp_u, en_u, g_u = out["oracle"]
    for name in ("shared", "mid-padded"):
        lp, en, g = out[name]
        _close(lp, lp_u, f"{name} log-probs")
        _close(en, en_u, f"{name} entropies")
        for n, grad in g_u.items():
            _close(g[n], grad, f"{name} gradient of {n}")


def test_pack_lays_a_common_prefix_out_first():
    from grpo.rollout import Rollout, pack
    from model.generate import MIN_SHARED_PREFIX

    k = MIN_SHARED_PREFIX + 2
    common = list(range(1, k + 1))
    prompts = [common + [40, 41, 42], common + [50]]
    comps = [[7, 8], [9], [6, 6, 6], [5]]
    ro = Rollout(examples=[{}, {}], prompt_ids=prompts, completion_ids=comps, texts=[""] * 4,
                 finish_reasons=["stop"] * 4, scores=[{}] * 4, rewards=torch.zeros(4),
                 group_size=2)  # fmt: skip
    b = pack(ro, 0, "cpu")
    assert b.shared_len == k and b.prompt_len == k + 3
    assert b.input_ids[:, :k].tolist() == [common] * 4
    assert b.input_ids[2, k:].tolist() == [0, 0, 50, 6, 6, 6]
    assert b.attention_mask[2].tolist() == [True] * k + [False, False] + [True] * 4
    # No common prefix worth sharing: plain left padding.
    short = Rollout(examples=[{}, {}], prompt_ids=[[1, 2, 3], [1, 2]], completion_ids=comps,
                    texts=[""] * 4, finish_reasons=["stop"] * 4, scores=[{}] * 4,
                    rewards=torch.zeros(4), group_size=2)  # fmt: skip
    assert pack(short, 0, "cpu").shared_len == 0


def _trainer(tmp_path, name: str, **changes) -> Trainer:
    cfg = TrainConfig(
        model="tiny", task="countdown", prompts_per_step=4, group_size=4, max_new_tokens=16,
        eval_n=8, eval_every=100, plot=False, entropy_coef=0.01, beta=0.05, mu=2,
        mini_batches=1, lr=3e-3, warmup_steps=1, steps=3, out=str(tmp_path / name), **changes,
    )  # fmt: skip
    t = Trainer(cfg, log=lambda *a: None)
    t.model.double()
    if t.ref is not None:
        t.ref.double()
    return t


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("micro", [8, 3], ids=["whole-groups", "split-groups"])
def test_training_step_equals_unshared(tmp_path, aggregation, micro):
    """One GRPO step (mu=2: pi_old; beta>0: the reference model) with and without sharing."""
    extra = {"scale_by_std": False} if aggregation == "dr_grpo" else {}
    runs = {}
    for share in (True, False):
        t = _trainer(tmp_path, f"{aggregation}-{micro}-{share}", aggregation=aggregation,
                     micro_batch_size=micro, share_prompt=share, **extra)  # fmt: skip
        row = t.train_step()
        runs[share] = row, {n: p.detach().clone() for n, p in t.model.named_parameters()}
        t.close()
    (row_s, w_s), (row_u, w_u) = runs[True], runs[False]
    assert row_s["reward"] == row_u["reward"], "the rollouts do not depend on share_prompt"
    for key in ("kl", "entropy", "grad_norm", "clip_frac_low", "clip_frac_high"):
        # The log-prob kernel works in fp32 even for an fp64 model: round-off ~1e-8.
        assert row_s[key] == pytest.approx(row_u[key], rel=1e-6, abs=1e-9), key
    for name, w in w_u.items():
        err = float((w_s[name] - w).abs().max())
        assert err < 1e-6, f"{name} differs after the step by {err:.2g}"
