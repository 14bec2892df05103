"""Distillation vs. RL on a small model, in miniature (DeepSeek-R1's distillation claim).

    python -m grpo.experiments.distill --out runs/distill        # about 20 minutes on 2 cores
    python -m grpo.experiments.distill --out runs/distill --teacher runs/addition-x  # reuse

The R1 paper fine-tunes small models on the big model's reasoning traces and
reports that this beats running RL on the small model directly. Here, on the
addition demo:

  teacher               train_zero.py's demo: R1-Zero on the 1.65M-parameter demo base
                        (OUT/teacher), or --teacher;
  student_base          the "demo-student" base: the same corpus and recipe, a quarter
                        of the parameters (0.43M; grpo/bases, shipped);
  student_rl       (a)  R1-Zero GRPO directly on the student, the teacher's RL settings;
  student_distilled (b) SFT of the student on the teacher's correct traces: rejection
                        sampling (grpo/experiments/rejection.py) of --k samples on --questions train
                        questions, one kept per question, then train_sft.py;
  student_distilled_rl  (c) (b), then the same GRPO as (a).

All five are evaluated greedily on the same --heldout held-out questions.
OUT/results.json maps each name to its held-out accuracy; OUT/summary.json
adds format rate, mean completion length and the wall seconds of each stage,
the distillation data's acceptance rate, and the settings.

Every stage's output is kept in OUT and reused when the command runs again
(a stopped RL or SFT run is resumed), so an interrupted comparison continues.
"""

from __future__ import annotations

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from grpo.experiments.common import (  # noqa: E402
    Stages,
    addition_policy,
    at_least,
    check_model,
    check_out,
    cli,
    heldout_eval,
    markdown_table,
    prepare,
    read_rows,
    train_stage,
)
from grpo.run.runfolder import JsonlWriter  # noqa: E402

MODELS = ("teacher", "student_base", "student_rl", "student_distilled", "student_distilled_rl")
# train_zero.py flags of every RL stage beyond --model/--out/--seed: none, the addition demo.
RL_FLAGS: list[str] = []
# train_sft.py flags of the distillation SFT beyond --model/--data/--out/--seed.
SFT_FLAGS: list[str] = ["--epochs", "2", "--batch-size", "32", "--lr", "3e-4",
                        "--warmup-steps", "5", "--eval-n", "0"]  # fmt: skip
