"""One-command GPU report: run every GPU check of this repository and write one markdown block.

    python benchmarks/gpu_report.py                      # all steps, 480 s budget -> gpu_report.md
    python benchmarks/gpu_report.py --dry-run            # print the commands; runs nothing, no GPU
    python benchmarks/gpu_report.py --only logprobs,generate --budget-s 300
    python benchmarks/gpu_report.py --skip base,train --out /tmp/r.md
    python benchmarks/gpu_report.py --allow-cpu          # CPU smoke run at tiny sizes (no GPU)

Set-up on a fresh GPU machine: the README's, with a CUDA build of torch, then `pip install -e
".[dev,plot]"`, and `pip install -e ".[bench]"` for the TRL comparison and the Liger rows of
the kernel benchmarks. This script installs nothing.

The steps, in order, each a subprocess (this Python, cwd = the repository root) with its own
timeout and log; one that fails or times out never stops the ones after it:

    kernels    pytest tests/test_kernels.py tests/test_kernel_selfcheck.py
               tests/test_distill_kernel.py (the compiled kernels, bf16 tests on CUDA)
    logprobs   benchmarks/logprobs.py: the fused log-prob kernel vs naive, torch.compile, the
               bare GEMM and Liger; shapes cut to fit, the default grid from --budget-s 900
    distill    benchmarks/distill_loss.py: the fused distillation loss (Triton, twin) vs the
               naive path and Liger's fused JSD, N 4096 d 896 V 151936 in bf16
    generate   benchmarks/generate.py, qwen2.5-0.5b in bf16 vs transformers (eager decode)
    grpo_step  benchmarks/grpo_step.py: one GRPO step vs TRL
    base       the gpu-countdown base model, built if .cache/ has no valid one (~7-11 min on
               one H100: on a fresh machine it times out, and its log shows how far it got)
    train      train_zero.py: the first 20 steps of configs/gpu-countdown.toml (skipped if
               `base` ran and did not finish)

Budget: --budget-s (default 480) is the total. Each step has a reserve (STEP_RESERVE_S, scaled
down to fit a smaller budget); a step may use the time left minus the reserves of the steps
after it, so time one does not use goes to the next; one left under 10 s is "skipped: budget
spent". A timed-out step gets SIGINT (its processes save what they can), then SIGKILL 10 s
later: the total can exceed the budget by a few seconds.

Output: progress lines, then one markdown block (gpu_report_format.py), also written to --out
after every step; full logs in <out stem>_logs/. Without CUDA the script refuses (exit 2)
unless --dry-run or --allow-cpu (the same pipeline on CPU at tiny sizes; no base build).

Exit status: 0 every step ran ok or was skipped; 1 some step failed or timed out (the report
is complete all the same); 2 bad arguments, no CUDA, or torch cannot be imported; 130 Ctrl-C
(the running step is stopped and the partial report is written).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_report_format.py, also on import

from gpu_report_format import (  # noqa: E402
    BASE_NAME,
    Outcome,
    Step,
    StepResult,
    display,
    git_commit,
    peak_tflops,
    probe_env,
    render_report,
    status_text,
    summarize_base,
    summarize_distill,
    summarize_generate,
    summarize_grpo_step,
    summarize_logprobs,
    summarize_pytest,
    summarize_train,
    versions_line,
)

ROOT = Path(__file__).resolve().parents[1]
PROG = "gpu_report.py"

DEFAULT_BUDGET_S = 480.0
MIN_STEP_S = 10.0  # a step left with less than this is skipped
KILL_GRACE_S = 10.0  # SIGINT, then SIGKILL this much later
FULL_LOGPROBS_GRID_BUDGET_S = 900.0  # from this budget on, logprobs.py runs its default grid

# benchmarks/generate.py's decode modes, one step each: "generate" (eager), "generate-<mode>".
# A mode added to generate.py later is one entry here, e.g. ("cudagraph", ("--decode",
# "cudagraph")), with DECODE_NOTE updated to match.
DECODE_MODES: tuple[tuple[str, tuple[str, ...]], ...] = (("eager", ()),)
DECODE_NOTE = "compiled and CUDA-graph decode: not built yet (eager only)"
GENERATE_STEPS = tuple("generate" if m == "eager" else f"generate-{m}" for m, _ in DECODE_MODES)
STEP_NAMES = ("kernels", "logprobs", "distill", *GENERATE_STEPS, "grpo_step", "base", "train")
# Seconds guaranteed to each step (before scaling to the budget); they sum to 450 of the 480.
STEP_RESERVE_S = {
    "kernels": 60.0,
    "logprobs": 80.0,
    "distill": 40.0,
    "generate": 70.0,
    "grpo_step": 60.0,
    "base": 30.0,
    "train": 110.0,
}
FULL_GRID_LOGPROBS_RESERVE_S = 240.0

NO_CUDA_MESSAGE = (
    "no CUDA device: this report needs a GPU "
    "(use --dry-run to see the commands, --allow-cpu for a CPU smoke run)"
)
TRAIN_STEPS = 20
BASE_CACHE = ROOT / ".cache" / f"{BASE_NAME}-base"

# ------------------------------------------------------------------------------- plan


def build_plan(info: dict, cpu: bool, budget_s: float, run_dir: Path) -> list[Step]:
    """Every step, in order. `cpu`: the --allow-cpu smoke sizes instead of the GPU ones."""
    py = sys.executable
    steps: list[Step] = []

    # 1. kernel tests
    kernels = Step(
        "kernels", "GPU kernel tests (bf16)",
        [py, "-m", "pytest", "-q", "tests/test_kernels.py", "tests/test_kernel_selfcheck.py",
         "tests/test_distill_kernel.py"],
        STEP_RESERVE_S["kernels"], summarize=summarize_pytest,
        notes=["on CUDA the `gpu`-marked tests run (bf16 Triton vs naive bf16, int64 offsets)"],
    )  # fmt: skip
    if cpu:
        kernels.cmd = [py, "-m", "pytest", "-q", "tests/test_kernel_selfcheck.py"]
        kernels.notes = ["CPU smoke: the self-check tests only (CI runs the full CPU suite)"]
    steps.append(kernels)

    # 2. kernel benchmark
    full = budget_s >= FULL_LOGPROBS_GRID_BUDGET_S
    lp_cmd = [py, "benchmarks/logprobs.py"]
    lp_notes = []
    if not full:
        lp_cmd += ["--n", "16384", "--h", "896", "4096"]
        lp_notes.append(
            "shapes reduced to N 16384 x H {896, 4096} (V 151936, bf16) to fit the budget; the "
            "default grid N {4096, 16384} x H {896, 1536, 4096} runs with --budget-s >= "
            f"{FULL_LOGPROBS_GRID_BUDGET_S:.0f}, or as `python benchmarks/logprobs.py`"
        )
    peak = peak_tflops(info.get("device"))
    if peak is not None:
        lp_cmd += ["--peak-tflops", f"{peak:g}"]
        lp_notes.append(f"--peak-tflops {peak:g}: dense bf16 peak of {info.get('device')}")
    else:
        lp_notes.append(
            f"device {info.get('device') or '(none)'} is not in the peak table (H100 SXM/H200 "
            "989, H100 PCIe 756): the %peak column uses logprobs.py's default 989"
        )
    if info.get("liger-kernel"):
        lp_notes.append(f"liger-kernel {info['liger-kernel']} installed: Liger's FLCE is a row")
    else:
        lp_notes.append("liger-kernel not installed: no Liger row (`pip install -e '.[bench]'`)")
    if cpu:
        lp_cmd = [py, "benchmarks/logprobs.py", "--cpu", "--n", "256", "--h", "64", "--v",
                  "1000", "--iters", "1"]  # fmt: skip
        lp_notes = ["CPU smoke: the PyTorch twin vs naive at a tiny shape"]
    steps.append(Step(
        "logprobs", "fused log-prob + entropy kernel vs naive, torch.compile, GEMM, Liger",
        lp_cmd, FULL_GRID_LOGPROBS_RESERVE_S if full else STEP_RESERVE_S["logprobs"],
        notes=lp_notes, summarize=summarize_logprobs,
    ))  # fmt: skip

    # 3. distillation loss benchmark
    dl_cmd = [py, "benchmarks/distill_loss.py", "--device", "cuda", "--dtype", "bfloat16",
              "--repeats", "3"]  # fmt: skip
    dl_notes = ["N 4096, d 896, V 151936 (a Qwen2.5-0.5B-sized head), forward KL; the GPU tiles "
                "of kernels/distill_triton.py are untuned (GPU_TILES)"]  # fmt: skip
    if cpu:
        dl_cmd = [py, "benchmarks/distill_loss.py", "--n", "64", "--d", "16", "--v", "500",
                  "--repeats", "1", "--variants", "twin", "naive"]  # fmt: skip
        dl_notes = ["CPU smoke: the PyTorch twin vs naive at a tiny shape"]
    steps.append(Step(
        "distill", "fused distillation loss (Triton, twin) vs naive and Liger's fused JSD",
        dl_cmd, STEP_RESERVE_S["distill"], notes=dl_notes, summarize=summarize_distill,
    ))  # fmt: skip

    # 4. generation, one step per entry of DECODE_MODES
    gen = [py, "benchmarks/generate.py", "--preset", "qwen2.5-0.5b", "--device", "cuda",
           "--dtype", "bfloat16", "--batch", "64", "--prompt-len", "128",
           "--new-tokens", "256"]  # fmt: skip
    if cpu:
        gen = [py, "benchmarks/generate.py", "--batch", "4", "--prompt-len", "8",
               "--new-tokens", "8", "--repeats", "1"]  # fmt: skip
    for (mode, flags), name in zip(DECODE_MODES, GENERATE_STEPS):
        steps.append(Step(
            name, f"generation vs transformers ({mode} decode, token identity asserted)",
            [*gen, *flags], STEP_RESERVE_S["generate"], summarize=summarize_generate,
            notes=[DECODE_NOTE] + (["CPU smoke: tiny-qwen2, fp32"] if cpu else []),
        ))  # fmt: skip

    # 5. GRPO step vs TRL
    grpo = [py, "benchmarks/grpo_step.py", "--device", "cuda"]
    grpo_notes = ['needs TRL (`pip install -e ".[bench]"`); without it the script exits 2']
    if cpu:
        grpo = [py, "benchmarks/grpo_step.py", "--device", "cpu", "--steps", "1", "--warmup", "0"]
    steps.append(Step(
        "grpo_step", "one GRPO step vs TRL", grpo, STEP_RESERVE_S["grpo_step"],
        notes=grpo_notes, summarize=summarize_grpo_step,
    ))  # fmt: skip

    # 6. the preset's base model, then its first 20 steps
    built = (BASE_CACHE / "manifest.json").is_file()
    steps.append(Step(
        "base", f"the {BASE_NAME} base model (built on first use)",
        [py, "-c", f'from grpo.bases import ensure_base; ensure_base("{BASE_NAME}")'],
        STEP_RESERVE_S["base"], summarize=summarize_base,
        skip=f"--allow-cpu: the {BASE_NAME} base is built on a GPU only" if cpu else None,
        notes=[
            f"{BASE_CACHE.relative_to(ROOT)}/ "
            + ("has a manifest (validated by the step)" if built else "does not exist yet"),
            "a build is ~7-11 min on one H100 by the configs/README.md estimate (corpus and "
            "tokenizer ~2-3 min, then 2,500 pretraining steps); a fresh machine cannot build "
            "it within the default budget: this step then times out and `train` is skipped; "
            f"build it alone with `python -m grpo.demo build --base {BASE_NAME}`, then run "
            "`python benchmarks/gpu_report.py --only base,train`",
        ],
    ))  # fmt: skip
    train = [py, "train_zero.py", "--config", "configs/gpu-countdown.toml",
             "--steps", str(TRAIN_STEPS), "--eval-every", str(TRAIN_STEPS), "--eval-n", "100",
             "--no-plot", "--out", str(run_dir)]  # fmt: skip
    train_notes = [
        f"--steps {TRAIN_STEPS}: the learning-rate schedule follows --steps (it is fixed when a "
        "run starts, grpo/trainer.py `schedule_steps`, and no flag sets it apart), so steps 1-10 "
        "(warm-up) equal the 160-step preset's and steps 11-20 decay to 5e-6 where the preset "
        "stays near 5e-5; the timings are unaffected, rewards after step 10 are not the preset's",
        f"held-out evaluation at steps 0 and {TRAIN_STEPS} on 100 problems (preset: 500); no plots",
    ]
    if cpu:
        train = [py, "train_zero.py", "--config", "configs/gpu-countdown.toml",
                 "--model", "demo-countdown", "--device", "cpu", "--steps", "2",
                 "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "32",
                 "--eval-n", "4", "--eval-every", "1000", "--no-plot",
                 "--out", str(run_dir)]  # fmt: skip
        train_notes = ["CPU smoke: 2 steps of 2 x 2 from the shipped demo-countdown base"]
    steps.append(Step(
        "train", f"the first {TRAIN_STEPS} steps of configs/gpu-countdown.toml", train,
        STEP_RESERVE_S["train"], notes=train_notes, summarize=summarize_train, needs="base",
        run_dir=run_dir,
    ))  # fmt: skip
    return steps


def select(steps: list[Step], only: list[str] | None, skip: list[str] | None) -> list[Step]:
    chosen = [s for s in steps if (not only or s.name in only) and s.name not in (skip or ())]
    return chosen


def reserve_scale(steps: Sequence[Step], budget_s: float) -> float:
    total = sum(s.reserve_s for s in steps if s.skip is None)
    return min(1.0, budget_s / total) if total > 0 else 1.0


def step_timeout(steps: Sequence[Step], i: int, remaining_s: float, budget_s: float) -> float:
    """Seconds step i may run: the time left minus the (scaled) reserves of the steps after it."""
    later = sum(s.reserve_s for s in steps[i + 1 :] if s.skip is None)
    return remaining_s - later * reserve_scale(steps, budget_s)


# ---------------------------------------------------------------------------- running


def _default_sigint() -> None:
    """In the child before exec, only when this process ignores SIGINT (started in the
    background by a shell): give the child SIGINT back, or a Python child would inherit the
    ignoring and never get the KeyboardInterrupt that lets it save what it has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT to the child's process group, then SIGKILL after grace_s if it is still there."""
    _kill_group(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


def execute(
    cmd: Sequence[str], timeout_s: float, log_path: Path, *, cwd: Path = ROOT,
    grace_s: float = KILL_GRACE_S,
) -> Outcome:  # fmt: skip
    """Run cmd in its own process group, teeing stdout and stderr to log_path as they come.

    On timeout or Ctrl-C the group gets SIGINT, then SIGKILL after grace_s; whatever the
    command leaves behind in its group (worker processes) is killed when it ends.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines reach the log before any kill
    lock = threading.Lock()
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {display(cmd)}\n# cwd {cwd}, timeout {timeout_s:.0f} s\n\n")
        log.flush()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,  # its own group, killed as one
            preexec_fn=_default_sigint if signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            else None,
        )  # fmt: skip

        def pump(stream, key: str) -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                with lock:
                    chunks[key].append(line)
                    log.write(line)
                    log.flush()
            stream.close()

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
        ]
        for t in pumps:
            t.start()
        timed_out = interrupted = False
        try:
            proc.wait(timeout=max(timeout_s, 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
        except KeyboardInterrupt:
            interrupted = True
        if timed_out or interrupted:
            try:
                _stop(proc, grace_s)
            except KeyboardInterrupt:  # a second Ctrl-C: no more grace
                interrupted = True
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
        _kill_group(proc.pid, signal.SIGKILL)  # leftovers of the step (none, usually)
        seconds = time.monotonic() - t0
        for t in pumps:
            t.join(timeout=5)
        with lock:
            end = ("timed out" if timed_out else "interrupted" if interrupted
                   else f"exit code {proc.returncode}")  # fmt: skip
            log.write(f"\n# {end} after {seconds:.1f} s\n")
            out, err = "".join(chunks["out"]), "".join(chunks["err"])
    return Outcome(proc.returncode, seconds, out, err, timed_out, interrupted)


def run_steps(
    steps: list[Step], budget_s: float, logs_dir: Path, *,
    execute: Callable[..., Outcome] = execute, clock: Callable[[], float] = time.monotonic,
    emit: Callable[[str], None] = print, after_step: Callable[[list[StepResult]], None] = None,
    min_step_s: float = MIN_STEP_S,
) -> list[StepResult]:  # fmt: skip
    """Run the steps in order; no step's failure, timeout or absence stops the others.

    Ctrl-C stops the running step and skips the rest ("interrupted").
    """
    results = [StepResult(s) for s in steps]
    done: dict[str, StepResult] = {}
    start = clock()
    stopped = False
    total = len(steps)
    for i, (step, res) in enumerate(zip(steps, results)):
        tag = f"[{i + 1}/{total}] {step.name}"
        try:
            if stopped:
                res.status, res.reason = "skipped", "interrupted (Ctrl-C)"
                continue
            reason = _skip_reason(step, done)
            remaining = budget_s - (clock() - start)
            timeout = step_timeout(steps, i, remaining, budget_s)
            if reason is None and timeout < min_step_s:
                reason = f"budget spent ({max(remaining, 0):.0f} s left of {budget_s:.0f} s)"
            if reason is not None:
                res.status, res.reason = "skipped", reason
                emit(f"{tag}: skipped: {reason}")
                continue
            res.timeout_s = timeout
            res.log = logs_dir / f"{i + 1:02d}_{step.name}.log"
            emit(f"{tag}: start (timeout {timeout:.0f} s, {clock() - start:.0f} s elapsed)")
            emit(f"    $ {display(step.cmd)}")
            out = execute(step.cmd, timeout, res.log)
            res.returncode, res.seconds = out.returncode, out.seconds
            res.stdout, res.stderr = out.stdout, out.stderr
            if out.interrupted:
                res.status, stopped = "interrupted", True
            elif out.timed_out:
                res.status = "timed out"
            else:
                res.status = "ok" if out.returncode == 0 else "failed"
            _keep_run_files(step, logs_dir, i)
            left = budget_s - (clock() - start)
            emit(f"{tag}: {status_text(res)} in {out.seconds:.1f} s "
                 f"({clock() - start:.0f} s elapsed, {max(left, 0):.0f} s left)")  # fmt: skip
        except KeyboardInterrupt:
            stopped = True
            if res.status == "pending":
                res.status = "interrupted"
        finally:
            done[step.name] = res
            if after_step is not None and (res.status != "pending" or stopped):
                after_step(results)
    return results


def _skip_reason(step: Step, done: dict[str, StepResult]) -> str | None:
    if step.skip:
        return step.skip
    needed = done.get(step.needs) if step.needs else None
    if needed is not None and needed.status in ("failed", "timed out", "interrupted"):
        return (f"the {needed.step.name} step did not finish ({status_text(needed)}), and this "
                f"step would have to do its work first")  # fmt: skip
    script = next((c for c in step.cmd[1:] if c.endswith(".py")), None)
    if script and not (ROOT / script).is_file():
        return f"{script} does not exist in this checkout"
    return None


def _keep_run_files(step: Step, logs_dir: Path, i: int) -> None:
    """Copy the run folder's small files (jsonl, json) next to the logs; checkpoints stay."""
    if step.run_dir is None or not step.run_dir.is_dir():
        return
    dest = logs_dir / f"{i + 1:02d}_{step.name}_run"
    dest.mkdir(parents=True, exist_ok=True)
    for f in step.run_dir.iterdir():
        if f.is_file() and f.suffix in (".jsonl", ".json"):
            shutil.copy2(f, dest / f.name)


# ------------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{PROG}: error: {message}\n")


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _steps(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEP_NAMES]
    if unknown or not names:
        what = f"unknown step {unknown[0]!r}" if unknown else "no step named"
        raise argparse.ArgumentTypeError(f"{what} (steps: {', '.join(STEP_NAMES)})")
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = _Parser(prog=PROG, description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=f"steps, in order: {', '.join(STEP_NAMES)}")  # fmt: skip
    p.add_argument("--out", default="gpu_report.md",
                   help="markdown file to write (default: gpu_report.md in the current folder); "
                   "logs go to <stem>_logs/ next to it")  # fmt: skip
    p.add_argument("--budget-s", type=_budget, default=DEFAULT_BUDGET_S,
                   help="total seconds for all steps (default: %(default).0f)")  # fmt: skip
    p.add_argument("--only", type=_steps, metavar="STEP[,STEP]", help="run only these steps")
    p.add_argument("--skip", type=_steps, metavar="STEP[,STEP]", help="leave these steps out")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands it would run and exit (no GPU needed)")  # fmt: skip
    p.add_argument("--allow-cpu", action="store_true",
                   help="without CUDA, run a CPU smoke version of every step (tiny sizes) "
                   "instead of refusing")  # fmt: skip
    args = p.parse_args(argv)
    chosen = [n for n in STEP_NAMES if (not args.only or n in args.only)
              and n not in (args.skip or ())]  # fmt: skip
    if not chosen:
        p.error("--only/--skip leave no step to run")
    if not args.out.strip() or Path(args.out).is_dir():
        p.error(f"--out {args.out!r}: give the markdown file to write, not a folder")
    return args


def print_plan(steps: Sequence[Step], info: dict, args: argparse.Namespace, cpu: bool) -> None:
    device = info.get("device") or "no CUDA device here"
    smoke = "; CPU smoke sizes (--allow-cpu)" if cpu else ""
    print(f"gpu_report plan (dry run, nothing is run): device {device}; "
          f"budget {args.budget_s:.0f} s{smoke}")  # fmt: skip
    scale = reserve_scale(steps, args.budget_s)
    for i, s in enumerate(steps):
        reserve = "skipped" if s.skip else f"reserve {s.reserve_s * scale:.0f} s"
        print(f"{i + 1}. {s.name} ({reserve}): {s.title}")
        print(f"   $ {display(s.cmd)}")
        reason = _skip_reason(s, {})
        if reason:
            print(f"   - skipped when run: {reason}")
        for n in s.notes:
            print(f"   - {n}")
    out = Path(args.out)
    print(f"report: {out}; logs: {out.with_name(out.stem + '_logs')}/")


def main(
    argv: Sequence[str] | None = None, *, probe: Callable[[], dict] = probe_env,
    execute: Callable[..., Outcome] = execute, clock: Callable[[], float] = time.monotonic,
) -> int:  # fmt: skip
    args = parse_args(argv)
    info = probe()
    if info.get("error") and not args.dry_run:
        print(f"{PROG}: {info['error']}", file=sys.stderr)
        return 2
    cuda = bool(info.get("cuda"))
    if not cuda and not args.dry_run and not args.allow_cpu:
        print(NO_CUDA_MESSAGE, file=sys.stderr)
        return 2
    cpu = not cuda and args.allow_cpu
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = Path(tempfile.gettempdir()) / f"gpu_report_train_{stamp}_{os.getpid()}"
    steps = select(build_plan(info, cpu, args.budget_s, run_dir), args.only, args.skip)
    if args.dry_run:
        print_plan(steps, info, args, cpu)
        return 0

    out = Path(args.out)
    logs_dir = out.with_name(out.stem + "_logs")
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
        out.touch()
    except OSError as e:
        print(f"{PROG}: error: cannot write the report to {out}: {e}", file=sys.stderr)
        return 2
    shown_logs = os.path.relpath(logs_dir) if not logs_dir.is_absolute() else str(logs_dir)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = clock()
    given = sys.argv[1:] if argv is None else list(argv)
    meta = {
        "device": info.get("device") or "CPU (no CUDA device)",
        "date": date,
        "versions": versions_line(info),
        "commit": git_commit(),
        "command": display([sys.executable, "benchmarks/gpu_report.py", *given]),
        "budget_s": args.budget_s,
        "wall_s": 0.0,
        "logs": shown_logs,
        "cpu": cpu,
    }

    def write(results: list[StepResult]) -> str:
        meta["wall_s"] = clock() - t0
        text = render_report(results, meta)
        out.write_text(text)
        return text

    print(f"gpu_report: {meta['device']}; {len(steps)} steps, budget {args.budget_s:.0f} s; "
          f"report {out}, logs {shown_logs}/", flush=True)  # fmt: skip
    emit = lambda line: print(line, flush=True)  # noqa: E731
    results = run_steps(steps, args.budget_s, logs_dir, execute=execute, clock=clock,
                        emit=emit, after_step=write)  # fmt: skip
    text = write(results)
    print()
    print(text, end="", flush=True)
    if any(r.status == "interrupted" for r in results):
        return 130
    return 1 if any(r.status in ("failed", "timed out") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
