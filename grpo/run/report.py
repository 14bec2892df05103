"""What a training run prints: its opening lines, a line per step and per evaluation,
the closing table, and its plots. Plain formatting over the trainer's rows; no torch.

    for line in start_lines(cfg, run_dir, device, nparams, n_heldout):
        log(line)
    log(step_line(row, cfg.steps, eta))      # row: a metrics.jsonl row plus its "_timing"
    log(eval_line(row))                      # row: an evaluation's metrics.jsonl row
    for line in summary_lines(history, n_heldout, run_dir / "metrics.jsonl"):
        log(line)                            # first evaluation against the last
    plot_run(run_dir, log)                   # run_dir/plots/, or a line saying why not

`refused(prog, e)` words a refused run for an entry point (train_zero.py,
train_sft.py): one line on stderr, and the exit code; `out_of_memory_exit`
does the same for running out of memory (with `resume_hint` for a trainer).

`say` is the trainer's default `log`: print and flush, so that a pipe or a
file sees each line at once. If the reader of a pipe goes away (`| head`, a
killed `tee`), the run goes on silently instead of dying: metrics.jsonl and
the checkpoints hold everything.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grpo.run.config import TrainConfig, config_warnings

# Held-out accuracy on fewer questions than this moves in steps of 2% or more.
MIN_HELDOUT = 50


def say(line: str) -> None:
    """print + flush; a closed pipe silences the console instead of stopping the run."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # Point stdout at /dev/null, so that later prints and the flush at exit
        # do not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def start_lines(
    cfg: TrainConfig, run_dir: Path, device: Any, nparams: int, n_heldout: int
) -> list[str]:
    """The run's first lines: where, what, how long, and any warnings about the settings."""
    lines = [
        f"run folder: {run_dir}  |  device {device}  |  model {cfg.model} "
        f"({nparams / 1e6:.2f}M params)  |  task {cfg.task}  |  {cfg.steps} steps of "
        f"{cfg.prompts_per_step}x{cfg.group_size}  |  held-out {n_heldout}"
    ]
    lines += [f"warning: {w}" for w in config_warnings(cfg)]
    if n_heldout < MIN_HELDOUT:
        lines.append(f"warning: held-out accuracy on {n_heldout} questions is noise (one "
                     f"question moves it by {100 / n_heldout:.0f}%); use at least "
                     f"{MIN_HELDOUT}")  # fmt: skip
    return lines


def step_line(r: dict[str, Any], steps: int, eta: float) -> str:
    t = r["_timing"]
    return (
        f"step {r['step']:>4}/{steps} | reward {r['reward']:.3f} acc "
        f"{r['accuracy']:.3f} fmt {r['format_rate']:.2f} | len {r['completion_len_mean']:5.1f}"
        f" | ent {r.get('entropy', 0):.3f} kl {r.get('kl', 0):.4f} clip "
        f"{r.get('clip_frac', 0):.3f} | gn {r['grad_norm']:.2f} lr {r['lr']:.1e} | "
        f"{_search(r, '')}rollout {t['rollout_s']:.1f}s update {t['update_s']:.1f}s | "
        f"eta {eta:.0f}s"
    )


def _search(r: dict[str, Any], prefix: str) -> str:
    """The search behaviour of a countdown row ("" for tasks that log none)."""
    if prefix + "tries_mean" not in r:
        return ""
    return (f"tries {r[prefix + 'tries_mean']:.2f} gave-up {r[prefix + 'gave_up_frac']:.2f} "
            f"false-yes {r[prefix + 'false_yes_frac']:.2f} recovered "
            f"{r[prefix + 'recovered_frac']:.2f} | ")  # fmt: skip


def eval_line(r: dict[str, Any]) -> str:
    return (
        f"eval @ step {r['step']}: accuracy {r['eval_accuracy']:.3f}  format "
        f"{r['eval_format_rate']:.3f}  length {r['eval_completion_len_mean']:.1f}"
        + (f"  | {_search(r, 'eval_')[:-3]}" if "eval_tries_mean" in r else "")
    )


