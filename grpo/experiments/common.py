"""What the one-command experiments share (grpo.experiments.distill, grpo.experiments.star,
grpo.experiments.r1_pipeline, grpo.search.test_time_compute).

    check_settings(out, settings)          # OUT/settings.json: one comparison per folder
    run_stage(train_zero.main, flags, "train_zero.py", log)   # a stage, in this process
    stages = Stages(out)                   # OUT/stages.json: seconds of each finished stage
    path = train_stage(train_zero.main, "train_zero.py", out / "rl", flags, stages, "rl", log)
    check_out(args.out)                    # --out can be the folder (creates nothing)
    check_model("--teacher", args.teacher, 128, heldout=500)  # it loads; the prompts fit
    check_writable("--figure", args.figure)  # a file can be written there
    out = prepare(args.out, settings)      # the --out folder, created, its settings saved
    sys.exit(cli("python -m grpo.experiments.star", run, build_parser(), argv))   # one-line errors
    p.add_argument("--readability-weight", type=finite_float)   # nan and inf refused
    rows = read_rows(out / "evals.jsonl", "model")  # append with grpo.run.runfolder.JsonlWriter
    lines = markdown_table(["model", "accuracy"], [["base", "0.002"]])   # results as Markdown
    model, tok, task = task_policy(path, seed)                # a model of an experiment
    [res] = heldout_eval(path, n, max_new_tokens, seed, log)  # the same held-out questions

Each experiment keeps every stage's output in its --out folder and reuses it
when the command runs again, so a stopped one continues. Its settings are
saved in OUT/settings.json; another command with other settings in the same
folder is refused with one line. Everything that can be checked before the
work starts is checked before prepare() writes settings.json (the flags, the
--out path, each model: it loads and its context holds the prompts), and a
run refused before it made anything leaves no settings.json behind. Ctrl-C
stops an experiment with exit 130, SIGTERM with 143 (a training stage
checkpoints first); the same command continues it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

# Model checks load the weights when they hold at most this many bytes (the addition demo's
# models hold a few MB); beyond it only the files' headers are parsed.
LOAD_CHECK_BYTES = 1 << 30


class Terminated(BaseException):
    """SIGTERM stopped the experiment (exit 143). A BaseException, like KeyboardInterrupt:
    an `except Exception` on the way must not swallow it."""


def finite_float(text: str) -> float:
    """argparse type: a finite number (nan and inf are refused: nan != nan would make the
    saved settings refuse the same command again)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def check_out(out: str | Path) -> Path:
    """The --out path, refused with one line when it cannot be the experiment's folder:
    empty (it would mean the current folder), a file, under a file, or where nothing can
    be made (probed with a temporary file or folder, removed at once)."""
    if str(out) == "":  # Path("") is Path("."): the current folder, never meant
        raise ValueError("--out is empty: give the experiment's folder (--out . for the "
                         "current one)")  # fmt: skip
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {path} is a file, not a folder")
    except OSError as e:  # an unreadable folder on the way
        raise ValueError(f"--out {path}: cannot use the folder ({e.strerror or e})") from e
    what = "write in the folder" if path.is_dir() else "create the folder"
    _probe("--out", path, path / "settings.json", what)
    return path


