"""Benchmark: fused LM-head log-prob + entropy against the paths it replaces, forward + backward.

Every variant computes, for N tokens with hidden states h (N, H) and an LM head W (V, H),
log p(target) (and, except Liger, the entropy) and back-propagates random upstream gradients
into h and W:

    triton    kernels.logprobs_and_entropy(backend="triton"): logits never stored
    naive     logits = h @ W.T, log_softmax in fp32, gather, entropy (what a plain loop does)
    compile   the naive path under torch.compile
    liger     Liger-Kernel's fused linear cross-entropy, reduction="sum" (log-prob only; it has
              no entropy output), if liger_kernel is installed
    gemm      only the LM-head GEMMs, h @ W.T forward and its two backward GEMMs: the roofline

GPU (bf16, default shapes N in {4096, 16384} x (H, V) in {896, 1536, 4096} x {151936}):

    python benchmarks/logprobs.py
    python benchmarks/logprobs.py --n 4096 --h 896 --v 151936 --iters 20 --variants triton naive

Time is the median of --iters CUDA-event timings after --warmup runs. Memory is the peak of
torch.cuda.max_memory_allocated during one forward + backward minus what was allocated before
it (the inputs), so it includes the returned gradients. FLOPs are counted as 6 N H V for every
variant (forward GEMM plus the two backward GEMMs), so TFLOP/s compares time to solution; the
Triton path actually executes 10 N H V because its backward recomputes the logits twice.

CPU (no CUDA, or --cpu): a reduced fp32 comparison of the chunked PyTorch twin
(kernels/logprob_torch.py) against the naive path, default N=2048, H=256, V=32000:

    python benchmarks/logprobs.py --cpu

Each CPU variant runs in two fresh subprocesses. Memory is the growth of the process's resident
set during one forward + backward: Linux's peak-RSS counter (VmHWM) is reset after a warm-up run
and read afterwards, minus the RSS before; glibc is told to mmap every block of 64 KiB or more,
so that freed tensors leave the RSS instead of staying cached. Time is the median wall-clock
time of --iters runs after a warm-up, in a second process with the default allocator settings.
Use --threads 1 on a shared machine: with every core busy elsewhere, each parallel op of the
many small ones in the twin can wait milliseconds for a descheduled thread.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `kernels` is the checkout's

from kernels import logprobs_and_entropy  # noqa: E402
from kernels.logprob_torch import torch_logprobs_and_entropy  # noqa: E402

GPU_VARIANTS = ("triton", "naive", "compile", "liger", "gemm")
CPU_VARIANTS = ("twin", "naive")
GiB = 2**30
MiB = 2**20

# ------------------------------------------------------------------------------- variants
# Each builder takes the inputs and returns step(), one forward + backward returning the
# gradients (kept alive by the caller until memory has been read).


def naive_logprobs_and_entropy(hidden, weight, targets):
    logits = hidden @ weight.T  # (N, V) in the input dtype
    logp_all = F.log_softmax(logits.float(), dim=-1)  # (N, V) fp32
    logp = logp_all.gather(1, targets[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)
    return logp, entropy


_compiled_naive = None


def build(variant: str, hidden, weight, targets, g_lp, g_ent) -> Callable[[], tuple]:
    inputs = [hidden, weight]

    def backward_of(fn):
        def step():
            logp, entropy = fn(hidden, weight, targets)
            return torch.autograd.grad((logp * g_lp + entropy * g_ent).sum(), inputs)

        return step

    if variant == "triton":
        return backward_of(lambda h, w, y: logprobs_and_entropy(h, w, y, backend="triton"))
    if variant in ("naive", "twin"):
        return backward_of(
            naive_logprobs_and_entropy if variant == "naive" else torch_logprobs_and_entropy
        )
    if variant == "compile":
        global _compiled_naive
        if _compiled_naive is None:
            _compiled_naive = torch.compile(naive_logprobs_and_entropy)
        return backward_of(_compiled_naive)
    if variant == "liger":
        from grpo.run.imports import import_transformers

        import_transformers()  # Liger imports it: see grpo/run/imports.py
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum")

        def step():
            out = loss_fn(weight, hidden, targets)
            loss = out[0] if isinstance(out, tuple) else out
            return torch.autograd.grad(loss, inputs)

        return step
    if variant == "gemm":
        grad_logits = torch.randn(
            len(targets), len(weight), device=hidden.device, dtype=hidden.dtype
        )

        def step():
            return torch.autograd.grad(hidden @ weight.T, inputs, grad_logits)

        return step
    raise ValueError(f"unknown variant {variant!r}")


def make_inputs(n: int, h: int, v: int, dtype: torch.dtype, device: str):
    g = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, h, device=device, dtype=dtype, generator=g).requires_grad_()
    weight = (torch.randn(v, h, device=device, generator=g) * h**-0.5).to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), device=device, generator=g)
    g_lp = torch.randn(n, device=device, generator=g)
    g_ent = torch.randn(n, device=device, generator=g)
    return hidden, weight, targets, g_lp, g_ent


# ------------------------------------------------------------------------------------ GPU


def measure_gpu(step: Callable[[], tuple], iters: int, warmup: int) -> tuple[float, float]:
    """(median ms, peak extra GiB) of one forward + backward."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    grads = step()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - before) / GiB
    del grads
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        grads = step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
        del grads
    return statistics.median(times), peak


