"""Evaluate a checkpoint on held-out questions, with both kinds of test-time compute.

    python eval.py --model runs/addition-<time> --n 500
    python eval.py --model runs/addition-<time> --n 500 --samples 8
    python eval.py --model demo --task addition --n 500

--model is a checkpoint folder, a run folder (its latest checkpoint is used)
or `demo` (the built-in base model). For a run's checkpoint the task, task
file, template, token budget, stop strings and reward weights are the run's
(train_config.json) unless a flag overrides them; one line says what is used
and where it came from. Reports pass@1 accuracy, format rate and mean
completion length (greedy unless --temperature is given); with --samples k
(sampling at --temperature, default 1.0): pass@k, maj@k (self-consistency)
and best-of-k with the rule-based reward as the outcome reward model. Prints
a table and writes JSON (--json; default: in the run folder for a run's
checkpoint, else in runs/eval/).

With --strategy (majority, best_of_n, weighted_best_of_n, beam, mcts), each
question is searched against --verifier (rule, or a folder from
`python -m grpo.search.verifiers train`), and the JSON records the accuracy and the
policy and verifier tokens per question (grpo/search/strategies.py):

    python eval.py --model demo --n 100 --strategy beam --beam-width 4 --expand 4

Every flag, the model path and the output path are checked before the model
is loaded; held-out questions whose prompt plus the token budget exceed the
model's context are skipped, with a count.
"""

from __future__ import annotations

import os
import sys

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from grpo.run.config import COUNTDOWN_OPTIONS, task_defaults  # noqa: E402

DEFAULT_MAX_NEW_TOKENS = 96
FEW_QUESTIONS = 50  # below this, one question moves accuracy by 2 points or more: warn


# ----------------------------------------------------------------------------- flag types
def _seed(s: str) -> int:
    """An argparse type: a seed in 0 .. 2**32 - 1, as train_zero.py takes it."""
    v = _number(int, 0, ">= 0")(s)
    if v >= 2**32:
        raise argparse.ArgumentTypeError(f"must be in 0 .. 2**32 - 1, got {s}")
    return v


def _number(kind: type, low: float, what: str, strict: bool = False):
    """An argparse type: `kind` (int or float), finite, >= low (> low if strict)."""

    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {s!r}"
            ) from None
        if not math.isfinite(v) or v < low or (strict and v == low):
            raise argparse.ArgumentTypeError(f"must be a finite number {what}, got {s}")
        return v

    return parse


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _device(s: str) -> str:
    if not _DEVICE.fullmatch(s):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {s!r}")
    return s


