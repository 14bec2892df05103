"""The model is proven against `transformers` on random weights (fp32, CPU, no downloads)."""

from __future__ import annotations

import json

import pytest
import torch

from grpo.run.imports import import_transformers
from model import (
    CheckpointError,
    KVCache,
    ModelConfig,
    Transformer,
    UnsupportedModelError,
    load_pretrained,
    save_pretrained,
)
from model.config import PRESETS
from tests.hf_models import KINDS, VOCAB, hf_model

ATOL = 1e-4  # max |logit difference| allowed against transformers in fp32


def _ids(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (B, T), generator=g)


@pytest.fixture(scope="module", params=KINDS)
def hf_and_ours(request, tmp_path_factory):
    kind = request.param
    hf = hf_model(kind)
    path = tmp_path_factory.mktemp(kind)
    hf.save_pretrained(path)
    ours = load_pretrained(path, dtype=torch.float32)
    return kind, hf, ours, path


def test_logits_match_transformers(hf_and_ours):
    kind, hf, ours, _ = hf_and_ours
    x = _ids(3, 40)
    with torch.no_grad():
        ref = hf(x).logits
        got = ours(x)
    assert got.shape == ref.shape == (3, 40, VOCAB)
    diff = (got - ref).abs().max().item()
    assert diff <= ATOL, f"{kind}: max |logit diff| {diff:.2e} > {ATOL}"
    assert ref.std().item() > 0.5, "reference logits are too flat for the comparison to mean much"


def test_config_fields_read_from_hf(hf_and_ours):
    kind, hf, ours, _ = hf_and_ours
    c = ours.config
    assert c.tie_word_embeddings == hf.config.tie_word_embeddings
    assert c.attention_bias == (kind.startswith("qwen2"))
    assert c.qk_norm == (kind == "qwen3")
    assert (c.rope_scaling is not None) == (kind == "llama3")
    if c.tie_word_embeddings:
        assert ours.lm_head.weight is ours.model.embed_tokens.weight


