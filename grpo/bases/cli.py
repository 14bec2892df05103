"""`python -m grpo.demo build | inspect`: build a base model, or measure one.

    python -m grpo.demo build                          # "demo" into .cache/demo-base/
    python -m grpo.demo build --out assets/demo-base   # the shipped asset: only when asked so
    python -m grpo.demo build --base demo-countdown    # into .cache/demo-countdown-base/
    python -m grpo.demo build --base gpu-countdown     # into .cache/gpu-countdown-base/
    python -m grpo.demo build --out /tmp/b --steps 100 --docs 5000 --set hidden_size=128
    python -m grpo.demo inspect --base /tmp/b --n 200 --json /tmp/b/inspect.json

Every user error (a number out of range, a bad --set, --device or --base, an
empty or unwritable --out or --json, an --out that holds anything but a
previous build, a --max-new-tokens the base's context cannot hold, a --task
the base's tokenizer cannot express) is one line on stderr and exit status 2,
found before any work starts. A file system failure while writing (a full
disk, say) is one line too: exit status 1 (2 for a missing folder), as
grpo/run/report.py's `refused`. Ctrl-C is one line and exit status 130; an
interrupted build leaves the folder it was replacing as it was. A build
never deletes anything but a previous build (`build.not_replaceable`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from grpo.bases import build
from grpo.bases.addition import DEFAULT_CONFIG
from grpo.bases.build import BASES, base_config, base_task, build_base
from grpo.bases.countdown import COUNTDOWN_CONFIG
from grpo.bases.countdown_demo import DEMO_COUNTDOWN_CONFIG
from grpo.bases.inspect import format_report, inspect_base, inspect_problem
from grpo.bases.pretrain import AnyConfig, resolve_device
from grpo.run.config import OneLineErrorParser
from grpo.run.report import refused
from grpo.run.runfolder import nearest_folder_problem
from model.checkpoint import CheckpointError
from model.config import ModelConfig
from model.tokenizer import Tokenizer

PROG = "python -m grpo.demo"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default once: appended, unless its help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default" in text else super()._get_help_string(action)


def _int_at_least(low: int):
    """An argparse type: an integer >= low, else a one-line error naming the flag."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def make_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and its subcommands' parsers by name (they report their own errors)."""
    parser = OneLineErrorParser(prog=PROG, description="Build or inspect the demo's base models.")
    sub = parser.add_subparsers(dest="command", required=True)
    d, c, dc = DEFAULT_CONFIG, COUNTDOWN_CONFIG, DEMO_COUNTDOWN_CONFIG
    b = sub.add_parser(
        "build", formatter_class=_Help, help="pretrain a base model into the cache (or --out)",
        description="Pretrain a base model. Without --out it goes to the cache; the shipped "
        "assets/demo-base/ is written only when named: --out assets/demo-base.",
    )  # fmt: skip
    b.add_argument("--base", choices=BASES, default="demo",
                   help="demo: the CPU addition demo's base; demo-countdown: the CPU countdown "
                   "demo's base (both shipped); gpu-countdown: the GPU preset's countdown "
                   "base")  # fmt: skip
    b.add_argument("--out", default=None,
                   help="output folder: new, empty, or a previous build, which it replaces "
                   "(anything else is refused) (default: .cache/<base>-base/; never a shipped "
                   "assets/<base>-base/ unless it is named here)")  # fmt: skip
    b.add_argument("--seed", type=_int_at_least(0), default=None,
                   help=f"build seed, >= 0 (default: the base's, {d.seed})")  # fmt: skip
    b.add_argument("--steps", type=_int_at_least(1), default=None,
                   help=f"optimizer steps, >= 1 (default: the base's, {d.steps} for demo, "
                   f"{dc.steps} for demo-countdown, {c.steps} for gpu-countdown)")  # fmt: skip
    b.add_argument("--docs", type=_int_at_least(1), default=None,
                   help=f"corpus documents, >= 1 (default: the base's, {d.num_docs} for "
                   f"demo, {dc.num_docs} for demo-countdown, {c.num_docs} for "
                   "gpu-countdown)")  # fmt: skip
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other build parameter, e.g. --set hidden_size=256; repeatable, "
                   "range-checked by the build config (default: none)")  # fmt: skip
    b.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N or auto (default: cpu for the demo bases, whose "
                   "shipped bytes are CPU builds; auto for gpu-countdown)")  # fmt: skip
    b.add_argument("--log-every", type=_int_at_least(1), default=50,
                   help="progress line every N steps, >= 1")  # fmt: skip
    i = sub.add_parser(
        "inspect", formatter_class=_Help, help="measure a base: modes, accuracies, format rate",
        description="Measure a base on held-out problems: greedy, sampled at temperature 1, "
        "greedy after a forced ' <think> ', and for countdown that again with ' so' banned "
        "after a failed try (the search never gives up).",
    )  # fmt: skip
    i.add_argument("--base", default="demo", help="a checkpoint folder, or a base name: "
                   f"{', '.join(BASES)} (built if needed)")  # fmt: skip
    i.add_argument("--task", choices=("addition", "countdown"), default=None,
                   help="the task to measure on "
                   "(default: the one in the base's manifest)")  # fmt: skip
    i.add_argument("--n", type=_int_at_least(1), default=500, help="held-out problems, >= 1")
    i.add_argument("--samples", type=_int_at_least(1), default=4,
                   help="temperature-1 samples per problem, >= 1")  # fmt: skip
    i.add_argument("--max-new-tokens", type=_int_at_least(1), default=None,
                   help="completion budget, >= 1 "
                   "(default: 128 for addition, 480 for countdown)")  # fmt: skip
    i.add_argument("--json", default=None, help="also write the report to this JSON file "
                   "(default: none, the report is only printed)")  # fmt: skip
    return parser, {"build": b, "inspect": i}


