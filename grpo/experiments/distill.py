"""Distillation vs. RL on a small model, in miniature (DeepSeek-R1's distillation claim).

    python -m grpo.experiments.distill --task countdown --out runs/distill-cd   # ~22 min, 2 cores
    python -m grpo.experiments.distill --out runs/distill                      # addition
    python -m grpo.experiments.distill --task countdown --out D --teacher runs/cd   # reuse one

The R1 paper fine-tunes small models on the big model's reasoning traces and reports that
this beats running RL on the small model directly. Here, on a CPU demo task (PLANS):

  teacher               the task's R1-Zero demo (train_zero.py --task TASK from the demo
                        base, into OUT/teacher), or --teacher;
  student_base          the task's student base: the demo's corpus and recipe at about a
                        quarter of the parameters (demo-student, demo-countdown-student);
  student_rl            GRPO directly on the student, with the teacher's RL settings;
  student_distilled     SFT on the teacher's correct traces (R1's recipe): rejection sampling
                        (grpo/experiments/rejection.py) of --k samples on --questions train
                        questions, one kept per question, then train_sft.py;
  student_kd            forward KL(teacher || student) per token on the same traces
                        (train_sft.py --teacher --beta 0): Hinton's distillation;
  student_onpolicy      reverse KL(student || teacher) per token on the student's own samples
                        of the same --questions prompts (train_sft.py --teacher --beta 1
                        --lmbda 1): on-policy distillation (GKD, Qwen3's strong-to-weak);
  student_distilled_rl  the best of the three distilled students (by greedy accuracy on
                        --validation train questions no stage trained on), then the same GRPO.

All seven are evaluated greedily on the same --heldout held-out questions. OUT/results.json
maps each name to that accuracy. OUT/summary.json holds the rest: per model the format rate,
mean length, the search behaviour (countdown), and its compute from the student base: the
student tokens it sampled and trained on, the teacher tokens sampled and scored for it, and
wall seconds (completion tokens throughout: every prompt is read as context alike); each
arm's held-out curve (accuracy against student tokens); the settings. The figure (--figure,
default docs/distill_<task>.png) plots held-out accuracy against student-side tokens.

Every stage's output is kept in OUT and reused when the command runs again (a stopped RL or
SFT run is resumed), so an interrupted comparison continues.
"""

from __future__ import annotations

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from grpo.experiments.common import (  # noqa: E402
    Stages,
    at_least,
    check_model,
    check_out,
    check_writable,
    cli,
    heldout_eval,
    markdown_table,
    prepare,
    read_rows,
    task_policy,
    train_stage,
)
from grpo.run.runfolder import JsonlWriter  # noqa: E402

MODELS = ("teacher", "student_base", "student_rl", "student_distilled", "student_kd",
          "student_onpolicy", "student_distilled_rl")  # fmt: skip
DISTILLED = ("student_distilled", "student_kd", "student_onpolicy")
SETTINGS = ("task", "teacher", "student", "questions", "k", "validation", "heldout",
            "max_new_tokens", "seed")  # fmt: skip
BEHAVIOUR = ("tries_mean", "gave_up_frac", "false_yes_frac", "recovered_frac",
             "truncated_frac")  # countdown, and cut at the budget


@dataclass
class Plan:
    """One task's comparison: its student, data sizes, and each stage's training flags."""

    student: str
    questions: int  # train questions the teacher is sampled on (and the on-policy prompts)
    k: int  # teacher samples per question
    max_new_tokens: int
    # train_zero.py flags of every RL stage beyond --model/--out/--seed/--task/--max-new-tokens
    rl_flags: list[str] = field(default_factory=list)
    # train_sft.py flags of the SFT and forward-KL stages beyond --model/--data/--out/--seed
    sft_flags: list[str] = field(default_factory=list)
    # train_sft.py flags of the on-policy stage beyond those and --teacher/--beta/--lmbda
    onpolicy_flags: list[str] = field(default_factory=list)
    evals_per_stage: int = 3  # held-out points of each SFT-type stage's curve (and step 0)