def summary_lines(history: list[dict[str, Any]], n_heldout: int, metrics: Path) -> list[str]:
    """The first evaluation against the last (nothing with fewer than two)."""
    if len(history) < 2:
        return []
    a, b = history[0], history[-1]
    lines = [f"\n{'held-out (' + str(n_heldout) + ')':<22}{'base':>10}{'trained':>10}"]
    rows = [("eval_accuracy", "accuracy"), ("eval_format_rate", "format rate"),
            ("eval_completion_len_mean", "mean length"), ("eval_tries_mean", "tries"),
            ("eval_gave_up_frac", "gave up"), ("eval_false_yes_frac", "false yes"),
            ("eval_recovered_frac", "recovered")]  # fmt: skip
    for key, name in rows:  # the search rows only for countdown
        if key in a and key in b:
            lines.append(f"{name:<22}{a[key]:>10.3f}{b[key]:>10.3f}")
    lines.append(f"(step {a['step']} vs step {b['step']}; metrics in {metrics})")
    return lines


def plot_run(run_dir: Path, log: Callable[[str], None]) -> None:
    """Plot the run into run_dir/plots; without matplotlib, say so (the run is complete)."""
    try:
        from grpo.run.plot import plot_runs
    except ImportError as e:  # matplotlib missing: the run itself is complete
        log(f"plots skipped: {e}")
        return
    try:
        paths = plot_runs([run_dir], run_dir / "plots")
    except ImportError as e:
        log(f"plots skipped: {e}")
        return
    log(f"plots: {', '.join(str(p) for p in paths)}")


def out_of_memory(e: BaseException) -> str | None:
    """"out of memory (...)" if `e` is the device or the host running out of memory, else None.

    CUDA raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError
    ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes").
    """
    text = str(e)
    if isinstance(e, MemoryError):
        return "out of host memory"
    oom = type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError)
        and ("out of memory" in text.lower() or "can't allocate memory" in text)
    )
    if not oom:
        return None
    where = "CUDA" if "CUDA" in text else "host" if "DefaultCPUAllocator" in text else ""
    what = f"out of {where} memory".replace("  ", " ")
    if m := re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]i?B)", text):  # CUDA's wording
        return f"{what} (tried to allocate {m.group(1)})"
    if m := re.search(r"allocate (\d+) bytes", text):  # the CPU allocator's
        return f"{what} (tried to allocate {int(m.group(1)) / 2**30:.1f} GiB)"
    return what


def out_of_memory_exit(prog: str, e: BaseException, advice: str) -> int:
    """For an entry point's `except (RuntimeError, MemoryError) as e`: if `e` is running out
    of memory, one line, "PROG: error: out of ... memory (...); ADVICE", and exit code 1;
    any other error is raised again."""
    oom = out_of_memory(e)
    if oom is None:
        raise e
    print(f"{prog}: error: {oom}; {advice}", file=sys.stderr)
    return 1


def resume_hint(trainer) -> str:
    """"; the last checkpoint is <it> (...)" for a trainer's run folder, or "" if there is
    no trainer (it failed while starting) or its run has no checkpoint yet."""
    from grpo.run.checkpoint import latest_checkpoint

    try:
        last = latest_checkpoint(trainer.run_dir) if trainer is not None else None
    except OSError:
        last = None
    return f"; the last checkpoint is {last} (--resume continues from it)" if last else ""


# What an entry point refuses with one line: bad settings, paths and files (exit 2),
# and the file system's own failures, a full disk or a read-only folder (exit 1).
REFUSED = (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError)


def refused(prog: str, e: BaseException) -> int:
    """Print one line on stderr for `e` (one of REFUSED); return the exit code."""
    if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, FileExistsError)):
        where = f": {e.filename}" if e.filename else ""
        print(f"{prog}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    print(f"{prog}: error: {e}", file=sys.stderr)
    return 2
