"""Rejection sampling: a model's own correct, well-formed samples as SFT data.

    python -m grpo.experiments.rejection --model runs/zero --out sft.jsonl \
        --questions 2000 --k 8 --keep 1

Samples k completions per train question (the RL train stream's questions,
grpo.run.context.rl_example, from --start), keeps those that pass the task's
rules, and writes the SFT JSONL train_sft.py reads: {"prompt", "completion",
"question", "target", "pos"}. A completion passes when its answer is correct,
its format is right (tags and answer format: Task.score) and it ended by
itself, not at the token budget. Options: how many to keep per question
(`--keep`, 0 = all that pass) and whether to drop a question's duplicate
texts (`--dedup`, on by default). It reports the acceptance rate.

DeepSeek-R1's stage 3 and STaR's inner loop are this; distillation is this
with a teacher (grpo/experiments/distill.py).

    records, stats = rejection_sample(model, tok, task, examples, k=8, keep=1)
    kept = select(texts, scores, finish, k, keep=1, dedup=True)   # the rule itself
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

QUESTIONS_PER_BATCH = 64  # questions sampled together (x k rows per generation batch)


def passes(score: dict[str, float], finish: str) -> bool:
    """The acceptance rule: correct, well-formed, and stopped by itself."""
    return score["accuracy"] == 1.0 and score["format"] == 1.0 and finish != "length"


def select(texts: list[str], scores: list[dict[str, float]], finish: list[str], k: int,
           keep: int = 1, dedup: bool = True, ok: list[bool] | None = None,
           ) -> list[list[int]]:  # fmt: skip
    """For each question (k consecutive samples), the indices of the samples kept: those
    that pass (`passes`, or `ok[i]` when given), in sampling order, without repeats of a
    text if `dedup`, at most `keep` (0 = all)."""
    if ok is None:
        ok = [passes(s, f) for s, f in zip(scores, finish)]
    out = []
    for q in range(len(texts) // k):
        kept, seen = [], set()
        for i in range(q * k, (q + 1) * k):
            if not ok[i]:
                continue
            if dedup:
                if texts[i] in seen:
                    continue
                seen.add(texts[i])
            kept.append(i)
            if keep and len(kept) == keep:
                break
        out.append(kept)
    return out


def rejection_sample(
    model, tok, task, examples: list[dict], *, k: int, keep: int = 1, dedup: bool = True,
    max_new_tokens: int = 128, temperature: float = 1.0, seed: int = 0, positions=None,
    log=None, autocast=None, also=None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """(SFT records, stats) from k samples per example; see the module docstring.
    `also(text, example)`: a further condition a kept sample must meet (R1's stage 3
    keeps correct AND readable samples)."""
    from contextlib import nullcontext

    import torch

    from grpo.rollout import rollout
    from grpo.run.progress import Progress

    positions = list(positions) if positions is not None else list(range(len(examples)))
    records: list[dict[str, Any]] = []
    passed = sampled = covered = tokens = 0
    progress = Progress("rejection sampling", len(examples), log or (lambda *a: None),
                        unit="questions")  # fmt: skip
    model.eval()
    for b, q0 in enumerate(range(0, len(examples), QUESTIONS_PER_BATCH)):
        chunk = examples[q0 : q0 + QUESTIONS_PER_BATCH]
        with torch.no_grad(), autocast() if autocast else nullcontext():
            ro = rollout(model, tok, task, chunk, group_size=k, max_new_tokens=max_new_tokens,
                         temperature=temperature, stop_strings=["</answer>"],
                         seed=seed * 1_000_003 + b)  # fmt: skip
        sampled += len(ro.texts)
        tokens += sum(len(c) for c in ro.completion_ids)
        ok = [passes(s, f) and (also is None or also(t, chunk[i // k]))
              for i, (t, s, f) in enumerate(zip(ro.texts, ro.scores, ro.finish_reasons))]
        passed += sum(ok)
        for j, kept in enumerate(select(ro.texts, ro.scores, ro.finish_reasons, k, keep, dedup,
                                        ok)):  # fmt: skip
            ex = chunk[j]
            covered += bool(kept)
            for i in kept:
                records.append({
                    "prompt": task.prompt(ex), "completion": ro.texts[i],
                    "question": ex["question"], "target": ex.get("target"),
                    "pos": positions[q0 + j],
                })  # fmt: skip
        progress.update(q0 + len(chunk))
    progress.done()
    stats = {
        "questions": len(examples), "samples": sampled, "tokens_sampled": tokens,
        "passed": passed,
        "acceptance_rate": passed / max(1, sampled),
        "questions_with_a_pass": covered, "coverage": covered / max(1, len(examples)),
        "records": len(records), "k": k, "keep": keep, "dedup": dedup,
    }  # fmt: skip
    return records, stats


def write_jsonl(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one)."""
    from model.checkpoint import atomic_path

    with atomic_path(Path(path)) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


class WriteFailed(Exception):
    """--out could not be written after the sampling (a full disk, say): one line, exit 1."""


def check_out_file(out: str, flag: str = "--out") -> Path:
    """ValueError now, rather than after all the sampling, if file `out` cannot be written.

    `out` is written atomically (a temporary file beside it, renamed over it), so it
    must not be a folder or a device; the nearest existing folder on its way (the
    missing ones are created) is probed with a temporary file: permission bits alone
    miss read-only mounts and /proc, and root ignores them.
    """
    if not out:
        raise ValueError(f"{flag} is empty; give the file to write")
    from grpo.run.runfolder import nearest_folder_problem

    path = Path(out)
    try:
        if path.is_dir():
            raise ValueError(f"{flag} {out} is a folder; give a file name")
        if path.exists() and not path.is_file():
            raise ValueError(f"{flag} {out} is not a regular file (writing would replace it)")
        problem = nearest_folder_problem(path)
    except OSError as e:  # a folder on the way that cannot be read
        problem = e.strerror or str(e)
    if problem:
        raise ValueError(f"{flag} {out}: cannot write there ({problem})")
    return path


