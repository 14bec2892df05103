"""The sampler: padding invariance, parity with transformers, seeding, stopping."""

from __future__ import annotations

import pytest
import torch

from model import Transformer, generate, load_pretrained, train_bpe_tokenizer
from model.config import PRESETS
from model.generate import MIN_SHARED_PREFIX, common_prefix_len, exponential_noise, sample_next
from tests.hf_models import VOCAB, hf_model

EOS = VOCAB - 1


def _prompts(lens, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB - 2, (n,), generator=g).tolist() for n in lens]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    hf = hf_model("qwen2_untied", seed=11)
    path = tmp_path_factory.mktemp("qwen")
    hf.save_pretrained(path)
    return hf, load_pretrained(path, dtype=torch.float32)


def test_greedy_padded_batch_equals_each_prompt_alone(qwen):
    _, m = qwen
    prompts = _prompts([3, 17, 8, 1, 11])
    batch = generate(m, prompts, max_new_tokens=20, temperature=0, pad_id=0)
    for i, p in enumerate(prompts):
        alone = generate(m, [p], max_new_tokens=20, temperature=0, pad_id=0)
        assert batch.tokens[i].tolist() == alone.tokens[0].tolist(), f"prompt {i} differs"


def test_greedy_equals_transformers_generate(qwen):
    hf, m = qwen
    prompts = _prompts([4, 13, 9])
    ours = generate(m, prompts, max_new_tokens=24, temperature=0, eos_ids=[EOS], pad_id=0)
    P = max(map(len, prompts))
    ids = torch.zeros(len(prompts), P, dtype=torch.long)
    mask = torch.zeros(len(prompts), P, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :] = torch.tensor(p)
        mask[i, P - len(p) :] = 1
    with torch.no_grad():
        ref = hf.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=24, do_sample=False,
            eos_token_id=EOS, pad_token_id=0,
        )[:, P:]  # fmt: skip
    for i in range(len(prompts)):
        n = int(ours.lengths[i])
        assert ours.tokens[i, :n].tolist() == ref[i, :n].tolist(), f"prompt {i} differs"
        assert (ref[i, n:] == 0).all() or n == ref.shape[1]


def test_groups_share_the_prompt_and_seeds_reproduce(qwen):
    _, m = qwen
    prompts = _prompts([5, 9])
    a = generate(m, prompts, max_new_tokens=12, num_samples=4, seed=123, return_logprobs=True)
    b = generate(m, prompts, max_new_tokens=12, num_samples=4, seed=123, return_logprobs=True)
    c = generate(m, prompts, max_new_tokens=12, num_samples=4, seed=124)
    assert a.tokens.shape == (8, 12)
    assert a.prompt_index.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.tokens, c.tokens), "different seeds gave identical samples"
    assert len({tuple(r) for r in a.tokens[:4].tolist()}) > 1, "a group's samples are all equal"
    # Greedy groups: every sample equals the single greedy completion.
    g = generate(m, prompts, max_new_tokens=12, num_samples=3, temperature=0)
    one = generate(m, prompts, max_new_tokens=12, temperature=0)
    assert torch.equal(g.tokens, one.tokens.repeat_interleave(3, 0))


def test_logprobs_equal_full_forward(qwen):
    _, m = qwen
    prompts = _prompts([6, 2])
    out = generate(m, prompts, max_new_tokens=10, num_samples=2, temperature=0.7, seed=0,
                   return_logprobs=True)  # fmt: skip
    for r in range(out.tokens.shape[0]):
        p = prompts[int(out.prompt_index[r])]
        seq = torch.tensor(p + out.tokens[r].tolist())[None]
        with torch.no_grad():
            logits = m(seq)[0, len(p) - 1 : -1].float() / 0.7
        ref = torch.log_softmax(logits, -1).gather(-1, out.tokens[r][:, None])[:, 0]
        assert torch.allclose(out.logprobs[r], ref, atol=1e-4), f"row {r}"


