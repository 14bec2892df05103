"""Sampler throughput: our `model.generate` vs `transformers` `generate`, same weights.

    python benchmarks/generate.py                      # CPU, tiny Qwen2 config, batch 32
    python benchmarks/generate.py --preset qwen2.5-0.5b --device cuda --dtype bfloat16 \
        --batch 64 --prompt-len 128 --new-tokens 256

Both run greedy decoding on the same random-weight Qwen2 model for the same
batch of prompts and the same number of new tokens (EOS ignored), and the
output tokens are asserted identical before any time is reported (in bf16 a
near-tie may flip an argmax; the script then reports the first mismatch and
compares speed only). Prints tokens/s for each and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import generate, load_pretrained  # noqa: E402

SHAPES = {
    # A tiny Qwen2 (qkv bias, GQA, tied embeddings) for CPU runs.
    "tiny-qwen2": dict(
        vocab_size=2048, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
    ),
    # Qwen2.5-0.5B's shapes (weights random).
    "qwen2.5-0.5b": dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
        rope_theta=1e6,
    ),
    "qwen2.5-1.5b": dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True,
        rope_theta=1e6,
    ),
}  # fmt: skip


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", choices=sorted(SHAPES), default="tiny-qwen2", help="model shape")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--batch", type=int, default=32, help="number of prompts")
    ap.add_argument("--prompt-len", type=int, default=32, help="prompt length (tokens)")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per prompt")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine (best taken)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()

    from grpo.run.imports import import_transformers

    tf = import_transformers()  # beside our kernels/: see grpo/run/imports.py

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    cfg = tf.Qwen2Config(**SHAPES[args.preset], max_position_embeddings=4096)
    hf = tf.Qwen2ForCausalLM(cfg).to(dtype)
    with torch.no_grad():  # larger-than-default weights so greedy paths are not degenerate
        for p in hf.parameters():
            if p.dim() == 2:
                p.normal_(0, 1.0 / p.shape[-1] ** 0.5)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = load_pretrained(d, device=args.device, dtype=dtype)
    hf = hf.to(args.device).eval()
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0

    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(1, cfg.vocab_size, (args.batch, args.prompt_len), generator=g)
    prompt_list = prompts.tolist()
    ids = prompts.to(args.device)
    mask = torch.ones_like(ids)

    def run_ours():
        out = generate(ours, prompt_list, max_new_tokens=args.new_tokens, temperature=0)
        return out.tokens

    def run_hf():
        with torch.no_grad():
            return hf.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens, do_sample=False,
            )[:, args.prompt_len :]  # fmt: skip

    a, b = run_ours(), run_hf()  # warm-up, and the equality check
    if torch.equal(a.cpu(), b.cpu()):
        check = "identical output tokens: yes"
    else:
        row, col = (a.cpu() != b.cpu()).nonzero()[0].tolist()
        msg = f"outputs differ (first at row {row}, token {col})"
        if dtype == torch.float32:
            raise SystemExit(f"FAIL: {msg} in fp32")
        check = f"identical output tokens: no, {msg}; near-ties in {args.dtype}"

    def best(fn):
        times = []
        for _ in range(args.repeats):
            sync(args.device)
            t0 = time.perf_counter()
            fn()
            sync(args.device)
            times.append(time.perf_counter() - t0)
        return min(times)

    t_ours, t_hf = best(run_ours), best(run_hf)
    n_tok = args.batch * args.new_tokens
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    threads = torch.get_num_threads()
    print(f"device: {dev} ({threads} threads)  torch {torch.__version__}  transformers "
          f"{tf.__version__}")  # fmt: skip
    print(f"model: {args.preset} random weights, {args.dtype}; batch {args.batch}, prompt "
          f"{args.prompt_len}, new tokens {args.new_tokens}, greedy, EOS ignored")  # fmt: skip
    print(check)
    print(f"{'engine':<24}{'seconds':>10}{'tokens/s':>12}")
    print(f"{'ours (model.generate)':<24}{t_ours:>10.3f}{n_tok / t_ours:>12.0f}")
    print(f"{'transformers generate':<24}{t_hf:>10.3f}{n_tok / t_hf:>12.0f}")
    print(f"ratio ours / transformers: {t_hf / t_ours:.2f}x")


if __name__ == "__main__":
    main()