def _ratio(a: float, b: float | None) -> str:
    """a / b for a table cell; '-' when the reference b is missing (not run, or OOM)."""
    return f"{a / b:7.2f}" if b else f"{'-':>7}"


def run_gpu(args) -> None:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    variants = args.variants or GPU_VARIANTS
    if "liger" in variants:
        try:
            import liger_kernel  # noqa: F401
        except ImportError:
            print("liger: liger_kernel is not installed (pip install -e '.[bench]'); skipped")
            variants = [v for v in variants if v != "liger"]
    print(
        f"device: {torch.cuda.get_device_name()}, dtype {args.dtype}, median of {args.iters} "
        f"iters after {args.warmup} warm-up; FLOPs counted: 6 N H V; "
        f"peak {args.peak_tflops} TFLOP/s"
    )
    header = (
        f"{'N':>6} {'H':>5} {'V':>7}  {'variant':<8} {'ms':>9} {'GiB':>7} "
        f"{'t/naive':>7} {'t/gemm':>7} {'m/naive':>7} {'TFLOP/s':>8} {'%peak':>6}"
    )
    print(header)
    print("-" * len(header))
    for n in args.n:
        for h in args.h:
            for v in args.v:
                results = {}
                for variant in variants:
                    inputs = make_inputs(n, h, v, dtype, "cuda")
                    try:
                        step = build(variant, *inputs)
                        results[variant] = measure_gpu(step, args.iters, args.warmup)
                    except torch.cuda.OutOfMemoryError:
                        results[variant] = None
                    finally:
                        step = inputs = None
                        gc.collect()
                        torch.cuda.empty_cache()
                flops = 6 * n * h * v
                naive, gemm = results.get("naive"), results.get("gemm")
                for variant in variants:
                    prefix = f"{n:>6} {h:>5} {v:>7}  {variant:<8}"
                    if results[variant] is None:
                        print(f"{prefix} {'OOM':>9}")
                        continue
                    ms, gib = results[variant]
                    tflops = flops / (ms * 1e-3) / 1e12
                    print(
                        f"{prefix} {ms:9.2f} {gib:7.2f} "
                        f"{_ratio(ms, naive and naive[0])} {_ratio(ms, gemm and gemm[0])} "
                        f"{_ratio(gib, naive and naive[1])} {tflops:8.1f} "
                        f"{100 * tflops / args.peak_tflops:5.1f}%"
                    )


# ------------------------------------------------------------------------------------ CPU


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_growth_mib(step: Callable[[], object]) -> float:
    """MiB the resident set grows by while step() runs (its result kept alive until the
    peak is read): Linux's peak-RSS counter, VmHWM, reset first, minus the RSS before."""
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak RSS, to the current RSS
    result = step()
    mib = (_status_kib("VmHWM") - before) / 1024
    del result
    return mib


