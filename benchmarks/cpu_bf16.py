"""bf16 on CPU: what `--dtype bfloat16` buys over fp32, op by op and per demo phase.

    python benchmarks/cpu_bf16.py                 # addition demo base, 2 threads
    python benchmarks/cpu_bf16.py --base runs/demo/checkpoints/step_000050

CPUs with native bf16 dot products (AVX512-BF16, AMX) multiply bf16 matrices
about twice as fast as fp32 ones; others emulate bf16 and are slower. This
prints, fp32 against bf16, best of `--repeats` in alternating order:

1. a matmul probe: 2048^3, and the demo update's MLP shape (6400 x 192 x 512);
2. attention forward + backward at the demo update's shape (64 rows, 6 query
   and 2 key heads, 100 completion tokens after 11 prompt tokens, head dim 32):
   torch's fused kernel in fp32, in bf16, and `model.transformer.attention` on
   bf16 inputs (which attends in fp32 on CPU: the bf16 kernel is the slow one);
3. a rollout (`generate`, B x G samples) in fp32 and under bf16 autocast;
4. an update-shaped forward + backward (64 x 180 tokens), fp32 and autocast.

Timings on a shared machine are only meaningful as these ratios, measured in
one run on idle cores.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo.run.cpu_env import set_cpu_env  # noqa: E402

set_cpu_env()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from rollouts import alternating, best_of, rollout_parser, rollout_setup  # noqa: E402

from model import generate  # noqa: E402
from model.transformer import attention  # noqa: E402

BF16 = torch.bfloat16


def amp(on: bool):
    return torch.autocast("cpu", dtype=BF16) if on else nullcontext()


def main(argv: list[str] | None = None) -> None:
    p = rollout_parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; best of {a.repeats}")  # fmt: skip

    print("\n1. matmul            fp32 GFLOP/s   bf16 GFLOP/s   bf16 / fp32")
    for m, k, n in ((2048, 2048, 2048), (6400, 192, 512)):
        x, w = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
        xb, wb = x.to(BF16), w.to(BF16)
        t, _ = best_of({"fp32": lambda x=x, w=w: x @ w, "bf16": lambda x=xb, w=wb: x @ w},
                       a.repeats)  # fmt: skip
        f = 2 * m * k * n / 1e9
        print(f"   {m}x{k}x{n:<6d} {f / t['fp32']:14.0f} {f / t['bf16']:14.0f} "
              f"{t['fp32'] / t['bf16']:12.2f}x")  # fmt: skip

    B, T, Sp = 64, 100, 11
    q, k, v = (torch.randn(B, n, S, 32, generator=g) for n, S in ((6, T), (2, Sp + T), (2, Sp + T)))
    mask = torch.ones(T, Sp + T, dtype=torch.bool).tril(Sp)[None, None].expand(B, 1, T, Sp + T)

    def fwd_bwd(fn, dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (q, k, v)]
        return lambda: fn(*leaves).float().sum().backward()

    sdpa = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask,  # noqa: E731
                                                          enable_gqa=True)  # fmt: skip
    ours = lambda *x: attention(*x, mask, True)  # noqa: E731
    t, _ = best_of({"fp32": fwd_bwd(sdpa, torch.float32), "bf16": fwd_bwd(sdpa, BF16),
                    "ours": fwd_bwd(ours, BF16)}, a.repeats)  # fmt: skip
    print(f"\n2. attention forward + backward, q {tuple(q.shape)}, k/v {tuple(k.shape)}:")
    print(f"   torch's kernel, fp32 inputs            {t['fp32'] * 1e3:8.2f} ms")
    print(f"   torch's kernel, bf16 inputs            {t['bf16'] * 1e3:8.2f} ms")
    print(f"   model.transformer.attention, bf16      {t['ours'] * 1e3:8.2f} ms   "
          f"(kernel bf16 / ours: {t['bf16'] / t['ours']:.2f}x)")  # fmt: skip

    model, _tok, prompts, kw = rollout_setup(a)

    def roll(on):
        with amp(on):
            return generate(model, prompts, **kw)

    t, outs = alternating(roll, a.repeats)
    n32, n16 = (int(outs[x].lengths.sum()) for x in (False, True))
    print(f"\n3. rollout, {a.base}, {a.prompts} x {a.group_size} samples up to "
          f"{a.max_new_tokens} tokens:")  # fmt: skip
    print(f"   fp32            {t[False]:.3f} s  {n32 / t[False]:8.0f} tokens/s")
    print(f"   bf16 autocast   {t[True]:.3f} s  {n16 / t[True]:8.0f} tokens/s   "
          f"(tokens/s bf16 / fp32: {n16 / t[True] / (n32 / t[False]):.2f}x)")  # fmt: skip

    ids = torch.randint(0, model.config.vocab_size, (64, 180), generator=g)

    def step(on):
        with amp(on):
            loss = model.hidden_states(ids).float().square().mean()
        loss.backward()

    t, _ = alternating(step, a.repeats)
    print("\n4. forward + backward of 64 x 180 tokens:")
    print(f"   fp32 {t[False]:.3f} s, bf16 autocast {t[True]:.3f} s   "
          f"(fp32 / bf16: {t[False] / t[True]:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
