"""Benchmark: the fused teacher-student distillation loss against the naive path, forward +
backward, peak memory and time.

Every variant computes sum_n w_n D_n, the per-token divergence of grpo/experiments/
distill_loss.py between a student (hidden states h_s (N, d), LM head W_s (V, d)) and a frozen
teacher (h_t, W_t), and back-propagates into h_s and W_s:

    twin    kernels.distill_torch.torch_fused_linear_divergence: rows in chunks, no (N, V) logits
    triton  kernels.distill_triton (CUDA only): the fused kernels, no (N, V) logits
    naive   both (N, V) logit matrices, the divergence on them, autograd (what a plain loop
            such as TRL's GKDTrainer does)
    liger   Liger-Kernel's LigerFusedLinearJSDLoss, if liger_kernel is installed

On CPU, fp32, the issue's shape by default (a Qwen2.5-0.5B-sized head):

    python benchmarks/distill_loss.py                        # N=4096, d=896, V=151936
    python benchmarks/distill_loss.py --n 512 --v 32000      # a quick look
    python benchmarks/distill_loss.py --device cuda --dtype bfloat16   # on a GPU (gpu_report.py)

Each variant runs in fresh subprocesses. Memory is the growth of the process's resident
set during one forward + backward (Linux's peak-RSS counter, VmHWM, reset after a warm-up,
minus the RSS before), with glibc told to mmap every block of 64 KiB or more so that freed
tensors leave the RSS. It includes the returned gradients (dW_s alone is V x d x 4 bytes).
Time is the best of --repeats runs after a warm-up, in a second process with the default
allocator. On CUDA, memory is torch.cuda's peak allocated bytes during one forward +
backward minus those allocated before, and time is synchronised wall time. Timings on a
shared machine are only meaningful as ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `kernels` is the checkout's
sys.path.insert(0, str(Path(__file__).resolve().parent))

from logprobs import rss_growth_mib  # noqa: E402  (the same memory measurement)

from grpo.experiments.distill_loss import divergence  # noqa: E402
from kernels.distill import fused_linear_divergence  # noqa: E402

MiB = 2**20
VARIANTS = ("twin", "naive", "triton", "liger")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_inputs(n: int, d: int, v: int, seed: int = 0, device: str = "cpu",
                dtype: torch.dtype = torch.float32):  # fmt: skip
    g = torch.Generator().manual_seed(seed)

    def put(x, grad=False):
        return x.to(device, dtype).requires_grad_(grad)

    h_s = put(torch.randn(n, d, generator=g), True)
    w_s = put(torch.randn(v, d, generator=g) / d**0.5, True)
    h_t = put(torch.randn(n, d, generator=g))
    w_t = put(torch.randn(v, d, generator=g) * 2 / d**0.5)
    weights = torch.full((n,), 1.0 / n, device=device)
    return h_s, w_s, h_t, w_t, weights


def build(variant: str, h_s, w_s, h_t, w_t, weights, beta: float, temperature: float):
    """A function that runs one forward + backward and returns the gradients."""
    if variant in ("twin", "triton"):
        backend = "torch" if variant == "twin" else "triton"

        def loss():
            return fused_linear_divergence(h_s, w_s, h_t, w_t, weights, beta, temperature,
                                           backend=backend)  # fmt: skip
    elif variant == "naive":
        def loss():
            with torch.no_grad():
                t = (h_t @ w_t.T).float()
            return (weights * divergence((h_s @ w_s.T).float(), t, beta, temperature)).sum()
    elif variant == "liger":
        from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss

        # Liger's loss has its own conventions for beta and the average (all labels valid
        # here): compare its memory and time, not its value.
        fn = LigerFusedLinearJSDLoss(beta=beta, temperature=temperature)
        labels = torch.zeros(h_s.shape[0], dtype=torch.long, device=h_s.device)

        def loss():
            return fn(h_s, w_s, h_t, w_t, labels)
    else:
        raise ValueError(variant)

    def step():
        h_s.grad = w_s.grad = None
        loss().backward()
        return h_s.grad, w_s.grad

    return step


def cuda_growth_mib(step) -> float:
    """Peak CUDA memory allocated during `step()`, minus what was allocated before, in MiB."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / MiB


