"""Where the demo's time goes: seconds, FLOPs and the fraction of the machine's matmul peak.

    python benchmarks/demo_profile.py                        # the default demo (addition)
    python benchmarks/demo_profile.py --task countdown       # any train_zero.py flags
    python benchmarks/demo_profile.py --steps 10 --eval-every 5

It measures the machine's matmul peak (a square fp32 matmul, the best of
several, in this process with torch's default threads), runs `train_zero.py`
with the flags given (in a child process, into a temporary run folder unless
--out is given), measures the peak again, and prints for each phase:

- seconds, summed from the run's timings.jsonl (rollout, update, eval) and
  "other", the rest of the child's wall time (start-up, model loading,
  checkpoints, plots);
- FLOPs: the matrix-multiply FLOPs the phase needed, counted from the actual
  prompt and completion lengths (model/flops.py: padding, finished rows that
  keep running and recomputation are not counted);
- achieved GFLOP/s and its fraction of the peak, the model FLOPs utilisation
  (MFU), whose shortfall includes every kind of waste.

Rollout throughput (generated tokens per second) is the median over steps of
timings.jsonl's tokens_per_s. Timings on a shared machine vary; compare
figures measured in one run on an idle machine, and read the peak measured
before and after the run to see whether the machine was disturbed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PHASES = (("rollout", "rollout_s", "rollout_flops"), ("update", "update_s", "update_flops"),
          ("eval", "eval_s", "eval_flops"))  # fmt: skip


class _Terminated(Exception):
    """SIGTERM while the child runs."""


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` (n x n) @ (n x n) fp32 matmuls."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def phase_totals(timings: list[dict]) -> dict[str, dict[str, float]]:
    """{phase: {"seconds", "flops"}} summed over timings.jsonl rows."""
    out = {}
    for name, s_key, f_key in PHASES:
        rows = [r for r in timings if s_key in r]
        out[name] = {"seconds": sum(r[s_key] for r in rows),
                     "flops": sum(r.get(f_key, 0) for r in rows)}  # fmt: skip
    return out


def report(timings: list[dict], wall: float, peak: float) -> list[str]:
    """The table's lines, from timings.jsonl rows, the run's wall time and the peak (GFLOP/s)."""
    totals = phase_totals(timings)
    other = wall - sum(t["seconds"] for t in totals.values())
    lines = [
        f"{'phase':<8} {'seconds':>8} {'share':>6} {'GFLOP':>9} {'GFLOP/s':>8} {'of peak':>8}",
    ]
    for name, t in totals.items():
        rate = t["flops"] / 1e9 / t["seconds"] if t["seconds"] > 0 else 0.0
        lines.append(f"{name:<8} {t['seconds']:>8.1f} {t['seconds'] / wall:>6.0%} "
                     f"{t['flops'] / 1e9:>9.1f} {rate:>8.1f} {rate / peak:>8.1%}")  # fmt: skip
    lines.append(f"{'other':<8} {other:>8.1f} {other / wall:>6.0%} {'-':>9} {'-':>8} {'-':>8}")
    flops = sum(t["flops"] for t in totals.values())
    lines.append(f"{'total':<8} {wall:>8.1f} {1:>6.0%} {flops / 1e9:>9.1f} "
                 f"{flops / 1e9 / wall:>8.1f} {flops / 1e9 / wall / peak:>8.1%}")  # fmt: skip
    tps = [r["tokens_per_s"] for r in timings if "tokens_per_s" in r]
    if tps:
        lines.append(f"rollout throughput: median {statistics.median(tps):,.0f} generated "
                     "tokens/s over the steps")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    out = None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            print("--out needs a folder", file=sys.stderr)
            return 2
        out = args[i + 1]
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="demo-profile-")
        out = str(Path(tmp.name) / "run")
        args += ["--out", out]
    if "--no-plot" not in args and "--plot" not in args:
        args.append("--no-plot")  # plotting is not part of training; say --plot to count it
    print(f"device: CPU, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    peak_before = matmul_peak()
    print(f"matmul peak before the run: {peak_before:.1f} GFLOP/s (2048^2 fp32, best of 5)",
          flush=True)  # fmt: skip
    cmd = [sys.executable, str(ROOT / "train_zero.py"), *args]
    print("running: " + " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy())

    def on_term(_signum, _frame):
        raise _Terminated

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        rc = child.wait()
    except (KeyboardInterrupt, _Terminated) as e:
        # Ctrl-C in a terminal reaches the child too. A signal sent to this process alone
        # is passed on if the child is still running 2 s later (if it had the signal
        # already, a second one stops it at once, without the save a temporary folder
        # does not need).
        term = isinstance(e, _Terminated)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM if term else signal.SIGINT)
            child.wait()
        where = f"{out} (temporary, removed; pass --out to keep a run)" if tmp else out
        print(f"\ndemo_profile.py: {'SIGTERM' if term else 'interrupted'}; no profile. "
              f"Run folder: {where}", file=sys.stderr)  # fmt: skip
        if tmp is not None:
            tmp.cleanup()
        return 143 if term else 130
    finally:
        signal.signal(signal.SIGTERM, old)
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"train_zero.py exited with status {rc}; no profile", file=sys.stderr)
        return rc
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    timings = [json.loads(line) for line in (Path(out) / "timings.jsonl").read_text().splitlines()]
    print()
    print(f"matmul peak after the run: {peak_after:.1f} GFLOP/s; the table uses {peak:.1f}")
    print(f"wall time of train_zero.py: {wall:.1f} s (child process, start-up included)")
    for line in report(timings, wall, peak):
        print(line)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