def test_eos_stops_rows_and_loop(qwen):
    _, m = qwen
    prompts = _prompts([4, 7, 5])
    free = generate(m, prompts, max_new_tokens=15, temperature=0)
    # Make the token each row emits at step 3 an EOS: rows end there (length 4).
    eos = free.tokens[:, 3].tolist()
    out = generate(m, prompts, max_new_tokens=15, temperature=0, eos_ids=eos, pad_id=0)
    for i in range(3):
        row = free.tokens[i].tolist()
        first = min(t for t in range(15) if row[t] in eos)
        assert int(out.lengths[i]) == first + 1
        assert out.tokens[i, : first + 1].tolist() == row[: first + 1]
        assert (out.tokens[i, first + 1 :] == 0).all(), "tokens after EOS must be padding"
    assert out.finish_reasons == ["stop"] * 3
    assert out.steps <= 8, "the loop should end soon after every row finished"
    assert free.finish_reasons == ["length"] * 3 and (free.lengths == 15).all()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_dropping_finished_rows_changes_nothing(qwen, temperature, monkeypatch):
    """Compaction (the cache keeps only unfinished rows) gives the same tokens and log-probs."""
    from model.transformer import KVCache

    _, m = qwen
    sizes = []
    select = KVCache.select

    def counted(cache, rows):
        sizes.append(len(rows))
        return select(cache, rows)

    monkeypatch.setattr(KVCache, "select", counted)
    prompts = _prompts([4, 7, 5, 9, 3, 6])
    # Frequent EOS tokens: rows finish at many different steps, so the cache is compacted
    # several times (at most half the running rows left at a check) before the end.
    eos = list(range(0, VOCAB, 7))
    kw = dict(max_new_tokens=40, num_samples=4, temperature=temperature, eos_ids=eos, pad_id=0,
              seed=3, return_logprobs=True, check_every=2)  # fmt: skip
    on, off = generate(m, prompts, compact=True, **kw), generate(m, prompts, compact=False, **kw)
    assert len(sizes) >= 2 and sizes == sorted(sizes, reverse=True), sizes
    assert len(set(on.lengths.tolist())) > 3, "rows should finish at different steps"
    assert torch.equal(on.tokens, off.tokens) and torch.equal(on.lengths, off.lengths)
    # A smaller batch may round differently in the last bits (the GEMM shapes change).
    assert torch.allclose(on.logprobs, off.logprobs, atol=1e-5, rtol=0)
    assert on.finish_reasons == off.finish_reasons and on.steps == off.steps


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_shared_prompt_prefix_changes_nothing(qwen, temperature, monkeypatch):
    """Prefilling the prompts' common prefix once gives the same tokens and log-probs."""
    _, m = qwen
    calls = []
    run = Transformer._run  # what every forward entry point runs

    def spy(self, ids, mask, cache, prefix, present):
        calls.append(tuple(ids.shape))
        return run(self, ids, mask, cache, prefix, present)

    monkeypatch.setattr(Transformer, "_run", spy)
    head = _prompts([MIN_SHARED_PREFIX + 3], seed=5)[0]
    tails = _prompts([1, 6, 0, 4], seed=6)  # one prompt is the common prefix alone
    prompts = [head + t for t in tails]
    assert common_prefix_len(prompts) == len(head)
    eos = list(range(0, VOCAB, 9))
    kw = dict(max_new_tokens=24, num_samples=3, temperature=temperature, eos_ids=eos, pad_id=0,
              seed=4, return_logprobs=True)  # fmt: skip
    on = generate(m, prompts, share_prefix=True, **kw)
    # The prefix ran once as a batch of one; the shortest prompt keeps one token to prefill.
    assert calls[0] == (1, len(head) - 1)
    calls.clear()
    off = generate(m, prompts, share_prefix=False, **kw)
    assert calls[0] == (len(prompts), max(map(len, prompts)))
    assert torch.equal(on.tokens, off.tokens) and torch.equal(on.lengths, off.lengths)
    assert torch.allclose(on.logprobs, off.logprobs, atol=1e-5, rtol=0)
    assert on.finish_reasons == off.finish_reasons
    # Too short a common prefix is not split off.
    calls.clear()
    generate(m, [head[:5] + [1], head[:5] + [2, 3]], max_new_tokens=2, temperature=0)
    assert calls[0] == (2, 7)


def test_logit_filter_constrains_every_step(qwen):
    """A logit filter sees the tokens generated so far; a banned token never appears."""
    _, m = qwen
    prompts = _prompts([4, 7])
    free = generate(m, prompts, max_new_tokens=12, temperature=0)
    banned = int(free.tokens[0, 2])  # a token greedy decoding does pick
    seen = []

    def ban(logits, generated):
        seen.append(generated.shape[1])
        logits = logits.clone()
        logits[:, banned] = float("-inf")
        return logits

    out = generate(m, prompts, max_new_tokens=12, temperature=0, logit_filter=ban)
    assert seen == list(range(12))
    assert banned not in out.tokens.flatten().tolist()
    assert out.tokens[0, :2].tolist() == free.tokens[0, :2].tolist(), "same until the ban bites"


@pytest.fixture(scope="module")
def tok():
    texts = ["<think> 12 + 34 = 46 </think> <answer> 46 </answer>", "hello world"] * 50
    return train_bpe_tokenizer(texts, vocab_size=300, atomic_strings=["</answer>"])


def test_stop_strings_independent_of_check_interval(tok):
    torch.manual_seed(0)
    m = Transformer(PRESETS["tiny"].with_(vocab_size=tok.vocab_size)).init_weights(std=0.5)
    prompts = [tok.encode("<think> 1"), tok.encode("hello")]
    stops = ["4", "</answer>", "d"]
    outs = [
        generate(m, prompts, max_new_tokens=30, num_samples=6, seed=3, eos_ids=[0],
                 stop_strings=stops, tokenizer=tok, check_every=k)  # fmt: skip
        for k in (1, 4, 7, 64)
    ]
    for o in outs[1:]:
        assert torch.equal(o.tokens, outs[0].tokens) and torch.equal(o.lengths, outs[0].lengths)
        assert o.finish_reasons == outs[0].finish_reasons
    o = outs[0]
    n_stopped = 0
    for r, ids in enumerate(o.completions()):
        text = tok.decode(ids)
        hits = [text.find(s) + len(s) for s in stops if s in text]
        if o.finish_reasons[r] == "stop" and ids[-1] != 0:
            n_stopped += 1
            # The text ends right after the first stop string; no prefix contains one.
            assert hits and any(text.endswith(s) for s in stops), text
            assert not any(s in tok.decode(ids[:-1]) for s in stops), text
        elif o.finish_reasons[r] == "length":
            assert not hits, f"row {r} contains a stop string but was not stopped: {text!r}"
    assert n_stopped > 0, "the test never exercised a stop string"


