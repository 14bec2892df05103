"""What the one-command experiments share (grpo.distill, grpo.star, grpo.r1_pipeline,
grpo.test_time_compute).

    check_settings(out, settings)          # OUT/settings.json: one comparison per folder
    run_stage(train_zero.main, flags, "train_zero.py", log)   # a stage, in this process
    stages = Stages(out)                   # OUT/stages.json: seconds of each finished stage
    path = train_stage(train_zero.main, "train_zero.py", out / "rl", flags, stages, "rl", log)
    out = prepare(args.out, settings)      # the --out folder, created, its settings saved
    sys.exit(cli("python -m grpo.star", run, build_parser(), argv))   # one-line errors
    rows = read_rows(out / "evals.jsonl", "model")  # append with grpo.runfolder.JsonlWriter
    lines = markdown_table(["model", "accuracy"], [["base", "0.002"]])   # results as Markdown
    model, tok, task = addition_policy(path, seed)            # a model of an experiment
    [res] = heldout_eval(path, n, max_new_tokens, seed, log)  # the same held-out questions

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


def at_least(a, low: int, *names: str) -> None:
    """ValueError naming the first flag among `names` whose value is below `low`."""
    for name in names:
        if getattr(a, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got "
                             f"{getattr(a, name)}")  # fmt: skip


def prepare(out: str | Path, settings: dict[str, Any], what: str = "a comparison") -> Path:
    """The --out folder, created, holding these settings (a folder with others is refused)."""
    from model.checkpoint import write_json_atomic

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    check_settings(out, settings, what)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "settings.json", settings)
    return out


def read_rows(file: Path, key) -> dict[Any, dict[str, Any]]:
    """The rows of an append-only JSONL file (written by grpo.runfolder.JsonlWriter) by
    row[key] (or key(row), a callable); a line torn by a kill, and anything after it, is
    dropped from the file (to be measured again). The file is replaced atomically."""
    from model.checkpoint import atomic_path

    rows: dict[Any, dict[str, Any]] = {}
    if not file.is_file():
        return rows
    for line in file.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        rows[key(row) if callable(key) else row[key]] = row
    with atomic_path(file) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines: the header, its rule, then one line per row of cells."""
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def cli(prog: str, run, parser, argv: list[str] | None,
        errors: tuple[type[BaseException], ...] = ()) -> int:  # fmt: skip
    """Parse argv and call run(args, log); a known error is one line on stderr (exit 2),
    Ctrl-C says how to go on."""
    from grpo.progress import line_buffered_output
    from grpo.report import say

    line_buffered_output()
    args = parser.parse_args(argv)
    try:
        run(args, say)
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


def addition_policy(path: str, seed: int = 0, log=None):
    """(model, tokenizer, the addition task) for a checkpoint, run folder or built-in."""
    from grpo.policy import load_policy, pick_device
    from grpo.tasks import get_task

    task = get_task("addition")
    model, tok = load_policy(path, task, pick_device("auto"), log or (lambda *_: None), seed)
    return model, tok, task


def heldout_eval(path: str, n: int, max_new_tokens: int, seed: int, log, temperatures=(0.0,)):
    """grpo.evaluate on the first n held-out addition questions that fit the model (the same
    questions for every model of an experiment), once per temperature: [EvalResult]."""
    from grpo.context import heldout_that_fits
    from grpo.evaluate import evaluate

    model, tok, task = addition_policy(path, seed)
    qs = heldout_that_fits(task, tok, n, max_new_tokens, model.config.max_position_embeddings,
                           log)  # fmt: skip
    return [evaluate(model, tok, task, qs, max_new_tokens=max_new_tokens, temperature=t,
                     seed=seed) for t in temperatures]  # fmt: skip