SETTINGS = ("teacher", "student", "questions", "k", "heldout", "max_new_tokens", "seed")


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.experiments.distill",
                           description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for every stage and the results")
    p.add_argument("--teacher", default=None,
                   help="an R1-Zero-trained checkpoint or run folder of the addition demo "
                        "(default: train one into OUT/teacher with train_zero.py's "
                        "defaults)")  # fmt: skip
    p.add_argument("--student", default="demo-student",
                   help="the student's base: a built-in or a checkpoint folder "
                        "(default: demo-student)")  # fmt: skip
    p.add_argument("--questions", type=int, default=1000,
                   help="train questions the teacher is sampled on (default 1000)")  # fmt: skip
    p.add_argument("--k", type=int, default=4, help="teacher samples per question (default 4)")
    p.add_argument("--heldout", type=int, default=500, help="held-out questions (default 500)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="completion budget")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out, and
    each model (--teacher, or the demo base it is trained from; --student): it loads, and
    its context holds the held-out questions and the questions sampled with it."""
    from grpo.run.context import rl_example
    from grpo.tasks import get_task

    at_least(a, 1, "questions", "k", "heldout", "max_new_tokens")
    at_least(a, 0, "seed")
    check_out(a.out)
    train = [rl_example(get_task("addition"), p) for p in range(a.questions)]
    check_model("--teacher" if a.teacher else None, a.teacher or "demo", a.max_new_tokens,
                heldout=a.heldout, sampled=train, log=log)  # fmt: skip
    check_model("--student", a.student, a.max_new_tokens, heldout=a.heldout, builtins=True,
                log=log)  # fmt: skip
    return {k: getattr(a, k) for k in SETTINGS}


def rl(a, name: str, model: str, stages: Stages, log) -> Path:
    """OUT/NAME: train_zero.py from `model`, resumed if it was stopped, reused if done."""
    import train_zero

    flags = ["--model", model, "--plot", "false", "--seed", str(a.seed), "--max-new-tokens",
             str(a.max_new_tokens), *RL_FLAGS]  # fmt: skip
    return train_stage(train_zero.main, "train_zero.py", Path(a.out) / name, flags, stages,
                       name, log)  # fmt: skip


def distill_data(a, teacher: Path, stages: Stages, log) -> tuple[Path, dict[str, Any]]:
    """OUT/distill.jsonl: the teacher's correct traces, one per question (rejection sampling)."""
    from grpo.experiments.rejection import rejection_sample, write_jsonl
    from grpo.run.context import rl_example

    path, stats_path = Path(a.out) / "distill.jsonl", Path(a.out) / "distill_data.json"
    if path.is_file() and stats_path.is_file() and "distill_data" in stages.seconds:
        log(f"=== distillation data: {path} exists, reused")
        return path, json.loads(stats_path.read_text())
    log(f"=== distillation data: {a.k} teacher samples on each of {a.questions} train "
        "questions, the correct ones kept (one per question)")  # fmt: skip
    t0 = time.perf_counter()
    model, tok, task = addition_policy(str(teacher), a.seed, log)
    examples = [rl_example(task, p) for p in range(a.questions)]
    records, stats = rejection_sample(
        model, tok, task, examples, k=a.k, keep=1, max_new_tokens=a.max_new_tokens,
        seed=a.seed, log=log,
    )  # fmt: skip
    if not records:
        raise ValueError(f"the teacher {teacher} passed none of its {stats['samples']} "
                         "samples: nothing to distil (is it an R1-Zero-trained addition "
                         "model?)")  # fmt: skip
    write_jsonl(records, path)
    from model.checkpoint import write_json_atomic

    write_json_atomic(stats_path, stats)
    stages.done("distill_data", time.perf_counter() - t0)
    log(f"  acceptance rate {stats['acceptance_rate']:.1%}; {stats['records']} traces from "
        f"{stats['questions_with_a_pass']} of {stats['questions']} questions")  # fmt: skip
    return path, stats


def sft(a, data: Path, student: str, stages: Stages, log) -> Path:
    """OUT/student_distilled: train_sft.py of the student base on the teacher's traces."""
    import train_sft

    flags = ["--model", student, "--data", str(data), "--seed", str(a.seed), *SFT_FLAGS]
    return train_stage(train_sft.main, "train_sft.py", Path(a.out) / "student_distilled",
                       flags, stages, "student_distilled", log)  # fmt: skip


def evaluate_all(a, paths: dict[str, str], log) -> dict[str, dict[str, float]]:
    """Greedy held-out metrics of each model, on the same questions (OUT/evals.jsonl)."""
    file = Path(a.out) / "evals.jsonl"
    done = read_rows(file, "model")
    for name in MODELS:
        if name in done:
            continue
        t0 = time.perf_counter()
        res = heldout_eval(paths[name], a.heldout, a.max_new_tokens, a.seed, log)[0]
        m = res.metrics
        row = {"model": name, "questions": len(res.records), "accuracy": m["eval_accuracy"],
               "format_rate": m["eval_format_rate"], "length": m["eval_completion_len_mean"],
               "eval_seconds": time.perf_counter() - t0}  # fmt: skip
        JsonlWriter(file).write(row)
        done[name] = row
        log(f"  {name:<22} accuracy {row['accuracy']:.3f}  format {row['format_rate']:.3f}  "
            f"length {row['length']:.1f}  ({row['eval_seconds']:.0f} s)")  # fmt: skip
    return done


def run(a: argparse.Namespace, log) -> dict[str, Any]:
    from grpo.bases import ensure_base
    from grpo.run.checkpoint import resolve_model_path
    from model.checkpoint import write_json_atomic

    settings = check_args(a, log)
    out = prepare(a.out, settings)
    stages = Stages(out)
    t_start = time.perf_counter()
    teacher = resolve_model_path(a.teacher) if a.teacher else rl(a, "teacher", "demo", stages, log)
    student = a.student
    if student == "demo-student":  # the shipped base (built if missing)
        student = str(ensure_base("demo-student", log=log))
    student_rl = rl(a, "student_rl", student, stages, log)  # (a)
    data, data_stats = distill_data(a, teacher, stages, log)
    distilled = sft(a, data, student, stages, log)  # (b)
    distilled_rl = rl(a, "student_distilled_rl", str(distilled), stages, log)  # (c)
    paths = {"teacher": str(teacher), "student_base": student, "student_rl": str(student_rl),
             "student_distilled": str(distilled),
             "student_distilled_rl": str(distilled_rl)}  # fmt: skip
    log("=== held-out evaluation, greedy, on the same questions")
    evals = evaluate_all(a, paths, log)
    results = {name: evals[name]["accuracy"] for name in MODELS}
    sec = stages.seconds
    # Wall seconds to make each model from the student base (the teacher's own cost apart).
    made = {
        "teacher": sec.get("teacher"), "student_base": 0.0,
        "student_rl": sec.get("student_rl"),
        "student_distilled": sec.get("distill_data", 0) + sec.get("student_distilled", 0),
        "student_distilled_rl": sec.get("distill_data", 0) + sec.get("student_distilled", 0)
        + sec.get("student_distilled_rl", 0),
    }  # fmt: skip
    summary = {
        "settings": settings, "paths": paths, "distill_data": data_stats, "stage_seconds": sec,
        "models": {n: {k: evals[n][k] for k in ("accuracy", "format_rate", "length",
                                                "questions")} | {"seconds": made[n]}
                   for n in MODELS},
        "seconds_this_run": time.perf_counter() - t_start,
    }  # fmt: skip
    write_json_atomic(out / "results.json", results)
    write_json_atomic(out / "summary.json", summary)
    for line in table(summary):
        log(line)
    return results


def table(summary: dict[str, Any]) -> list[str]:
    """The comparison as Markdown rows."""
    header = ["model", "held-out accuracy", "format rate", "mean length", "wall time"]
    rows = [[name, f"{m['accuracy']:.3f}", f"{m['format_rate']:.3f}", f"{m['length']:.1f}",
             "-" if m["seconds"] is None else f"{m['seconds']:.0f} s"]
            for name, m in summary["models"].items()]  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    return cli("python -m grpo.experiments.distill", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