PLANS = {
    "addition": Plan(
        "demo-student", questions=1000, k=4, max_new_tokens=128,
        sft_flags=["--epochs", "2", "--batch-size", "32", "--lr", "3e-4", "--warmup-steps", "5"],
        onpolicy_flags=["--steps", "30", "--batch-size", "32", "--lr", "3e-4",
                        "--warmup-steps", "5"],
    ),
    "countdown": Plan(
        "demo-countdown-student", questions=500, k=4, max_new_tokens=480,
        sft_flags=["--epochs", "2", "--batch-size", "32", "--lr", "3e-4", "--warmup-steps", "5"],
        onpolicy_flags=["--steps", "60", "--batch-size", "32", "--lr", "3e-4",
                        "--warmup-steps", "5"],
    ),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.experiments.distill",
                           description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--out", required=True, help="folder for every stage and the results")
    p.add_argument("--task", choices=sorted(PLANS), default="addition",
                   help="the demo task (default addition)")  # fmt: skip
    p.add_argument("--teacher", default=None,
                   help="an R1-Zero-trained checkpoint or run folder of the task's demo "
                        "(default: train one into OUT/teacher with train_zero.py's "
                        "defaults for the task)")  # fmt: skip
    p.add_argument("--student", default=None,
                   help="the student's base: a built-in or a checkpoint folder (default: "
                        "demo-student for addition, demo-countdown-student for "
                        "countdown)")  # fmt: skip
    p.add_argument("--questions", type=int, default=None,
                   help="train questions the teacher is sampled on (default: addition 1000, "
                        "countdown 500)")  # fmt: skip
    p.add_argument("--k", type=int, default=None, help="teacher samples per question (4)")
    p.add_argument("--validation", type=int, default=200,
                   help="train questions after those that choose the best distilled student "
                        "(default 200)")  # fmt: skip
    p.add_argument("--heldout", type=int, default=500, help="held-out questions (default 500)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="completion budget (default: addition 128, countdown 480)")  # fmt: skip
    p.add_argument("--figure", default=None,
                   help="the figure, a .png (default docs/distill_<task>.png)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out, the
    figure's path, and each model (--teacher, or the demo base it is trained from;
    --student): it loads, and its context holds the held-out questions and the questions
    sampled with it."""
    from grpo.run.context import rl_example
    from grpo.run.plot import _matplotlib
    from grpo.tasks import get_task

    plan = PLANS[a.task]
    for name in ("student", "questions", "k", "max_new_tokens"):
        if getattr(a, name) is None:
            setattr(a, name, getattr(plan, name))
    at_least(a, 1, "questions", "k", "validation", "heldout", "max_new_tokens")
    at_least(a, 0, "seed")
    check_out(a.out)
    a.figure = a.figure or f"docs/distill_{a.task}.png"
    if Path(a.figure).suffix.lower() != ".png":
        raise ValueError(f"--figure {a.figure}: expected a .png path")
    check_writable("--figure", a.figure)
    _matplotlib()  # the figure is part of the result: a missing extra is refused now
    task = get_task(a.task)
    train = [rl_example(task, p) for p in range(a.questions + a.validation)]
    check_model("--teacher" if a.teacher else None, a.teacher or demo_base(a.task),
                a.max_new_tokens, heldout=a.heldout, sampled=train, task=task, log=log)  # fmt: skip
    check_model("--student", a.student, a.max_new_tokens, heldout=a.heldout, sampled=train,
                task=task, builtins=True, log=log)  # fmt: skip
    check_one_vocabulary(a.teacher or demo_base(a.task), a.student, log)
    return {k: getattr(a, k) for k in SETTINGS}


def check_one_vocabulary(teacher: str, student: str, log) -> None:
    """The two KL arms compare the teacher's and the student's distributions token by
    token: refuse a student whose vocabulary is not the teacher's before any work."""
    from grpo.bases import BASES, ensure_base
    from grpo.experiments.distill_loss import check_vocabularies
    from grpo.run.checkpoint import resolve_model_path
    from model import PRESETS, ModelConfig, Tokenizer

    if student in PRESETS:  # a random init: it takes the task's tokenizer when it loads
        return
    t, s = (ensure_base(m, log=log) if m in BASES else resolve_model_path(m)
            for m in (teacher, student))  # fmt: skip
    try:
        check_vocabularies(ModelConfig.from_hf_config(s).vocab_size,
                           ModelConfig.from_hf_config(t).vocab_size, Tokenizer.from_dir(s),
                           Tokenizer.from_dir(t))  # fmt: skip
    except ValueError as e:
        raise ValueError(f"--student {student} and the teacher {teacher}: {e}") from None


def demo_base(task: str) -> str:
    from grpo.bases import demo_base_name

    return demo_base_name("demo", task)


# ------------------------------------------------------------------------------- stages


def rl(a, name: str, model: str, stages: Stages, log) -> Path:
    """OUT/NAME: train_zero.py from `model`, resumed if it was stopped, reused if done."""
    import train_zero

    flags = ["--model", model, "--task", a.task, "--plot", "false", "--seed", str(a.seed),
             "--max-new-tokens", str(a.max_new_tokens), "--eval-n", str(a.heldout),
             *PLANS[a.task].rl_flags]  # fmt: skip
    return train_stage(train_zero.main, "train_zero.py", Path(a.out) / name, flags, stages,
                       name, log)  # fmt: skip


def distill_data(a, teacher: Path, stages: Stages, log) -> tuple[Path, dict[str, Any]]:
    """OUT/distill.jsonl: the teacher's correct traces, one per question (rejection sampling);
    OUT/prompts.jsonl: the prompts of all --questions (the on-policy stage's data)."""
    from grpo.experiments.rejection import rejection_sample, write_jsonl
    from grpo.run.context import rl_example
    from model.checkpoint import write_json_atomic

    path, stats_path = Path(a.out) / "distill.jsonl", Path(a.out) / "distill_data.json"
    if path.is_file() and stats_path.is_file() and "distill_data" in stages.seconds:
        log(f"=== distillation data: {path} exists, reused")
        return path, json.loads(stats_path.read_text())
    log(f"=== distillation data: {a.k} teacher samples on each of {a.questions} train "
        "questions, the correct ones kept (one per question)")  # fmt: skip
    t0 = time.perf_counter()
    model, tok, task = task_policy(str(teacher), a.seed, log, task=a.task)
    examples = [rl_example(task, p) for p in range(a.questions)]
    write_jsonl([{"prompt": task.prompt(ex), "question": ex["question"], "pos": p}
                 for p, ex in enumerate(examples)], Path(a.out) / "prompts.jsonl")  # fmt: skip
    records, stats = rejection_sample(
        model, tok, task, examples, k=a.k, keep=1, max_new_tokens=a.max_new_tokens,
        seed=a.seed, log=log,
    )  # fmt: skip
    if not records:
        raise ValueError(f"the teacher {teacher} passed none of its {stats['samples']} "
                         f"samples: nothing to distil (is it an R1-Zero-trained {a.task} "
                         "model?)")  # fmt: skip
    write_jsonl(records, path)
    write_json_atomic(stats_path, stats)
    stages.done("distill_data", time.perf_counter() - t0)
    log(f"  acceptance rate {stats['acceptance_rate']:.1%}; {stats['records']} traces from "
        f"{stats['questions_with_a_pass']} of {stats['questions']} questions")  # fmt: skip
    return path, stats


def sft_eval_every(steps: int, plan: Plan) -> int:
    """Evaluation interval giving about `plan.evals_per_stage` held-out points (and step 0)."""
    return max(1, math.ceil(steps / plan.evals_per_stage))


def sft(a, name: str, student: str, data: Path, flags: list[str], records: int, stages: Stages,
        log) -> Path:  # fmt: skip
    """OUT/NAME: train_sft.py of the student on `data` with `flags` (the SFT, forward-KL and
    on-policy stages), evaluated on the held-out questions along the way."""
    import train_sft

    steps = _flag(flags, "--steps")
    if not steps:
        epochs, batch = _flag(flags, "--epochs") or 2, _flag(flags, "--batch-size") or 32
        steps = epochs * math.ceil(records / batch)
    full = ["--model", student, "--data", str(data), "--seed", str(a.seed), "--task", a.task,
            "--max-new-tokens", str(a.max_new_tokens), "--eval-n", str(a.heldout),
            "--eval-every", str(sft_eval_every(steps, PLANS[a.task])), *flags]  # fmt: skip
    return train_stage(train_sft.main, "train_sft.py", Path(a.out) / name, full, stages, name,
                       log)  # fmt: skip


def _flag(flags: list[str], name: str) -> int | None:
    return int(flags[flags.index(name) + 1]) if name in flags else None


def choose_distilled(a, paths: dict[str, str], log) -> str:
    """The distilled student with the best greedy accuracy on the --validation train
    questions after the distillation's (OUT/validation.jsonl; ties: the order of DISTILLED)."""
    from grpo.evaluate import evaluate
    from grpo.run.context import rl_example

    file = Path(a.out) / "validation.jsonl"
    done = read_rows(file, "model")
    for name in DISTILLED:
        if name in done:
            continue
        model, tok, task = task_policy(paths[name], a.seed, task=a.task)
        qs = [rl_example(task, a.questions + i) for i in range(a.validation)]
        res = evaluate(model, tok, task, qs, max_new_tokens=a.max_new_tokens, seed=a.seed)
        row = {"model": name, "questions": len(qs), "accuracy": res.metrics["eval_accuracy"]}
        JsonlWriter(file).write(row)
        done[name] = row
        log(f"  validation: {name:<18} accuracy {row['accuracy']:.3f}")
    best = max(DISTILLED, key=lambda n: (done[n]["accuracy"], -DISTILLED.index(n)))
    log(f"=== the best distilled student on {a.validation} validation questions: {best}")
    return best


def evaluate_all(a, paths: dict[str, str], log) -> dict[str, dict[str, Any]]:
    """Greedy held-out metrics of each model, on the same questions (OUT/evals.jsonl)."""
    file = Path(a.out) / "evals.jsonl"
    done = read_rows(file, "model")
    for name in MODELS:
        if name in done:
            continue
        t0 = time.perf_counter()
        res = heldout_eval(paths[name], a.heldout, a.max_new_tokens, a.seed, log,
                           task=a.task)[0]  # fmt: skip
        m = res.metrics
        row = {"model": name, "questions": len(res.records), "accuracy": m["eval_accuracy"],
               "format_rate": m["eval_format_rate"], "length": m["eval_completion_len_mean"],
               **{k: m[f"eval_{k}"] for k in BEHAVIOUR if f"eval_{k}" in m},
               "eval_seconds": time.perf_counter() - t0}  # fmt: skip
        JsonlWriter(file).write(row)
        done[name] = row
        log(f"  {name:<22} accuracy {row['accuracy']:.3f}  format {row['format_rate']:.3f}  "
            f"length {row['length']:.1f}  ({row['eval_seconds']:.0f} s)")  # fmt: skip
    return done


# ------------------------------------------------------------------------------- compute


def stage_compute(run: Path, kind: str) -> dict[str, Any]:
    """The compute of one training stage from its metrics.jsonl, and its held-out curve.

    RL (train_zero.py): the student samples `tokens_generated` per step and trains on them
    `mu` times. SFT-type (train_sft.py): it trains on `tokens` per step, samples
    `sampled_tokens`, and the teacher scores `teacher_tokens`. The curve: (student tokens
    so far, held-out accuracy) at each evaluation row.
    """
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    mu = 1
    if kind == "rl":
        mu = int(json.loads((run / "train_config.json").read_text()).get("mu", 1))
    sampled = trained = scored = 0
    curve = []
    for r in rows:
        if "eval_accuracy" in r:
            curve.append([sampled + trained, r["eval_accuracy"]])
        elif kind == "rl" and "tokens_generated" in r:
            sampled += r["tokens_generated"]
            trained += mu * r["tokens_generated"]
        elif kind == "sft" and "tokens" in r:
            trained += r["tokens"]
            sampled += r.get("sampled_tokens", 0)
            scored += r.get("teacher_tokens", 0)
    return {"student_tokens_sampled": sampled, "student_tokens_trained": trained,
            "teacher_tokens_scored": scored, "curve": curve}  # fmt: skip


def compute(a, stages: Stages, data_stats: dict[str, Any], best: str) -> dict[str, Any]:
    """Each model's compute from the student base (the teacher's from its demo base)."""
    out, sec = Path(a.out), stages.seconds
    zero = {"student_tokens_sampled": 0, "student_tokens_trained": 0,
            "teacher_tokens_sampled": 0, "teacher_tokens_scored": 0, "seconds": 0.0}  # fmt: skip
    c: dict[str, dict[str, Any]] = {"student_base": {**zero, "curve": []}}
    c["teacher"] = ({**zero, **stage_compute(out / "teacher", "rl"), "seconds": sec["teacher"]}
                    if "teacher" in sec else {**zero, "seconds": None, "curve": []})  # fmt: skip
    data_tokens, data_s = data_stats["tokens_sampled"], sec.get("distill_data", 0.0)
    for name, kind in (("student_rl", "rl"), ("student_distilled", "sft"),
                       ("student_kd", "sft"), ("student_onpolicy", "sft")):  # fmt: skip
        c[name] = {**zero, **stage_compute(out / name, kind), "seconds": sec[name]}
        if name in ("student_distilled", "student_kd"):  # trained on the teacher's traces
            c[name]["teacher_tokens_sampled"] = data_tokens
            c[name]["seconds"] += data_s
    rl_part = stage_compute(out / "student_distilled_rl", "rl")
    first = c[best]
    shift = first["student_tokens_sampled"] + first["student_tokens_trained"]
    c["student_distilled_rl"] = {
        **{k: first[k] + rl_part.get(k, 0) for k in zero if k != "seconds"},
        "seconds": first["seconds"] + sec["student_distilled_rl"],
        "curve": [[shift + x, y] for x, y in rl_part["curve"]], "from": best,
    }  # fmt: skip
    for m in c.values():
        if m["seconds"] is not None:
            m["student_tokens"] = m["student_tokens_sampled"] + m["student_tokens_trained"]
    return c


# ------------------------------------------------------------------------------- the run


def run(a: argparse.Namespace, log) -> dict[str, Any]:
    from grpo.bases import ensure_base
    from grpo.bases.build import BASES
    from grpo.run.checkpoint import resolve_model_path
    from model.checkpoint import write_json_atomic

    settings = check_args(a, log)
    plan = PLANS[a.task]
    out = prepare(a.out, settings)
    stages = Stages(out)
    t_start = time.perf_counter()
    teacher = (resolve_model_path(a.teacher) if a.teacher
               else rl(a, "teacher", "demo", stages, log))  # fmt: skip
    student = a.student
    if student in BASES:  # a built-in base: the shipped copy (built if missing)
        student = str(ensure_base(student, log=log))
    student_rl = rl(a, "student_rl", student, stages, log)
    data, data_stats = distill_data(a, teacher, stages, log)
    records = data_stats["records"]
    paths = {"teacher": str(teacher), "student_base": student, "student_rl": str(student_rl)}
    paths["student_distilled"] = str(sft(a, "student_distilled", student, data, plan.sft_flags,
                                         records, stages, log))  # fmt: skip
    kd = ["--teacher", str(teacher), "--beta", "0", *plan.sft_flags]
    paths["student_kd"] = str(sft(a, "student_kd", student, data, kd, records, stages, log))
    onpolicy = ["--teacher", str(teacher), "--beta", "1", "--lmbda", "1", *plan.onpolicy_flags]
    paths["student_onpolicy"] = str(sft(a, "student_onpolicy", student, out / "prompts.jsonl",
                                        onpolicy, a.questions, stages, log))  # fmt: skip
    best = choose_distilled(a, paths, log)
    paths["student_distilled_rl"] = str(rl(a, "student_distilled_rl", paths[best], stages, log))
    log("=== held-out evaluation, greedy, on the same questions")
    evals = evaluate_all(a, paths, log)
    results = {name: evals[name]["accuracy"] for name in MODELS}
    comp = compute(a, stages, data_stats, best)
    keep = ("accuracy", "format_rate", "length", "questions", *BEHAVIOUR)
    summary = {
        "task": a.task, "settings": settings, "paths": paths, "distill_data": data_stats,
        "best_distilled": best, "stage_seconds": stages.seconds,
        "models": {n: {k: evals[n][k] for k in keep if k in evals[n]} | comp[n]
                   for n in MODELS},
        "seconds_this_run": time.perf_counter() - t_start,
    }  # fmt: skip
    write_json_atomic(out / "results.json", results)
    write_json_atomic(out / "summary.json", summary)
    figure(summary, Path(a.figure))
    log(f"figure: {a.figure}")
    for line in table(summary):
        log(line)
    return results


def table(summary: dict[str, Any]) -> list[str]:
    """The comparison as Markdown rows."""
    header = ["model", "held-out accuracy", "format rate", "mean length", "student tokens",
              "teacher tokens", "wall time"]  # fmt: skip
    rows = []
    for name, m in summary["models"].items():
        own = "-" if m["seconds"] is None else f"{m['student_tokens'] / 1e3:.0f}k"
        teach = m["teacher_tokens_sampled"] + m["teacher_tokens_scored"]
        rows.append([name, f"{m['accuracy']:.3f}", f"{m['format_rate']:.3f}",
                     f"{m['length']:.1f}", own, "-" if m["seconds"] is None else
                     f"{teach / 1e3:.0f}k", "-" if m["seconds"] is None else
                     f"{m['seconds']:.0f} s"])  # fmt: skip
    return markdown_table(header, rows)


STYLE = {"student_rl": ("C3", "student RL (GRPO)"),
         "student_distilled": ("C0", "SFT on teacher traces (R1)"),
         "student_kd": ("C1", "forward KL on teacher traces"),
         "student_onpolicy": ("C2", "reverse KL on own samples (on-policy)"),
         "student_distilled_rl": ("C4", "best distilled, then GRPO")}  # fmt: skip


def figure(summary: dict[str, Any], out: Path) -> Path:
    """Held-out accuracy against student-side tokens (sampled + trained), one line per arm."""
    from grpo.run.plot import _matplotlib

    plt = _matplotlib()
    models = summary["models"]
    fig, ax = plt.subplots(figsize=(8, 5))
    base = models["student_base"]["accuracy"]
    for name, (color, label) in STYLE.items():
        m = models[name]
        curve = [list(p) for p in m["curve"]] or [[m["student_tokens"], m["accuracy"]]]
        if name != "student_distilled_rl":
            curve = [[0, base]] + [p for p in curve if p[0] > 0]
        else:
            start = models[m["from"]]
            curve = [[start["student_tokens"], start["accuracy"]]] + curve[1:]
        curve[-1] = [m["student_tokens"], m["accuracy"]]  # the final, uniform evaluation
        ax.plot([x / 1e3 for x, _ in curve], [y for _, y in curve], color=color, marker="o",
                ms=4, label=label)  # fmt: skip
    ax.axhline(models["teacher"]["accuracy"], color="black", ls="--", lw=1,
               label=f"teacher ({models['teacher']['accuracy']:.3f})")  # fmt: skip
    ax.axhline(base, color="grey", ls=":", lw=1, label=f"student base ({base:.3f})")
    ax.set_xlabel("student-side tokens from the student base (sampled + trained, thousands)")
    n = models["teacher"]["questions"]
    ax.set_ylabel(f"greedy held-out accuracy ({n} {summary['task']} questions)")
    ax.set_title(f"Distillation vs. RL on the {summary['task']} student")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncol=2)  # above the teacher line
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    return cli("python -m grpo.experiments.distill", run, build_parser(), argv, (ImportError,))


if __name__ == "__main__":
    sys.exit(main())