def _one_of(names: list[str]):
    def parse(s: str) -> str:
        if s not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {s!r}")
        return s

    return parse


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser
    from grpo.tasks import available_tasks
    from grpo.tasks.templates import TEMPLATES

    STRATEGIES = ("greedy", "sample", "majority", "best_of_n", "weighted_best_of_n", "beam",
                  "mcts")

    pos_int = _number(int, 1, ">= 1")
    ap = OneLineErrorParser(prog="eval.py", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True,
                    help="checkpoint folder, run folder, or a built-in base: demo (the demo "
                         "base of --task), demo-countdown, gpu-countdown")
    ap.add_argument("--task", type=_one_of(available_tasks()), default=None,
                    help=f"{', '.join(available_tasks())} (default: the run's, else addition)")
    ap.add_argument("--task-path",
                    help="for --task jsonl: the file of {question, answer} lines "
                         "(default: the run's, if it was trained on jsonl)")
    ap.add_argument("--template", type=_one_of(sorted(TEMPLATES)), default=None,
                    help=f"prompt template: {', '.join(sorted(TEMPLATES))} "
                         "(default: the run's, else r1zero)")
    ap.add_argument("--n", type=pos_int, default=500,
                    help="held-out questions, at most (default: 500)")
    ap.add_argument("--samples", type=pos_int, default=1,
                    help="samples per question, k (default: 1)")
    ap.add_argument("--temperature", type=_number(float, 0, ">= 0"), default=None,
                    help="sampling temperature, 0 = greedy (default: 0 for --samples 1, "
                         "else 1.0)")
    ap.add_argument("--max-new-tokens", type=pos_int, default=None,
                    help=f"completion budget (default: the run's, else {DEFAULT_MAX_NEW_TOKENS})")
    ap.add_argument("--format-weight", type=_number(float, 0, ">= 0"), default=None,
                    help="reward weight of the format check, 0 = off; scores best-of-k "
                         "(default: the run's, else 0.1)")
    ap.add_argument("--accuracy-weight", type=_number(float, 0, "> 0", strict=True), default=None,
                    help="reward weight of the accuracy check (default: the run's, else 1.0)")
    ap.add_argument("--batch-size", type=pos_int, default=512,
                    help="sequences per generation batch; at least one question's samples "
                         "(default: 512)")
    ap.add_argument("--seed", type=_seed, default=0,
                    help="sampling seed (default: 0)")
    ap.add_argument("--device", type=_device, default="auto",
                    help="auto, cpu, cuda or cuda:N (default: auto = cuda if available)")
    ap.add_argument("--json",
                    help="where to write the results (default: in the run folder for a run's "
                         "checkpoint, else in runs/eval/)")  # fmt: skip
    # Search against verifiers (grpo/search/strategies.py), one question at a time.
    ap.add_argument("--strategy", type=_one_of(list(STRATEGIES)), default=None,
                    help="search per question: greedy, sample (one completion), majority, "
                         "best_of_n, weighted_best_of_n (over --samples samples), beam "
                         "(--beam-width, --expand), mcts (--simulations, --expand); default: "
                         "plain sampling, as above")
    ap.add_argument("--verifier", default="rule",
                    help="scores for --strategy: rule (the task's reward, an oracle) or a "
                         "folder from python -m grpo.search.verifiers train (default: rule)")
    ap.add_argument("--beam-width", type=pos_int, default=4, help="beams kept (default: 4)")
    ap.add_argument("--expand", type=pos_int, default=4,
                    help="sampled next steps per beam or tree node (default: 4)")
    ap.add_argument("--simulations", type=pos_int, default=16,
                    help="MCTS simulations per question (default: 16)")
    ap.add_argument("--mcts-rule", type=_one_of(["uct", "puct"]), default="uct",
                    help="MCTS selection: uct, or puct with the policy's step probabilities "
                         "as priors (default: uct)")  # fmt: skip
    return ap


def main(argv: list[str] | None = None) -> int:
    from grpo.run.progress import line_buffered_output

    line_buffered_output()
    ap = build_parser()
    args = ap.parse_args(argv)
    args.given = given_flags(ap, argv)
    from model.checkpoint import CheckpointError

    try:
        return run(args)
    except (ValueError, OSError, CheckpointError) as e:  # OSError: missing, unreadable files
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eval.py: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError) as e:  # out of memory: one line; anything else raises
        from grpo.run.report import out_of_memory_exit

        return out_of_memory_exit("eval.py", e, "lower --batch-size, --samples or "
                                  "--max-new-tokens; nothing was written")  # fmt: skip


# ----------------------------------------------------------------------------- checks
# The flags each mode reads, of those that only some modes read; None is plain
# evaluation (no --strategy). A flag given to a mode that does not read it is
# named in a note, never silently dropped.
MODE_FLAGS: dict[str | None, tuple[str, ...]] = {
    None: ("samples", "temperature"), "greedy": (), "sample": (), "majority": ("samples",),
    "best_of_n": ("samples", "verifier"), "weighted_best_of_n": ("samples", "verifier"),
    "beam": ("verifier", "beam_width", "expand"),
    "mcts": ("verifier", "simulations", "expand", "mcts_rule"),
}  # fmt: skip
MODE_SPECIFIC = tuple(dict.fromkeys(d for dests in MODE_FLAGS.values() for d in dests))