def test_sampler_distribution_top_k_top_p():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    tok, lp = sample_next(logits, 1.0, None, None, g)
    freq = torch.bincount(tok, minlength=5).float() / len(tok)
    p = torch.softmax(logits[0], -1)
    assert (freq - p).abs().max() < 0.015, f"sample frequencies {freq} vs probabilities {p}"
    assert torch.allclose(lp, p.log()[tok])
    tok, _ = sample_next(logits, 1.0, 2, None, g)
    assert set(tok.tolist()) == {0, 1}
    p2 = torch.softmax(logits[0, :2], -1)
    freq2 = torch.bincount(tok, minlength=2).float() / len(tok)
    assert (freq2 - p2).abs().max() < 0.015, "top-k must renormalise over the kept tokens"
    # top_p = 0.6: token 0 has p = 0.51 < 0.6, so tokens 0 and 1 are kept.
    tok, _ = sample_next(logits, 1.0, None, 0.6, g)
    assert set(tok.tolist()) == {0, 1}
    tok, _ = sample_next(logits, 1.0, None, 0.3, g)
    assert set(tok.tolist()) == {0}
    tok, _ = sample_next(logits, 0.0, None, None, g)
    assert (tok == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_noise_is_torchs_exponential_bit_for_bit(seed):
    """The sampler's CPU noise (float64 uniforms, log1p over the whole tensor) is what
    `exponential_` draws from the same generator, and leaves it in the same state: the
    random stream, and every sampled output, are unchanged by the faster draw."""
    shape = (1000, 1009)
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    ref = torch.empty(shape).exponential_(1.0, generator=g1)
    got = exponential_noise(shape, torch.device("cpu"), g2)
    assert got.dtype == torch.float32 and torch.equal(got, ref)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_bad_arguments(qwen):
    _, m = qwen
    with pytest.raises(ValueError, match="empty"):
        generate(m, [[]], max_new_tokens=3)
    with pytest.raises(ValueError, match="tokenizer"):
        generate(m, [[1]], max_new_tokens=3, stop_strings=["x"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, [[1]], max_new_tokens=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_a_slice_of_the_batch_samples_what_the_whole_batch_does(qwen, temperature):
    """noise_rows: prompts generated in contiguous slices (as data-parallel ranks do) give
    the tokens of the whole batch, for every way of cutting it."""
    _, m = qwen
    prompts = _prompts([3, 9, 5, 1, 7], seed=11)
    eos = list(range(0, VOCAB, 7))
    kw = dict(max_new_tokens=20, num_samples=3, temperature=temperature, eos_ids=eos, pad_id=0,
              seed=8, return_logprobs=True)  # fmt: skip
    whole = generate(m, prompts, **kw)
    N = len(prompts) * 3
    for cuts in ([0, 2, 5], [0, 1, 4, 5], [0, 3, 5]):
        parts = [generate(m, prompts[a:b], noise_rows=(3 * a, N), **kw)
                 for a, b in zip(cuts, cuts[1:])]  # fmt: skip
        T = whole.tokens.shape[1]
        tokens = torch.cat([torch.nn.functional.pad(p.tokens, (0, T - p.tokens.shape[1]))
                            for p in parts])  # fmt: skip
        assert torch.equal(tokens, whole.tokens), cuts
        assert torch.equal(torch.cat([p.lengths for p in parts]), whole.lengths)
        logps = torch.cat([torch.nn.functional.pad(p.logprobs, (0, T - p.logprobs.shape[1]))
                           for p in parts])  # fmt: skip
        assert torch.allclose(logps, whole.logprobs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="do not fit"):
        generate(m, prompts[:2], noise_rows=(10, N), **kw)


def test_fast_decode_is_token_identical_to_the_plain_forward(addition_base):
    """Greedy on the shipped demo base: the sampler's fast step over a shared template
    prefix gives the tokens of the plain path (every prompt prefilled whole, every step
    the general forward), on 96 held-out R1-Zero prompts. No EOS: all 128 tokens."""
    m, tok, task = addition_base
    prompts = [tok.encode(task.prompt(ex)) for ex in task.heldout(96)]
    kw = dict(max_new_tokens=128, temperature=0, pad_id=tok.pad_id)
    fast = generate(m, prompts, **kw)
    plain = generate(m, prompts, fast=False, share_prefix=False, **kw)
    assert fast.steps == 128 and len(set(map(tuple, fast.tokens.tolist()))) > 50
    assert torch.equal(fast.tokens, plain.tokens)