def test_save_ours_load_in_transformers(hf_and_ours, tmp_path):
    tf = import_transformers()

    kind, _, ours, _ = hf_and_ours
    save_pretrained(ours, tmp_path)
    reloaded = tf.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    x = _ids(2, 33, seed=1)
    with torch.no_grad():
        diff = (reloaded(x).logits - ours(x)).abs().max().item()
    assert diff <= ATOL, f"{kind}: transformers on our saved checkpoint differs by {diff:.2e}"
    # And our own loader round-trips exactly.
    again = load_pretrained(tmp_path, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(again(x), ours(x))


def test_sharded_checkpoint_written_by_transformers(tmp_path):
    hf = hf_model("qwen2_untied", seed=3)
    hf.save_pretrained(tmp_path, max_shard_size="60KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2, "expected several shards"
    ours = load_pretrained(tmp_path, dtype=torch.float32)
    x = _ids(2, 17)
    with torch.no_grad():
        diff = (hf(x).logits - ours(x)).abs().max().item()
    assert diff <= ATOL


def test_our_sharded_save_loads_in_transformers(tmp_path):
    tf = import_transformers()

    ours = Transformer(PRESETS["tiny"].with_(vocab_size=VOCAB)).init_weights(seed=1)
    save_pretrained(ours, tmp_path, max_shard_bytes=100_000)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    theirs = tf.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    x = _ids(2, 11)
    with torch.no_grad():
        assert (theirs(x).logits - ours(x)).abs().max().item() <= ATOL
        assert torch.equal(load_pretrained(tmp_path)(x), ours(x))


def test_load_in_requested_dtype(hf_and_ours):
    _, _, _, path = hf_and_ours
    m = load_pretrained(path, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in m.parameters())
    assert m.inv_freq.dtype == torch.float32, "rotary frequencies must stay fp32"
    assert m(_ids(1, 5)).dtype == torch.bfloat16


# ----------------------------------------------------------------------------- padding and cache
def _tiny(seed: int = 0, **changes) -> Transformer:
    cfg = PRESETS["tiny"].with_(vocab_size=VOCAB, **changes)
    return Transformer(cfg).init_weights(seed=seed, std=0.3).eval()


@pytest.mark.parametrize("changes", [{}, {"model_type": "qwen3", "qk_norm": True}])
def test_padded_rows_equal_rows_alone(changes):
    m = _tiny(**changes)
    lens = [5, 12, 1, 9]
    rows = [_ids(1, n, seed=i)[0] for i, n in enumerate(lens)]
    T = max(lens)
    # Left padding for some rows, right padding for others, garbage ids in the pads.
    ids = torch.randint(0, VOCAB, (len(rows), T))
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    spans = []
    for i, r in enumerate(rows):
        s = T - len(r) if i % 2 == 0 else 0
        ids[i, s : s + len(r)] = r
        mask[i, s : s + len(r)] = True
        spans.append((s, s + len(r)))
    with torch.no_grad():
        batched = m(ids, mask)
        for i, r in enumerate(rows):
            alone = m(r[None])[0]
            s, e = spans[i]
            diff = (batched[i, s:e] - alone).abs().max().item()
            assert diff <= 1e-5, f"row {i} (len {len(r)}) differs from alone by {diff:.2e}"
            assert torch.isfinite(batched[i]).all(), "padding positions must stay finite"


@pytest.mark.parametrize("kind", ["qwen2_untied", "qwen3", "llama3"])
def test_kv_cache_decoding_equals_full_forward(kind, tmp_path):
    hf = hf_model(kind, seed=5)
    hf.save_pretrained(tmp_path)
    m = load_pretrained(tmp_path, dtype=torch.float32)
    x = _ids(2, 30, seed=2)
    with torch.no_grad():
        full = m(x)
        cache = KVCache(m.config, 2, 40, "cpu", torch.float32)
        steps = [m(x[:, :12], None, cache)]  # prefill 12, then one token at a time
        for t in range(12, 30):
            steps.append(m(x[:, t : t + 1], None, cache))
    inc = torch.cat(steps, dim=1)
    diff = (inc - full).abs().max().item()
    assert diff <= ATOL, f"{kind}: cached decoding differs from the full pass by {diff:.2e}"


@pytest.mark.parametrize("shared", [0, 9])
@pytest.mark.parametrize("kind", KINDS)
def test_fast_decode_step_equals_each_row_alone(kind, shared, tmp_path):
    """The sampler's decode step (model.decode.Decoder) and the general cached forward,
    on rows that continue a shared prefix (KVCache(prefix=...)) after left-padded prompts
    of different lengths, give the logits of each row's own full forward pass."""
    from model.decode import Decoder

    hf = hf_model(kind, seed=7)
    hf.save_pretrained(tmp_path)
    m = load_pretrained(tmp_path, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    head = torch.randint(0, VOCAB, (shared,), generator=g)
    rests = [torch.randint(0, VOCAB, (n,), generator=g) for n in (4, 1, 7)]
    fed = torch.randint(0, VOCAB, (3, 5), generator=g)  # tokens fed one step at a time
    P = max(len(r) for r in rests)
    ids = torch.zeros(3, P, dtype=torch.long)
    mask = torch.zeros(3, P, dtype=torch.bool)
    for i, r in enumerate(rests):
        ids[i, P - len(r) :], mask[i, P - len(r) :] = r, True

    def cache_after_prompts():
        pre = None
        if shared:
            pre = KVCache(m.config, 1, shared, "cpu", torch.float32)
            m.hidden_states(head[None], None, pre)
        cache = KVCache(m.config, 3, P + 6, "cpu", torch.float32, prefix=pre)
        m(ids, mask, cache)
        return cache

    with torch.no_grad():
        fast_cache, slow_cache = cache_after_prompts(), cache_after_prompts()
        assert fast_cache.prefix_len == shared
        step = Decoder(m, shared + P + 6)
        fast = torch.stack([step(fed[:, t], fast_cache) for t in range(5)], 1)
        slow = torch.cat([m(fed[:, t : t + 1], None, slow_cache) for t in range(5)], 1)
        for i, r in enumerate(rests):
            alone = m(torch.cat([head, r, fed[i]])[None])[0, -5:]
            for name, got in (("fast step", fast[i]), ("cached forward", slow[i])):
                diff = (got - alone).abs().max().item()
                assert diff <= ATOL, f"{kind}, row {i}: {name} differs by {diff:.2e}"
    assert fast_cache.length == slow_cache.length == P + 5
    assert torch.equal(fast_cache.next_pos, slow_cache.next_pos)


@pytest.mark.parametrize("mode", ["bf16 weights", "bf16 autocast"])
def test_fast_decode_step_in_bf16_is_as_close_as_the_general_forward(mode, tmp_path):
    """In bf16 (weights, or autocast over fp32 weights as rollouts on CUDA run), the decode
    step's logits are about as far from the fp32 ones as the general forward's are."""
    from contextlib import nullcontext

    from model.decode import Decoder

    hf = hf_model("qwen2_untied", seed=9)
    hf.save_pretrained(tmp_path)
    ref = load_pretrained(tmp_path, dtype=torch.float32)
    m = load_pretrained(tmp_path, dtype=torch.bfloat16) if mode == "bf16 weights" else ref
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode == "bf16 autocast" else (
        nullcontext)  # fmt: skip
    ids, fed = _ids(4, 20, seed=4), _ids(4, 6, seed=5)

    def run(model, fast, dtype):
        cache = KVCache(model.config, 4, 30, "cpu", dtype)
        model(ids, None, cache)
        step = Decoder(model, 40) if fast else (lambda t, c: model(t[:, None], None, c)[:, -1])
        return torch.stack([step(fed[:, t], cache) for t in range(6)], 1).float()

    with torch.no_grad():
        exact = run(ref, False, torch.float32)
        with ctx():
            dtype = torch.bfloat16 if mode == "bf16 weights" else torch.float32
            fast, general = run(m, True, dtype), run(m, False, dtype)
    err_fast, err_general = (fast - exact).abs().max(), (general - exact).abs().max()
    assert 0 < err_general < 0.5 and err_fast <= 2 * err_general, (err_fast, err_general)


def test_autocast_cache_dtype_and_cast_once_weights_change_no_value(tmp_path):
    """Under bf16 autocast, generate keeps the KV cache in bf16 and the decode step casts
    its fused weights once: attention reads the cache in bf16 either way, so the logits
    equal those from an fp32 cache and from weights cast at every step, bit for bit."""
    from model.decode import Decoder

    hf = hf_model("qwen2_untied", seed=11)
    hf.save_pretrained(tmp_path)
    m = load_pretrained(tmp_path, dtype=torch.float32)
    ids, fed = _ids(3, 12, seed=6), _ids(3, 5, seed=7)
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    def run(cache_dtype, fast, cast_once):
        pre = KVCache(m.config, 1, 4, "cpu", cache_dtype)
        with amp():
            m.hidden_states(ids[:1, :4], None, pre)
            cache = KVCache(m.config, 3, 20, "cpu", cache_dtype, prefix=pre)
            out = [m(ids[:, 4:], None, cache)[:, -1]]
        if fast:
            with amp() if cast_once else torch.autocast("cpu", enabled=False):
                step = Decoder(m, 30)
        else:
            step = lambda t, c: m(t[:, None], None, c)[:, -1]  # noqa: E731
        with amp():
            out += [step(fed[:, t], cache) for t in range(5)]
        return torch.stack(out, 1)

    with torch.no_grad():
        for fast in (False, True):
            ref = run(torch.float32, fast, cast_once=False)
            got = run(torch.bfloat16, fast, cast_once=True)
            assert torch.equal(got, ref), f"fast={fast}: {(got - ref).abs().max():.2e}"


def test_cpu_bf16_attention_runs_in_fp32():
    """On CPU, bf16 attention is computed in fp32 from the same inputs (torch's CPU flash
    kernel is slower and less exact in bf16): output and input gradients equal the fp32
    computation's, rounded to bf16."""
    from model.transformer import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 7, 16, generator=g) for n in (6, 2, 2))
    mask = torch.ones(7, 7, dtype=torch.bool).tril()[None, None].expand(2, 1, 7, 7)
    up = torch.randn(2, 6, 7, 16, generator=g).bfloat16()
    leaves = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attention(*leaves, mask, gqa=True)
    y.backward(up)
    ref_in = [t.detach().float().requires_grad_() for t in leaves]
    ref = torch.nn.functional.scaled_dot_product_attention(*ref_in, attn_mask=mask,
                                                           enable_gqa=True)  # fmt: skip
    ref.backward(up.float())
    assert y.dtype == torch.bfloat16 and torch.equal(y, ref.bfloat16())
    for a, b in zip(leaves, ref_in):
        assert a.grad.dtype == torch.bfloat16 and torch.equal(a.grad, b.grad.bfloat16())


def test_cache_overflow_is_an_error():
    m = _tiny()
    cache = KVCache(m.config, 1, 4, "cpu", torch.float32)
    with pytest.raises(ValueError, match="overflow"):
        m(_ids(1, 5), None, cache)


# ----------------------------------------------------------------------------- bad input
def _write_tiny(tmp_path, **changes):
    m = _tiny(**changes)
    save_pretrained(m, tmp_path)
    return m


def test_unsupported_architecture(tmp_path):
    _write_tiny(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="gpt2"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("use_sliding_window", True, "use_sliding_window"),
        ("hidden_act", "gelu", "hidden_act"),
        ("rope_scaling", {"rope_type": "yarn", "factor": 4.0}, "yarn"),
        ("mlp_bias", True, "mlp_bias"),
    ],
)
def test_unsupported_features(tmp_path, key, value, match):
    _write_tiny(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match=match):
        load_pretrained(tmp_path)