def check_writable(flag: str, path: str | Path) -> Path:
    """`path`, refused with one line naming `flag` unless a file can be written there (its
    folder is probed with a temporary file or folder, removed at once)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder")
    _probe(flag, path, path, "write there")
    return path


def _probe(flag: str, path: Path, file: Path, what: str) -> None:
    """ValueError "FLAG PATH: cannot WHAT (why)" unless `file` could be written
    (grpo.run.runfolder.nearest_folder_problem)."""
    from grpo.run.runfolder import nearest_folder_problem

    try:
        problem = nearest_folder_problem(file)
    except OSError as e:  # a folder on the way that cannot be read
        problem = e.strerror or str(e)
    if problem:
        raise ValueError(f"{flag} {path}: cannot {what} ({problem})")


def check_settings(out: Path, settings: dict[str, Any], what: str = "a comparison") -> None:
    """ValueError if `out` holds an experiment run with other settings."""
    saved = Path(out) / "settings.json"
    if not saved.exists():
        return
    try:
        old = json.loads(saved.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"--out {out}: {saved} is not valid JSON ({e}); use another --out "
                         "or remove it") from e  # fmt: skip
    if old != settings:
        diff = ", ".join(f"{k} {old.get(k)} -> {v}" for k, v in settings.items()
                         if old.get(k) != v)  # fmt: skip
        raise ValueError(f"--out {out} holds {what} with other settings ({diff}); use another "
                         "--out")  # fmt: skip


def run_stage(main, flags: list[str], what: str, log) -> None:
    """Run an entry point's main(flags) as one stage. Stopped by Ctrl-C (exit 130) or SIGTERM
    (143), having checkpointed: KeyboardInterrupt or Terminated, so the experiment stops
    too, with the same code; any other failure: RuntimeError."""
    log(f"=== {what} {' '.join(flags)}")
    rc = main(flags)
    if rc == 143:
        raise Terminated
    if rc == 130:
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
    """The --out folder, created, holding these settings (a folder with others is refused).
    Call it once every other check has passed: it is the first write."""
    from model.checkpoint import write_json_atomic

    out = check_out(out)
    check_settings(out, settings, what)
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot create the folder ({e.strerror or e})") from e
    try:
        write_json_atomic(out / "settings.json", settings)
    except OSError as e:
        if made:
            with suppress(OSError):
                out.rmdir()
        raise ValueError(f"--out {out}: cannot write settings.json there "
                         f"({e.strerror or e})") from e  # fmt: skip
    return out


def check_model(flag: str | None, name: str, max_new_tokens: int, *, heldout: int = 0,
                sampled: list[dict] = (), task=None, builtins: bool = False,
                log=lambda *_: None) -> None:  # fmt: skip
    """Before the long work: the model `flag` names (None: a built-in base the experiment
    uses itself) loads, and its context holds prompt + max_new_tokens for at least one of
    the first `heldout` held-out questions (heldout_eval drops the rest) and for every
    example in `sampled` (what is sampled with it, or with a model trained from it).
    `builtins`: the flag also takes built-in names (the demo bases, the random-init
    presets). ValueError, naming the flag, otherwise."""
    from grpo.bases import BASES, ensure_base
    from grpo.run.checkpoint import resolve_model_path
    from grpo.run.context import heldout_that_fits, split_by_context
    from grpo.tasks import get_task
    from model import PRESETS, CheckpointError, ModelConfig, Tokenizer, load_pretrained
    from model.checkpoint import _tensor_files

    label = f"{flag} {name}" if flag else f"the {name} base"
    task = task or get_task("addition")
    if flag is None or (builtins and name in BASES):
        if name == "gpu-countdown":
            return  # built (on a GPU) on first use; nothing to check before that
        path = ensure_base(name, log=log)
    elif builtins and name in PRESETS:  # random init: no files, only the context
        ctx = PRESETS[name].max_position_embeddings
        if max_new_tokens >= ctx:
            raise ValueError(f"{label}: --max-new-tokens {max_new_tokens} leaves no room for a "
                             f"prompt in the model's context of {ctx} positions")  # fmt: skip
        return
    else:
        p = Path(name)
        if not p.exists():
            raise ValueError(f"{label}: no such folder (a checkpoint or run folder"
                             f"{', or a built-in model' if builtins else ''})")  # fmt: skip
        if not p.is_dir():
            raise ValueError(f"{label} is a file; it takes a checkpoint or run folder")
        try:
            path = resolve_model_path(p)
        except FileNotFoundError as e:
            raise ValueError(f"{label}: {e}") from e
    try:
        cfg = ModelConfig.from_hf_config(path)
        tok = Tokenizer.from_dir(path)
        files = set(_tensor_files(Path(path)).values())  # every safetensors header parses
        if sum(f.stat().st_size for f in files) <= LOAD_CHECK_BYTES:
            load_pretrained(path)  # names and shapes against the config, and the data
    except (ValueError, OSError, CheckpointError) as e:
        raise ValueError(f"{label}: {e}") from e
    ctx = cfg.max_position_embeddings
    try:
        if heldout:
            heldout_that_fits(task, tok, heldout, max_new_tokens, ctx, log=lambda *_: None)
        if sampled:
            _, over = split_by_context(task, tok, list(sampled), max_new_tokens, ctx)
            if over:
                raise ValueError(f"{len(over)} of the {len(sampled)} questions it samples do "
                                 f"not fit: prompt + --max-new-tokens {max_new_tokens} exceeds "
                                 f"the model's context of {ctx} positions")  # fmt: skip
    except ValueError as e:
        raise ValueError(f"{label}: {e}") from e


def read_rows(file: Path, key) -> dict[Any, dict[str, Any]]:
    """The rows of an append-only JSONL file (written by grpo.run.runfolder.JsonlWriter) by
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


