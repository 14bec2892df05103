"""Where one GRPO step's time goes, op by op: torch's profiler on a rollout and on an update.

    python benchmarks/op_profile.py                        # the addition demo's base
    python benchmarks/op_profile.py --model runs/demo/checkpoints/step_000050   # after RL
    python benchmarks/op_profile.py --task countdown --top 15   # any train_zero.py flags

demo_profile.py says how much of the machine's matmul peak each phase of the
demo reaches; this says why, for one step. It builds train_zero.py's trainer
(its defaults and any of its flags, in a temporary run folder), runs --warmup
steps unprofiled, then one step whose rollout and update each run under
torch.profiler. For each phase it prints the wall time and the ops that took
the most time (self CPU time, as the profiler counts it), grouped:

- matmul: mm and addmm (the projections, the MLP, the LM head), with the
  GFLOP/s they reached (the profiler's FLOP count) against the machine's
  matmul peak, measured first (a square fp32 matmul, demo_profile.matmul_peak);
- bmm: batched matmuls, in the rollout the decode step's attention over the
  KV cache (model/decode.py);
- attention: torch's fused attention kernel, forward and backward (the
  update, the prefill);
- the rest: elementwise ops, reductions, copies, indexing, sampling.

The run's --out (a temporary folder), --steps, --eval-every, --save-every and
--plot are this script's; the other train_zero.py flags are passed on.

The profiler adds a few microseconds to every op, so the phase times here are
longer than in an unprofiled run, most for the rollout, whose ops are small.
The shares are the thing to read. CPU only (CUDA time is not collected).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo.run.cpu_env import set_cpu_env  # noqa: E402

set_cpu_env()  # before torch loads, as train_zero.py does

import torch  # noqa: E402
from demo_profile import matmul_peak  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from grpo.run.config import OneLineErrorParser, add_config_flags, config_from_args  # noqa: E402

GROUPS = ("matmul", "bmm", "attention", "rest")


def kind(name: str) -> str:
    """The group of an aten op (aten::matmul and aten::linear only dispatch to these)."""
    if name in ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear"):
        return "matmul"
    if name in ("aten::bmm", "aten::baddbmm"):
        return "bmm"
    if name.startswith("aten::_scaled_dot_product"):
        return "attention"
    return "rest"


def summarise(events, wall: float, peak: float, top: int) -> list[str]:
    """The lines printed for one phase, from the profiler's key_averages()."""
    rows = [e for e in events if e.self_cpu_time_total > 0 and e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in rows)  # microseconds
    lines = [f"  wall {wall:.3f} s; ops' self CPU time {total / 1e6:.3f} s",
             f"  {'op':<52} {'calls':>6} {'mean us':>8} {'share':>6} {'GFLOP/s':>8}"]  # fmt: skip
    for e in sorted(rows, key=lambda e: -e.self_cpu_time_total)[:top]:
        rate = ""
        if kind(e.key) in ("matmul", "bmm") and e.flops:
            rate = f"{e.flops / (e.self_cpu_time_total * 1e3):.0f}"
        lines.append(f"  {e.key[:52]:<52} {e.count:>6} {e.self_cpu_time_total / e.count:>8.1f} "
                     f"{e.self_cpu_time_total / total:>6.1%} {rate:>8}")  # fmt: skip
    for k in GROUPS:
        group = [e for e in rows if kind(e.key) == k]
        t = sum(e.self_cpu_time_total for e in group)
        calls = sum(e.count for e in group)
        if not calls:
            continue
        line = f"  {k:<10} {t / 1e6:7.3f} s {t / total:6.1%} of op time, {calls} calls"
        flops = sum(e.flops or 0 for e in group)
        if k in ("matmul", "bmm") and flops and t:
            rate = flops / (t * 1e3)
            line += f", {flops / 1e9:.1f} GFLOP at {rate:.0f} GFLOP/s ({rate / peak:.0%} of peak)"
        lines.append(line)
    return lines


class Profiled:
    """Wraps a callable: the call whose number is `at` (0-based) runs under the profiler."""

    def __init__(self, fn, at: int) -> None:
        self.fn, self.at, self.calls, self.result = fn, at, 0, None

    def __call__(self, *args, **kwargs):
        n, self.calls = self.calls, self.calls + 1
        if n != self.at:
            return self.fn(*args, **kwargs)
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            t0 = time.perf_counter()
            out = self.fn(*args, **kwargs)
            wall = time.perf_counter() - t0
        self.result = (prof.key_averages(), wall)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = OneLineErrorParser(prog="op_profile.py", description=__doc__.split("\n")[0])
    ap.add_argument("--warmup", type=int, default=1, help="unprofiled steps first (default: 1)")
    ap.add_argument("--top", type=int, default=12, help="ops listed per phase (default: 12)")
    add_config_flags(ap)
    ns = ap.parse_args(argv)
    if ns.warmup < 0 or ns.top < 1:
        ap.error("--warmup must be >= 0 and --top >= 1")
    mine = [f for f in ("out", "steps", "eval_every", "save_every", "plot") if hasattr(ns, f)]
    if mine:
        ap.error(f"--{mine[0].replace('_', '-')} is set by op_profile.py itself (a temporary run "
                 "folder, --warmup + 1 steps, no evaluation, checkpoints or plots)")  # fmt: skip
    import grpo.trainer as trainer_module
    from grpo.run.report import REFUSED, refused
    from grpo.trainer import Trainer
    from model.checkpoint import CheckpointError

    with tempfile.TemporaryDirectory(prefix="op-profile-") as tmp:
        ns.out = str(Path(tmp) / "run")
        ns.steps = ns.warmup + 1
        ns.plot, ns.eval_every, ns.save_every = False, 10**6, 0
        try:
            cfg, _ = config_from_args(ns)
        except ValueError as e:
            ap.error(str(e))
        try:
            trainer = Trainer(cfg, log=lambda *a, **k: None)
        except (*REFUSED, CheckpointError) as e:  # a bad --model: one line, as train_zero.py
            return refused("op_profile.py", e)
        peak = matmul_peak()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak "
              f"{peak:.0f} GFLOP/s (2048^2 fp32, best of 5)", flush=True)  # fmt: skip
        rollout = Profiled(trainer_module.rollout, ns.warmup)
        update = Profiled(trainer._update, ns.warmup)
        trainer_module.rollout, trainer._update = rollout, update
        try:
            for _ in range(ns.warmup + 1):
                row = trainer.train_step()
        except REFUSED as e:  # e.g. --logprob-backend triton without a GPU: one line
            return refused("op_profile.py", e)
        finally:
            trainer_module.rollout = rollout.fn
            trainer.close()
    print(
        f"model {cfg.model}, task {cfg.task}: step {row['step']}, {cfg.prompts_per_step} x "
        f"{cfg.group_size} completions, mean length {row['completion_len_mean']:.1f} tokens"
    )
    for name, p in (("rollout", rollout), ("update", update)):
        print(f"\n{name}")
        events, wall = p.result
        for line in summarise(events, wall, peak, ns.top):
            print(line)
    return 0


def _sigterm(_signum, _frame) -> None:
    print("\nop_profile.py: SIGTERM", file=sys.stderr)
    sys.exit(143)  # unwinds: the temporary run folder is removed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nop_profile.py: interrupted", file=sys.stderr)
        sys.exit(130)
