"""What the one-command experiments share (grpo.distill, grpo.star, grpo.test_time_compute).

    check_settings(out, settings)          # OUT/settings.json: one comparison per folder
    run_stage(train_zero.main, flags, "train_zero.py", log)   # a stage, in this process
    stages = Stages(out)                   # OUT/stages.json: seconds of each finished stage
    path = train_stage(train_zero.main, "train_zero.py", out / "rl", flags, stages, "rl", log)
    sys.exit(cli("python -m grpo.star", run, args))           # one-line errors, rerun hint

Each experiment keeps every stage's output in its --out folder and reuses it
when the command runs again, so a stopped one continues. Its settings are
saved in OUT/settings.json; another command with other settings in the same
folder is refused with one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def check_settings(out: Path, settings: dict[str, Any], what: str = "a comparison") -> None:
    """ValueError if `out` holds an experiment run with other settings."""
    saved = Path(out) / "settings.json"
    if not saved.exists():
        return
    old = json.loads(saved.read_text())
    if old != settings:
        diff = ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in settings.items()
                         if old.get(k) != v)  # fmt: skip
        raise ValueError(f"--out {out} holds {what} with other settings ({diff}); use another "
                         "--out")  # fmt: skip


def run_stage(main, flags: list[str], what: str, log) -> None:
    """Run an entry point's main(flags) as one stage. Stopped by Ctrl-C or SIGTERM (it
    checkpointed): KeyboardInterrupt, so the experiment stops too; any other failure:
    RuntimeError."""
    log(f"=== {what} {' '.join(flags)}")
    rc = main(flags)
    if rc in (130, 143):
        raise KeyboardInterrupt
    if rc != 0:
        raise RuntimeError(f"{what} {' '.join(flags)} exited with {rc}")


def cli(prog: str, run, args, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Call run(args); a known error is one line on stderr (exit 2), Ctrl-C says how to go on."""
    try:
        run(args)
    except (ValueError, FileNotFoundError, RuntimeError, *errors) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: stopped; what was done is kept in --out: run the same command again "
              "to continue", file=sys.stderr)  # fmt: skip
        return 130
    return 0


class Stages:
    """OUT/stages.json: the wall seconds of each finished stage (kept when it is reused)."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / "stages.json"
        self.seconds: dict[str, float] = (json.loads(self.path.read_text())
                                          if self.path.is_file() else {})  # fmt: skip

    def done(self, name: str, seconds: float) -> None:
        from model.checkpoint import write_json_atomic

        self.seconds[name] = seconds
        write_json_atomic(self.path, self.seconds)


def train_stage(main, what: str, run: Path, flags: list[str], stages: Stages, name: str,
                log) -> Path:  # fmt: skip
    """A training stage (train_zero.py or train_sft.py main) into the run folder `run`:
    reused when it finished, resumed when it was stopped. Returns its final checkpoint."""
    import time

    from grpo.checkpoint import latest_checkpoint, resolve_model_path

    if name in stages.seconds and latest_checkpoint(run) is not None:
        log(f"=== {name}: {run} exists, reused")
        return resolve_model_path(run)
    flags = ["--out", str(run), *flags]
    if (run / "metrics.jsonl").exists():
        flags.append("--resume")
    t0 = time.perf_counter()
    run_stage(main, flags, what, log)
    stages.done(name, time.perf_counter() - t0)
    return resolve_model_path(run)