def _terminate(_signum, _frame) -> None:
    raise Terminated


def cli(prog: str, run, parser, argv: list[str] | None,
        errors: tuple[type[BaseException], ...] = ()) -> int:  # fmt: skip
    """Parse argv and call run(args, log). A known error is one line on stderr (exit 2 for
    bad settings, paths and files, 1 for the file system's own failures: see
    grpo.run.report.refused); Ctrl-C (exit 130) and SIGTERM (143) say how to go on. A run
    refused before it made anything but OUT/settings.json leaves none behind."""
    from grpo.run.progress import line_buffered_output
    from grpo.run.report import REFUSED, out_of_memory, refused, say

    line_buffered_output()
    args = parser.parse_args(argv)
    fresh = _fresh_out(getattr(args, "out", None))
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        run(args, say)
    except (*REFUSED, RuntimeError, MemoryError, *errors) as e:
        if fresh is not None:
            _forget(*fresh)
        if isinstance(e, OSError):
            return refused(prog, e)
        if oom := out_of_memory(e):  # the machine's limit, not bad input: exit 1
            print(f"{prog}: error: {oom}; what was done is kept in --out: free some memory "
                  "and run the same command again to continue", file=sys.stderr)  # fmt: skip
            return 1
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: SIGINT: stopped; what was done is kept in --out: run the same "
              "command again to continue", file=sys.stderr)  # fmt: skip
        return 130
    except Terminated:
        print(f"{prog}: SIGTERM: stopped; what was done is kept in --out: run the same "
              "command again to continue", file=sys.stderr)  # fmt: skip
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
    return 0


def _fresh_out(out: str | None) -> tuple[Path, bool] | None:
    """(--out, whether it exists) when it holds no settings.json yet, else None."""
    if not out:
        return None
    try:
        path = Path(out)
        return None if (path / "settings.json").exists() else (path, path.exists())
    except OSError:
        return None


def _forget(out: Path, existed: bool) -> None:
    """Undo a refused run's prepare(): when `out` holds no file but settings.json, remove
    it, the empty folders, and `out` itself if this run made it."""
    try:
        if not out.is_dir():
            return
        files = [Path(d) / f for d, _, fs in os.walk(out) for f in fs]
        if files != [out / "settings.json"]:
            return
        files[0].unlink()
        for d, _, _ in sorted(os.walk(out), key=lambda w: -len(w[0])):
            if Path(d) != out or not existed:
                os.rmdir(d)
    except OSError:
        pass


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

    from grpo.run.checkpoint import latest_checkpoint, resolve_model_path

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


def task_policy(path: str, seed: int = 0, log=None, task: str = "addition"):
    """(model, tokenizer, the task) for a checkpoint, run folder or built-in; `task` is
    "addition" or "countdown" (its default variant, the CPU demo's)."""
    from grpo.run.policy import load_policy, pick_device
    from grpo.tasks import get_task

    task = get_task(task)
    model, tok = load_policy(path, task, pick_device("auto"), log or (lambda *_: None), seed)
    return model, tok, task


def heldout_eval(path: str, n: int, max_new_tokens: int, seed: int, log, temperatures=(0.0,),
                 task: str = "addition"):  # fmt: skip
    """grpo.evaluate on the first n held-out questions of `task` that fit the model (the same
    questions for every model of an experiment), once per temperature: [EvalResult]."""
    from grpo.evaluate import evaluate
    from grpo.run.context import heldout_that_fits

    model, tok, task = task_policy(path, seed, task=task)
    qs = heldout_that_fits(task, tok, n, max_new_tokens, model.config.max_position_embeddings,
                           log)  # fmt: skip
    return [evaluate(model, tok, task, qs, max_new_tokens=max_new_tokens, temperature=t,
                     seed=seed) for t in temperatures]  # fmt: skip
