"""What the one-command experiments share (grpo.distill, grpo.star, grpo.test_time_compute).

    check_settings(out, settings)          # OUT/settings.json: one comparison per folder
    run_stage(train_zero.main, flags, "train_zero.py", log)   # a stage, in this process
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