def cpu_child(args) -> None:
    """One CPU variant in this fresh process; prints a JSON line with its peak MiB or its ms."""
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = make_inputs(args.n[0], args.h[0], args.v[0], torch.float32, "cpu")
    step = build(args.cpu_child, *inputs)
    step()  # warm-up: thread pools, BLAS buffers
    if args.cpu_measure == "memory":
        print(json.dumps({"mib": rss_growth_mib(step)}))
    else:
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"ms": statistics.median(times)}))


def _cpu_subprocess(variant: str, measure: str, args) -> dict:
    cmd = [sys.executable, __file__, "--cpu-child", variant, "--cpu-measure", measure]
    cmd += ["--n", str(args.n[0]), "--h", str(args.h[0]), "--v", str(args.v[0])]
    cmd += ["--iters", str(args.iters), "--threads", str(args.threads or 0)]
    env = dict(os.environ)
    if measure == "memory":
        # Make glibc mmap (and unmap on free) every block >= 64 KiB, so RSS tracks live tensors.
        # Only for the memory run: the extra page faults would distort the timing.
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} ({measure}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cpu(args) -> None:
    n, h, v = args.n[0], args.h[0], args.v[0]
    threads = args.threads or torch.get_num_threads()
    print(
        f"CPU fp32, N={n} H={h} V={v}, {threads} threads, median of {args.iters} "
        "iters; memory = peak RSS growth during one forward + backward"
    )
    print(
        f"(the naive path's (N, V) fp32 logits alone are {n * v * 4 / MiB:.0f} MiB; "
        f"the gradients dh + dW are {(n * h + v * h) * 4 / MiB:.1f} MiB)"
    )
    results = {}
    for variant in args.variants or CPU_VARIANTS:
        memory = _cpu_subprocess(variant, "memory", args)
        results[variant] = {**memory, **_cpu_subprocess(variant, "time", args)}
    print(f"{'variant':<8} {'ms':>9} {'MiB':>9} {'t/naive':>8} {'m/naive':>8}")
    naive = results.get("naive")
    for variant, r in results.items():
        t_ratio = f"{r['ms'] / naive['ms']:8.2f}" if naive else f"{'-':>8}"
        m_ratio = f"{r['mib'] / naive['mib']:8.3f}" if naive else f"{'-':>8}"
        print(f"{variant:<8} {r['ms']:9.1f} {r['mib']:9.1f} {t_ratio} {m_ratio}")


# ----------------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", help="token counts (GPU default 4096 16384)")
    p.add_argument("--h", type=int, nargs="+", help="hidden sizes (GPU default 896 1536 4096)")
    p.add_argument("--v", type=int, nargs="+", help="vocab sizes (GPU default 151936)")
    p.add_argument("--iters", type=int, help="timed iterations (GPU default 10, CPU 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed GPU runs first (compile etc.)")
    p.add_argument(
        "--variants", nargs="+", help=f"subset of {GPU_VARIANTS} or, on CPU, {CPU_VARIANTS}"
    )
    p.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16", help="GPU input dtype")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="dense 16-bit peak for the %%peak column (H100 SXM: 989)",
    )
    p.add_argument("--cpu", action="store_true", help="run the CPU comparison even with CUDA")
    p.add_argument("--threads", type=int, help="CPU mode: torch threads (default: torch's)")
    p.add_argument("--cpu-child", help=argparse.SUPPRESS)  # internal: one CPU variant
    p.add_argument("--cpu-measure", choices=["memory", "time"], help=argparse.SUPPRESS)
    args = p.parse_args()

    on_gpu = torch.cuda.is_available() and not args.cpu and not args.cpu_child
    args.n = args.n or ([4096, 16384] if on_gpu else [2048])
    args.h = args.h or ([896, 1536, 4096] if on_gpu else [256])
    args.v = args.v or ([151936] if on_gpu else [32000])
    args.iters = args.iters or (10 if on_gpu else 3)
    if args.cpu_child:
        cpu_child(args)
    elif on_gpu:
        run_gpu(args)
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