def given_flags(ap: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The dests of the flags on the command line (argparse fills in the rest)."""
    saved = [(a, a.default) for a in ap._actions]
    try:
        for a, _ in saved:
            a.default = argparse.SUPPRESS
        return set(vars(ap.parse_args(argv)))
    finally:
        for a, default in saved:
            a.default = default


def ignored_flags(strategy: str | None, given: set[str]) -> list[str]:
    """The given flags that `strategy` (None: plain evaluation) does not read, as typed."""
    return ["--" + d.replace("_", "-") for d in MODE_SPECIFIC
            if d in given and d not in MODE_FLAGS[strategy]]  # fmt: skip


def read_run_config(path: Path) -> tuple[dict[str, Any], Path | None]:
    """The train_config.json of the run that produced checkpoint `path`, and the run folder."""
    for cand in (path.parent.parent / "train_config.json", path / "train_config.json"):
        if cand.is_file():
            try:
                cfg = json.loads(cand.read_text(encoding="utf-8"))
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{cand} is not valid JSON ({e})") from e
            if not isinstance(cfg, dict):
                raise ValueError(f"{cand}: expected a JSON object, got {type(cfg).__name__}")
            return cfg, cand.parent
    return {}, None


def check_output_path(out: Path) -> None:
    """OSError/ValueError now, rather than after the evaluation, if `out` cannot be written.

    The nearest existing folder on the way is probed with a temporary file
    (permission bits alone miss read-only mounts, and root ignores them).
    """
    if out.is_dir():
        raise IsADirectoryError(f"results path {out} is a folder; give a file name (--json)")
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"results path {out}: {existing} is a file, not a folder")
    if out.exists() and not os.access(out, os.W_OK):
        raise PermissionError(f"results path {out} is not writable")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise PermissionError(
            f"results path {out}: cannot write in {existing} ({e.strerror or e})"
        ) from e


def resolve_settings(
    args, run_cfg: dict[str, Any], source: str, saved: str = "run"
) -> tuple[dict[str, Any], str]:
    """Task settings: flag > the run's train_config.json > default; and a line saying which.

    `saved` names where run_cfg came from in that line ("run", or "base" for a
    built-in base, whose manifest names only its task).
    """
    defaults = {"task": "addition", "task_path": None, "template": "r1zero",
                "max_new_tokens": DEFAULT_MAX_NEW_TOKENS, "format_weight": 0.1,
                "accuracy_weight": 1.0, "stop": "</answer>"}  # fmt: skip
    flags = {"task": args.task, "task_path": args.task_path, "template": args.template,
             "max_new_tokens": args.max_new_tokens, "format_weight": args.format_weight,
             "accuracy_weight": args.accuracy_weight, "stop": None}  # fmt: skip
    kinds = {"task": str, "task_path": str, "template": str, "max_new_tokens": int,
             "format_weight": float, "accuracy_weight": float, "stop": str}  # fmt: skip
    for key in COUNTDOWN_OPTIONS:  # the run's countdown variant (no flags: a run's is fixed)
        defaults[key], flags[key], kinds[key] = None, None, int
    chosen: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, default in defaults.items():
        if flags[key] is not None:
            chosen[key], origin[key] = flags[key], "flag"
            continue
        value = run_cfg.get(key)
        # The run's task file and variant belong to the run's task, not to one chosen by a flag.
        if key in ("task_path", *COUNTDOWN_OPTIONS) and chosen["task"] != run_cfg.get("task"):
            value = None
        if value is None:
            # The task's demo default (countdown's budget), else the generic one.
            if key != "task":
                default = task_defaults(chosen["task"]).get(key, default)
            chosen[key] = default
            origin[key] = "default"
            continue
        kind = kinds[key]
        ok = isinstance(value, str) if kind is str else (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            and (kind is float or float(value).is_integer()) and math.isfinite(value)
        )  # fmt: skip
        if not ok:
            raise ValueError(f"{source}: {key!r} must be {kind.__name__}, got {value!r}")
        chosen[key], origin[key] = kind(value), saved
    if chosen["max_new_tokens"] < 1:
        raise ValueError(f"{source}: 'max_new_tokens' must be >= 1, got {chosen['max_new_tokens']}")
    if chosen["task"] == "jsonl" and not chosen["task_path"]:
        raise ValueError("--task jsonl needs --task-path FILE")
    if chosen["task"] != "jsonl" and args.task_path:
        raise ValueError(f"--task-path is only for --task jsonl (the task is {chosen['task']})")
    shown = ["task", "task_path", *COUNTDOWN_OPTIONS, "template", "max_new_tokens",
             "format_weight", "accuracy_weight"]  # fmt: skip
    parts = [f"{k.replace('_', ' ')} {chosen[k]} ({origin[k]})" for k in shown
             if chosen[k] is not None]  # fmt: skip
    where = f"; {saved} = {source}" if any(origin[k] == saved for k in origin) else ""
    return chosen, "settings: " + ", ".join(parts) + where


# ----------------------------------------------------------------------------- the evaluation
def run(args) -> int:
    import torch

    from grpo.evaluate import evaluate
    from grpo.run.checkpoint import resolve_model_path
    from grpo.run.policy import pick_device
    from grpo.run.progress import Progress
    from grpo.tasks import get_task
    from model import load_pretrained

    def note(msg: str) -> None:
        print(msg, file=sys.stderr)

    ignored = ignored_flags(args.strategy, getattr(args, "given", set()))
    if ignored:
        mode = f"--strategy {args.strategy}" if args.strategy else "evaluation without --strategy"
        why = ""
        if "--temperature" in ignored:
            why = (" (greedy decodes at temperature 0)" if args.strategy == "greedy"
                   else " (the strategies sample at temperature 1)")  # fmt: skip
        note(f"note: {mode} does not use {', '.join(ignored)}; ignored{why}")
    temperature = args.temperature
    if temperature is None:
        temperature = 0.0 if args.samples == 1 else 1.0
    if args.samples > 1 and temperature == 0 and not args.strategy:
        raise ValueError("--samples > 1 needs --temperature > 0")
    device = pick_device(args.device)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {args.device}: this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")  # fmt: skip
    from grpo.bases import BASES, base_run_config, demo_base_name, ensure_base

    # --model demo means the demo base of --task (demo-countdown for countdown).
    name = demo_base_name(args.model, args.task or "addition")
    path = ensure_base(name) if name in BASES else resolve_model_path(args.model)
    run_cfg, run_dir = read_run_config(path)
    source, origin = (str(run_dir / "train_config.json") if run_dir else ""), "run"
    if not run_cfg and name in BASES:  # a built-in base: the task (and variant) it was built for
        run_cfg, source, origin = base_run_config(path), name, "base"
    s, line = resolve_settings(args, run_cfg, source, origin)
    print(line)
    task_name, max_new, k = s["task"], s["max_new_tokens"], args.samples
    args.max_new = max_new

    default = f"eval-{task_name}-step{path.name.removeprefix('step_')}-k{k}.json"
    if run_dir is None:
        default = f"eval-{task_name}-{path.name}-k{k}.json"
    if args.strategy:
        default = default.removesuffix(".json") + f"-{args.strategy}-{verifier_name(args)}.json"
    out = Path(args.json) if args.json else (run_dir or Path("runs") / "eval") / default
    check_output_path(out)
    check_strategy(args, task_name)

    opts: dict[str, Any] = {"template": s["template"], "format_weight": s["format_weight"],
                            "accuracy_weight": s["accuracy_weight"]}  # fmt: skip
    if task_name == "jsonl":
        opts["path"] = s["task_path"]
    opts.update({k: s[k] for k in COUNTDOWN_OPTIONS if s[k] is not None})
    task = get_task(task_name, **opts)
    examples, over, tok = heldout_that_fits(args, task, task_name, path, max_new, note)

    print(f"loading {path} on {device}")
    model = load_pretrained(path, device=device, dtype=torch.float32)
    autocast = None
    if device.type == "cuda":
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    if args.strategy:
        return run_strategies(args, model, tok, task, examples, path, out, note)
    bar = Progress("eval", total=len(examples), log=note, unit="questions")
    t0 = time.perf_counter()
    res = evaluate(
        model, tok, task, examples, max_new_tokens=max_new, samples=k,
        temperature=temperature, stop_strings=s["stop"].split(","),
        batch_size=args.batch_size, seed=args.seed, autocast=autocast,
        progress=lambda done, total: bar.update(int(done)),
    )  # fmt: skip
    bar.done()
    seconds = time.perf_counter() - t0
    result = {"model": str(path), "task": task_name, "task_path": s["task_path"],
              "n": len(examples), "n_requested": args.n, "skipped_over_context": len(over),
              "samples": k, "temperature": temperature, "template": s["template"],
              "max_new_tokens": max_new, "format_weight": s["format_weight"],
              "accuracy_weight": s["accuracy_weight"], "seed": args.seed, "seconds": seconds,
              **{k: s[k] for k in COUNTDOWN_OPTIONS if s[k] is not None},
              "metrics": res.metrics}  # fmt: skip
    print_table(result)
    return write_result(out, result, note)

def heldout_that_fits(args, task, task_name: str, path: Path, max_new: int, note):
    """The first --n held-out questions, less those whose prompt + max_new tokens exceed the
    model's context: checked from config.json and the tokenizer alone, before any weights
    are read. Returns (examples, skipped, tokenizer)."""
    from grpo.run.context import split_by_context
    from model import ModelConfig, Tokenizer

    examples = task.heldout(args.n)
    if not examples:
        raise ValueError(f"task {task_name} has no held-out questions")
    asked = len(examples)
    context = ModelConfig.from_hf_config(path).max_position_embeddings  # names a bad key
    tok = Tokenizer.from_dir(path)
    examples, over = split_by_context(task, tok, examples, max_new, context)
    if not examples:
        raise ValueError(f"no held-out question fits: every prompt + --max-new-tokens {max_new} "
                         f"exceeds the model's context of {context} positions")  # fmt: skip
    if over:
        note(f"skipped {len(over)} of {asked} held-out questions: prompt + {max_new} new tokens "
             f"exceed the model's context of {context} positions")  # fmt: skip
    print(f"held-out: {len(examples)} questions"
          + (f" (--n {args.n}; the task's held-out split has {asked})" if asked < args.n else "")
          + (f", {len(over)} skipped as too long" if over else ""))  # fmt: skip
    if len(examples) < FEW_QUESTIONS:
        note(f"warning: only {len(examples)} held-out questions; one question moves the "
             f"accuracy by {100 / len(examples):.1f} points, so treat the numbers as rough")
    return examples, over, tok


def print_table(result: dict[str, Any]) -> None:
    """The console table: pass@1, format rate, length, truncation (and pass@k, maj@k,
    best-of-k with several samples)."""
    m, k, temperature = result["metrics"], result["samples"], result["temperature"]
    rows = [("pass@1 (accuracy)", m["eval_accuracy"]), ("format rate", m["eval_format_rate"]),
            ("mean completion length", m["eval_completion_len_mean"]),
            ("truncated", m["eval_truncated_frac"])]  # fmt: skip
    if k > 1:
        rows += [(f"pass@{k}", m[f"eval_pass@{k}"]), (f"maj@{k}", m[f"eval_maj@{k}"]),
                 (f"best-of-{k} (rule-based ORM)", m[f"eval_best_of_{k}"])]  # fmt: skip
    mode = "greedy" if temperature == 0 else f"temperature {temperature}"
    print(f"{result['model']}  |  task {result['task']}  |  {result['n']} held-out questions  |  "
          f"{k} sample(s) each, {mode}  |  {result['seconds']:.0f}s")  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    for name, value in rows:
        print(f"  {name:<{width}}{value:8.3f}")


def write_result(out: Path, result: dict[str, Any], note) -> int:
    """Write the results JSON atomically; if the disk refuses, print it and exit 1."""
    from model.checkpoint import write_json_atomic

    try:
        write_json_atomic(out, result)
    except OSError as e:  # checked up front, but the disk may fill: keep the numbers
        print(json.dumps(result, indent=2, sort_keys=True))
        note(f"eval.py: error: could not write {out} ({e.strerror or e}); "
             "the results are printed above")
        return 1
    print(f"wrote {out}")
    return 0

# ----------------------------------------------------------------------------- strategies
def verifier_name(args) -> str:
    from grpo.search.strategies import UNSCORED

    if args.strategy in UNSCORED:
        return "none"
    return "rule" if args.verifier == "rule" else Path(args.verifier).name


def check_strategy(args, task_name: str) -> None:
    """--strategy and --verifier, before the model is loaded."""
    from grpo.search.strategies import UNSCORED
    from grpo.search.verifiers.train import STEP_DELIMITERS

    if not args.strategy:
        return
    if args.strategy in ("beam", "mcts") and task_name not in STEP_DELIMITERS:
        raise ValueError(f"--strategy {args.strategy} needs a task with reasoning steps "
                         f"({', '.join(STEP_DELIMITERS)}); {task_name} has none yet")  # fmt: skip
    if (args.strategy not in UNSCORED and args.verifier != "rule"
            and not (Path(args.verifier) / "verifier.json").is_file()):  # fmt: skip
        raise ValueError(f"--verifier {args.verifier}: not rule, and not a folder written by "
                         "python -m grpo.search.verifiers train (no verifier.json)")  # fmt: skip


def run_strategies(args, model, tok, task, examples, path, out, note) -> int:
    """One strategy on every question; accuracy and compute per question, to JSON."""
    from grpo.run.progress import Progress
    from grpo.search.strategies import UNSCORED, run_strategy_batched
    from grpo.search.verifiers.train import STEP_DELIMITERS, load_verifier
    from model.checkpoint import write_json_atomic

    verifier, kind = None, "rule"
    if args.strategy in UNSCORED:
        kind = "none"
    elif args.verifier != "rule":
        verifier, vtok, meta = load_verifier(args.verifier)
        if vtok.vocab_size != tok.vocab_size or vtok.eos_ids != tok.eos_ids:
            raise ValueError(f"--verifier {args.verifier}: its tokenizer differs from the model's")
        verifier, kind = verifier.to(next(model.parameters()).device), meta["kind"]
    budget = {"beam": args.beam_width * args.expand, "mcts": args.simulations, "greedy": 1,
              "sample": 1}.get(args.strategy, args.samples)  # fmt: skip
    bar = Progress(f"eval {args.strategy}", total=len(examples), log=note, unit="questions")
    t0 = time.perf_counter()
    results = run_strategy_batched(
        args.strategy, model, tok, task, examples, verifier, seed=args.seed,
        progress=bar.update, n=args.samples, width=args.beam_width, expand=args.expand,
        simulations=args.simulations, max_new_tokens=args.max_new,
        delimiters=STEP_DELIMITERS.get(task.name, (", ",)), rule=args.mcts_rule,
        max_rows=args.batch_size,
    )  # fmt: skip
    right = sum(r.correct for r in results)
    policy_tokens = sum(r.policy_tokens for r in results)
    verifier_tokens = sum(r.verifier_tokens for r in results)
    bar.done()
    n = len(examples)
    result = {
        "model": str(path), "task": task.name, "n": n, "strategy": args.strategy,
        "verifier": kind, "verifier_path": args.verifier,
        "budget": budget, "samples": args.samples, "beam_width": args.beam_width,
        "expand": args.expand, "simulations": args.simulations, "mcts_rule": args.mcts_rule,
        "seed": args.seed, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new, "accuracy": right / n,
        "policy_tokens": policy_tokens / n, "verifier_tokens": verifier_tokens / n,
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    print(f"{path}  |  {args.strategy}, verifier {result['verifier']}, budget {budget}  |  "
          f"{n} held-out questions  |  {result['seconds']:.0f}s")  # fmt: skip
    for name in ("accuracy", "policy_tokens", "verifier_tokens"):
        print(f"  {name.replace('_', ' ') + ' (per question)' * (name != 'accuracy'):<30}"
              f"{result[name]:10.3f}")  # fmt: skip
    write_json_atomic(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before main's own handling starts (e.g. while torch loads)
        print("\neval.py: interrupted", file=sys.stderr)
        sys.exit(130)