def _rewrite_weights(path, edit):
    from safetensors.torch import load_file, save_file

    sd = load_file(path / "model.safetensors")
    edit(sd)
    save_file(sd, path / "model.safetensors")


def test_missing_tensor(tmp_path):
    _write_tiny(tmp_path)
    _rewrite_weights(tmp_path, lambda sd: sd.pop("model.layers.1.mlp.up_proj.weight"))
    match = r"model\.safetensors.*model\.layers\.1\.mlp\.up_proj"
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(tmp_path)


def test_unexpected_tensor(tmp_path):
    _write_tiny(tmp_path)
    _rewrite_weights(tmp_path, lambda sd: sd.update({"model.layers.7.extra": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"model\.layers\.7\.extra"):
        load_pretrained(tmp_path)


def test_wrong_shape(tmp_path):
    _write_tiny(tmp_path)
    name = "model.layers.0.self_attn.k_proj.weight"
    _rewrite_weights(tmp_path, lambda sd: sd.update({name: torch.zeros(3, 64)}))
    with pytest.raises(CheckpointError, match=r"k_proj\.weight.*\(3, 64\)"):
        load_pretrained(tmp_path)


def test_truncated_file(tmp_path):
    _write_tiny(tmp_path)
    f = tmp_path / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_pretrained(tmp_path)


def test_corrupt_header(tmp_path):
    _write_tiny(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pretrained(tmp_path)


def test_missing_config(tmp_path):
    _write_tiny(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)


def test_missing_weights_and_folder(tmp_path):
    _write_tiny(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "nope")


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of"):
        ModelConfig(num_heads=4, num_kv_heads=3)
    with pytest.raises(UnsupportedModelError, match="bert"):
        ModelConfig(model_type="bert")
    with pytest.raises(ValueError, match="required key 'vocab_size'"):
        ModelConfig.from_hf_config({"model_type": "llama", "num_attention_heads": 4})


def test_num_params_matches_module():
    for name, cfg in PRESETS.items():
        with torch.device("meta"):
            m = Transformer(cfg)
        assert cfg.num_params == sum(p.numel() for p in m.parameters()), name


def test_activation_checkpointing_gives_identical_gradients():
    m = _tiny(seed=4).train()
    x = _ids(2, 19, seed=4)
    grads, calls = [], []
    n_calls = [0]
    mlp = m.model.layers[0].mlp
    inner = mlp.forward

    def counting_forward(*a):  # forward hooks do not fire during recomputation
        n_calls[0] += 1
        return inner(*a)

    mlp.forward = counting_forward
    for ckpt in (False, True):
        m.zero_grad(set_to_none=True)
        m.gradient_checkpointing = ckpt
        n_calls[0] = 0
        m(x).float().logsumexp(-1).sum().backward()
        calls.append(n_calls[0])
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    assert calls == [1, 2], f"block forward calls {calls}: checkpointing must recompute in backward"
    for n in grads[0]:
        assert torch.equal(grads[0][n], grads[1][n]), f"checkpointing changed the gradient of {n}"