def check_args(ns: argparse.Namespace) -> None:
    """Every flag, the task's options and --out, before anything is loaded; ValueError
    names the flag."""
    from grpo.run.config import check_seed_and_threads

    for name, low in (("questions", 1), ("k", 1), ("keep", 0), ("start", 0),
                      ("max_new_tokens", 1)):  # fmt: skip
        if getattr(ns, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, "
                             f"got {getattr(ns, name)}")  # fmt: skip
    if not math.isfinite(ns.temperature):
        raise ValueError(f"--temperature must be finite, got {ns.temperature}")
    if not ns.temperature > 0:
        raise ValueError("--temperature must be > 0 (k samples of a greedy model are one "
                         "sample)")  # fmt: skip
    check_seed_and_threads(ns.seed, ns.threads)
    if ns.task == "jsonl" and not ns.task_path:
        raise ValueError("--task jsonl needs --task-path FILE")
    if ns.task != "jsonl" and ns.task_path:
        raise ValueError(f"--task-path is only for --task jsonl (the task is {ns.task})")
    check_out_file(ns.out)


def main(argv: list[str] | None = None) -> int:
    from grpo.run.config import SEED_RANGE, OneLineErrorParser
    from grpo.run.config import _bool as parse_bool

    prog = "python -m grpo.experiments.rejection"
    ap = OneLineErrorParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint or run folder, or a built-in")
    ap.add_argument("--out", required=True, help="the SFT JSONL file to write")
    ap.add_argument("--task", default="addition", help="addition, countdown or jsonl")
    ap.add_argument("--task-path", default=None, help="for --task jsonl (only)")
    ap.add_argument("--template", default="r1zero")
    ap.add_argument("--questions", type=int, default=1000, help="train questions to sample")
    ap.add_argument("--start", type=int, default=0,
                    help="first position in the train stream (default 0)")  # fmt: skip
    ap.add_argument("--k", type=int, default=8, help="samples per question (default 8)")
    ap.add_argument("--keep", type=int, default=1,
                    help="at most this many kept per question; 0 = all that pass (default 1)")
    ap.add_argument("--dedup", type=parse_bool, default=True, metavar="BOOL",
                    help="drop a question's repeated texts (default true)")  # fmt: skip
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="sampling temperature, finite and > 0 (default 1.0)")  # fmt: skip
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help=f"sampling seed, {SEED_RANGE} (default 0)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0 = torch's default)")  # fmt: skip
    ns = ap.parse_args(argv)
    try:
        check_args(ns)
    except ValueError as e:
        ap.error(str(e))
    from grpo.run.report import REFUSED, refused
    from model.checkpoint import CheckpointError

    try:
        stats = run(ns)
    except CheckpointError as e:  # a corrupt or incomplete --model checkpoint
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except WriteFailed as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except REFUSED as e:
        return refused(prog, e)
    except KeyboardInterrupt:
        print(f"\n{prog}: SIGINT: stopped; nothing written", file=sys.stderr)
        return 130
    print(json.dumps(stats))
    return 0


def run(ns: argparse.Namespace) -> dict[str, Any]:
    import torch

    from grpo.run.context import rl_example, split_by_context
    from grpo.run.policy import load_policy, pick_device
    from grpo.run.report import say
    from grpo.tasks import get_task

    if ns.threads:
        torch.set_num_threads(ns.threads)
    opts: dict[str, Any] = {"template": ns.template}
    if ns.task == "jsonl":
        opts["path"] = ns.task_path
    task = get_task(ns.task, **opts)
    device = pick_device(ns.device)
    model, tok = load_policy(ns.model, task, device, say, ns.seed)
    positions = range(ns.start, ns.start + ns.questions)
    examples = [rl_example(task, p) for p in positions]
    context = model.config.max_position_embeddings
    fit, over = split_by_context(task, tok, examples, ns.max_new_tokens, context)
    if not fit:
        raise ValueError(f"no question fits: every prompt + --max-new-tokens "
                         f"{ns.max_new_tokens} exceeds the model's context of {context} "
                         "positions")  # fmt: skip
    if over:
        say(f"{len(over)} of {len(examples)} questions are too long for the context: skipped")
    keys = {id(ex) for ex in fit}
    positions = [p for p, ex in zip(positions, examples) if id(ex) in keys]
    records, stats = rejection_sample(
        model, tok, task, fit, k=ns.k, keep=ns.keep, dedup=ns.dedup,
        max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, seed=ns.seed,
        positions=positions, log=say,
    )  # fmt: skip
    try:
        write_jsonl(records, ns.out)
    except OSError as e:  # --out was checked before the sampling, but a disk can fill
        raise WriteFailed(f"could not write --out {ns.out} ({e.strerror or e}); its "
                          f"{len(records)} records are lost") from None  # fmt: skip
    say(f"rejection sampling: {stats['passed']} of {stats['samples']} samples pass "
        f"({stats['acceptance_rate']:.1%}); {stats['questions_with_a_pass']} of "
        f"{stats['questions']} questions have one; {stats['records']} records -> {ns.out}")
    return stats


if __name__ == "__main__":
    sys.exit(main())