def _override(config: AnyConfig, assignment: str) -> AnyConfig:
    """replace(config, key=value) from "key=value", the value parsed as the field's type.

    The config checks its own numbers (`check_build_numbers`): a ValueError names the field.
    """
    key, eq, value = assignment.partition("=")
    names = [f.name for f in fields(config)]
    if not eq or key not in names:
        raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, KEY one of {', '.join(names)}")
    kind = type(getattr(config, key))
    try:
        return replace(config, **{key: kind(value)})
    except ValueError as e:
        raise ValueError(f"--set {assignment!r}: {e}") from None


def _unwritable(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be written as a folder (or a file), or None. Leaves nothing behind.

    An existing file is opened for appending (nothing is appended); for anything
    to be created, grpo.run.runfolder.nearest_folder_problem probes the nearest folder
    that exists (permission bits say nothing to root, nor of /proc or a read-only
    mount).
    """
    path = path.absolute()
    if folder and path.exists() and not path.is_dir():
        return "exists and is not a folder"
    if not folder and path.is_dir():
        return "is a folder"
    if not folder and path.exists():
        if not path.is_file():
            return "exists and is not a regular file"
        try:
            with open(path, "ab"):  # appends nothing: only asks whether it could
                pass
        except OSError as e:
            return f"is not writable ({e.strerror or e})"
        return None
    problem = nearest_folder_problem(path)  # to be created: probe the folder it would go in
    return f"cannot create it ({problem})" if problem else None


def _not_a_base(path: Path) -> str | None:
    """Why `path` is not a checkpoint folder `inspect` can read (config and tokenizer), or None."""
    if not path.is_dir():
        return f"no such folder (expected a checkpoint folder, or one of {', '.join(BASES)})"
    try:
        ModelConfig.from_hf_config(path)
        Tokenizer.from_dir(path)
    except (ValueError, OSError) as e:  # UnsupportedModelError is a ValueError
        return f"not a checkpoint folder this project can load: {e}"
    return None


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    """One line on stderr, exit status 2 (for errors found after parsing, without "--help")."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def _write_failed(parser: argparse.ArgumentParser, what: str, e: OSError) -> int:
    """One line for a file system failure while writing `what`; the exit status `refused` gives."""
    where = f" ({e.filename})" if e.filename else ""
    words = type(e)(f"cannot write {what}: {e.strerror or e}{where}")
    return refused(parser.prog, words)


def _log(line: str) -> None:
    print(line, flush=True)


def run_build(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    default = base_config(args.base)
    try:
        config = default
        for key, value in (("seed", args.seed), ("steps", args.steps), ("num_docs", args.docs)):
            if value is not None:
                config = replace(config, **{key: value})
        for assignment in args.set:
            config = _override(config, assignment)
    except ValueError as e:
        parser.error(str(e))
    try:
        shipped = args.base in build.SHIPPED_DIRS  # CPU demo bases: built on CPU by default
        device = resolve_device(args.device or ("cpu" if shipped else "auto"))
    except ValueError as e:
        parser.error(f"--{e}")  # "--device 'gpu': expected cpu, cuda, cuda:N or auto"
    if args.out is not None and not args.out.strip():
        parser.error("--out: empty path (leave --out out for the cache folder)")
    out = Path(args.out) if args.out is not None else build.cache_dir(args.base)
    problem = _unwritable(out, folder=True) or build.not_replaceable(out)
    if problem:
        parser.error(f"--out {out}: {problem}")
    _log(f"build config: {json.dumps(config.to_dict())}")
    changed = [k for k, v in config.to_dict().items() if v != default.to_dict()[k]]
    if any(out.resolve() == d.resolve() for d in build.SHIPPED_DIRS.values()):
        _log(f"writing the shipped asset {out} (asked for with --out)")
    if changed:
        _log(f"note: not the default {args.base} build ({', '.join(changed)} changed): "
             f"--model {args.base} will not use it; train from it with --model {out}")  # fmt: skip
    try:
        build_base(out, config, _log, args.log_every, device)
    except ValueError as e:  # e.g. --set seq_len smaller than the longest document
        _fail(parser, str(e))
    except OSError as e:  # a full disk, a folder gone read-only: nothing was replaced
        return _write_failed(parser, f"--out {out}", e)
    return 0


def run_inspect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.json is not None:
        if not args.json.strip():
            parser.error("--json: empty path (leave --json out to only print the report)")
        problem = _unwritable(Path(args.json), folder=False)
        if problem:
            parser.error(f"--json {args.json}: {problem}")
    if args.base in BASES:
        try:
            base = build.ensure_base(args.base, _log)
        except ValueError as e:  # gpu-countdown on a machine without CUDA
            _fail(parser, str(e))
        except OSError as e:  # the cache folder could not be written
            return _write_failed(parser, f"the {args.base} base", e)
    else:
        base = Path(args.base)
        problem = _not_a_base(base)
        if problem:
            parser.error(f"--base {args.base}: {problem}")
    task = args.task or base_task(base)
    budget = args.max_new_tokens or (480 if task == "countdown" else 128)
    # The budget against the context, the task against the tokenizer: before the weights load.
    try:
        problem = inspect_problem(base, args.n, budget, task=task)
    except (ValueError, OSError) as e:  # a tokenizer or config.json that cannot be read
        problem = f"--base {args.base}: {e}"
    if problem:
        _fail(parser, problem)
    try:
        report = inspect_base(base, args.n, args.samples, budget, task=task)
    except CheckpointError as e:  # weights missing or corrupt
        _fail(parser, f"--base {args.base}: {e}")
    except ValueError as e:  # what `inspect_problem` did not foresee
        _fail(parser, str(e))
    print(format_report(report))
    if args.json is not None:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as e:  # the report above is printed; only the file is missing
            return _write_failed(parser, f"--json {args.json}", e)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from grpo.run.progress import line_buffered_output

    line_buffered_output()
    parser, commands = make_parser()
    args = parser.parse_args(argv)
    command = commands[args.command]
    try:
        return run_build(args, command) if args.command == "build" else run_inspect(args, command)
    except KeyboardInterrupt:  # a build replaces its folder only once it is complete
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return 130