def child(args) -> None:
    """One variant in this fresh process; prints a JSON line with its peak MiB or its ms."""
    cuda = args.device == "cuda"
    inputs = make_inputs(args.n, args.d, args.v, device=args.device, dtype=DTYPES[args.dtype])
    step = build(args.child, *inputs, args.beta, args.temperature)
    step()  # warm-up: thread pools, BLAS buffers, kernel compilation
    if args.measure == "memory":
        print(json.dumps({"mib": cuda_growth_mib(step) if cuda else rss_growth_mib(step)}))
    else:
        best = float("inf")
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        print(json.dumps({"s": best}))


def measure(variant: str, what: str, args) -> dict | str:
    cmd = [sys.executable, __file__, "--child", variant, "--measure", what, "--n", str(args.n),
           "--d", str(args.d), "--v", str(args.v), "--beta", str(args.beta),
           "--temperature", str(args.temperature), "--repeats", str(args.repeats),
           "--device", args.device, "--dtype", args.dtype]  # fmt: skip
    env = dict(os.environ)
    if what == "memory":
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # RSS tracks live tensors (not for timing)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        if variant == "liger" and "liger_kernel" in out.stderr:
            return "liger-kernel not installed"
        if variant == "triton" and "TRITON_INTERPRET" in out.stderr:
            return "needs CUDA (--device cuda)"
        if out.returncode < 0 or "MemoryError" in out.stderr or "out of memory" in out.stderr:
            return f"ran out of memory ({last[:120]})"
        return f"failed: {last[:200]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/distill_loss.py",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--n", type=int, default=4096, help="token rows (default 4096)")
    p.add_argument("--d", type=int, default=896, help="hidden size of both models (default 896)")
    p.add_argument("--v", type=int, default=151936, help="vocabulary (default 151936)")
    p.add_argument("--beta", type=float, default=0.0, help="0 forward KL, 1 reverse, JSD between")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2, help="timed runs, the best is kept")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="of both models' hidden states and heads (default float32)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS,
                   help="default: twin naive liger on CPU, and triton too on CUDA")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--measure", choices=["memory", "time"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("n", "d", "v", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if not 0 <= args.beta <= 1 or not args.temperature > 0:
        p.error("--beta must be in [0, 1] and --temperature > 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    if args.child:
        child(args)
        return 0
    if args.variants is None:
        args.variants = [v for v in VARIANTS if v != "triton" or args.device == "cuda"]
    n, d, v = args.n, args.d, args.v
    where = (f"CUDA ({torch.cuda.get_device_name()})" if args.device == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")  # fmt: skip
    memory = "peak allocated growth" if args.device == "cuda" else "peak RSS growth"
    print(f"{where}, {args.dtype}, N={n} d={d} V={v}, beta={args.beta}, T={args.temperature}; "
          f"memory = {memory} in one forward + backward; time = best of {args.repeats}")
    print(f"(one (N, V) fp32 logit matrix is {n * v * 4 / MiB:.0f} MiB; the gradients "
          f"dh_s + dW_s are {(n * d + v * d) * 4 / MiB:.0f} MiB)")  # fmt: skip
    rows = {}
    for variant in args.variants:
        mem = measure(variant, "memory", args)
        rows[variant] = (mem, measure(variant, "time", args) if isinstance(mem, dict) else mem)
        print(f"  measured {variant}", flush=True)
    naive = rows.get("naive")
    base = naive if naive and all(isinstance(x, dict) for x in naive) else None
    print(f"{'variant':<8} {'MiB':>9} {'s':>8} {'mem/naive':>10} {'time/naive':>11}")
    for variant, (mem, tim) in rows.items():
        if not isinstance(mem, dict):
            print(f"{variant:<8} {mem}")
            continue
        m_ratio = f"{mem['mib'] / base[0]['mib']:10.3f}" if base else f"{'-':>10}"
        t_ratio = f"{tim['s'] / base[1]['s']:11.2f}" if base else f"{'-':>11}"
        print(f"{variant:<8} {mem['mib']:9.0f} {tim['s']:8.2f} {m_ratio} {t_ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
