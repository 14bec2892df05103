"""DeepSeek-R1's multi-stage pipeline, in miniature (DeepSeek-AI 2025).

    python -m grpo.experiments.r1_pipeline --out runs/r1          # about 20 minutes on 2 cores
    python -m grpo.experiments.r1_pipeline --out runs/r1 --zero runs/addition-x  # reuse a Zero run

On the addition demo, from the demo base:

  r1_zero       R1-Zero: train_zero.py's demo (OUT/r1_zero), or --zero;
  cold_start    1. SFT of the base on a few hundred of R1-Zero's traces that are
                   correct AND readable (grpo/tasks/readability.py: the think block is the
                   question's canonical column-by-column work, nothing stray);
  reasoning_rl  2. GRPO from cold_start with the accuracy and format rewards plus
                   --readability-weight x readable (R1's language-consistency reward);
  (data)        3. rejection sampling of reasoning_rl on --questions train questions,
                   correct and readable kept, mixed with --non-reasoning documents of
                   the base corpus (worked examples, no template, no tags);
  sft           4. SFT of the BASE on that mix;
  final_rl      5. a final, shorter GRPO stage from sft, same rewards.

Each model, and the base, is evaluated on the same --heldout held-out
questions: greedy (accuracy, format rate, length, readability) and one sample
at temperature 1 (accuracy, readability), where an unreadable trace behind
a right answer shows. OUT/results.json holds the table; every stage is reused
when the command runs again.
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
    at_least,
    check_model,
    check_out,
    cli,
    finite_float,
    heldout_eval,
    markdown_table,
    prepare,
    read_rows,
    task_policy,
    train_stage,
)
from grpo.run.runfolder import JsonlWriter  # noqa: E402

MODELS = ("base", "r1_zero", "cold_start", "reasoning_rl", "sft", "final_rl")
# Flags of each training stage beyond --model/--data/--out/--seed/--max-new-tokens.
COLD_SFT_FLAGS = ["--epochs", "3", "--batch-size", "32", "--lr", "3e-4", "--warmup-steps", "3",
                  "--eval-n", "0"]  # fmt: skip
RL_FLAGS: list[str] = []  # the addition demo's GRPO
SFT_FLAGS = ["--epochs", "2", "--batch-size", "32", "--lr", "3e-4", "--warmup-steps", "5",
             "--eval-n", "0"]  # fmt: skip
FINAL_RL_FLAGS = ["--steps", "20", "--warmup-steps", "2", "--eval-every", "5"]
SETTINGS = ("zero", "cold_questions", "questions", "non_reasoning", "readability_weight",
            "heldout", "max_new_tokens", "seed")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.experiments.r1_pipeline",
                           description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for every stage and the results")
    p.add_argument("--zero", default=None,
                   help="an R1-Zero-trained addition model (default: train train_zero.py's "
                        "demo into OUT/r1_zero)")  # fmt: skip
    p.add_argument("--cold-questions", type=int, default=300,
                   help="train questions sampled for the cold start (default 300)")  # fmt: skip
    p.add_argument("--questions", type=int, default=1500,
                   help="train questions rejection-sampled in stage 3 (default 1500)")  # fmt: skip
    p.add_argument("--non-reasoning", type=int, default=300,
                   help="base-corpus documents mixed into stage 3's data (default 300)")
    p.add_argument("--readability-weight", type=finite_float, default=0.5,
                   help="reward weight of a readable trace in stages 2 and 5 (default 0.5)")
    p.add_argument("--heldout", type=int, default=500, help="held-out questions (default 500)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="completion budget")
    p.add_argument("--seed", type=int, default=0)
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out, and
    each model (--zero, the demo base): it loads, and its context holds the held-out
    questions and the questions sampled with it (or with a model trained from it)."""
    from grpo.run.context import rl_example
    from grpo.tasks import get_task

    at_least(a, 1, "cold_questions", "questions", "heldout", "max_new_tokens")
    at_least(a, 0, "non_reasoning", "seed", "readability_weight")
    check_out(a.out)
    task = get_task("addition")
    cold = [rl_example(task, p) for p in range(a.cold_questions)]
    later = [rl_example(task, p) for p in range(a.cold_questions,
                                                a.cold_questions + a.questions)]  # fmt: skip
    if a.zero:
        check_model("--zero", a.zero, a.max_new_tokens, heldout=a.heldout, sampled=cold,
                    log=log)  # fmt: skip
    check_model(None, "demo", a.max_new_tokens, heldout=a.heldout,
                sampled=later + ([] if a.zero else cold), log=log)  # fmt: skip
    return {k: getattr(a, k) for k in SETTINGS}


def non_reasoning_records(n: int) -> list[dict[str, Any]]:
    """Documents of the base corpus that are not R1 transcripts: worked examples, cut after
    their question ("What is a + b?" -> " Column by column: ... The answer is c.")."""
    from grpo.bases.addition import corpus_task, worked_example

    task = corpus_task()
    out = []
    for i in range(n):
        ex = task.train_example(i)
        text = worked_example(ex["a"], ex["b"])
        q, rest = text.split("?", 1)
        out.append({"prompt": q + "?", "completion": rest, "kind": "non_reasoning"})
    return out


def sample_data(a, model_path: str, positions: range, file: Path, stages: Stages, name: str,
                log, extra: list[dict] = ()) -> dict[str, Any]:  # fmt: skip
    """FILE: the model's correct AND readable samples (2 per question, one kept) + extra."""
    from grpo.experiments.rejection import rejection_sample, write_jsonl
    from grpo.run.context import rl_example
    from grpo.tasks.readability import readable
    from model.checkpoint import write_json_atomic

    stats_file = file.with_suffix(".json")
    if file.is_file() and stats_file.is_file() and name in stages.seconds:
        log(f"=== {name}: {file} exists, reused")
        return json.loads(stats_file.read_text())
    log(f"=== {name}: 2 samples of each of {len(positions)} train questions with "
        f"{model_path}, correct and readable ones kept")  # fmt: skip
    t0 = time.perf_counter()
    model, tok, task = task_policy(model_path, a.seed, log)
    records, stats = rejection_sample(
        model, tok, task, [rl_example(task, p) for p in positions], k=2, keep=1,
        max_new_tokens=a.max_new_tokens, seed=a.seed + len(name), positions=list(positions),
        log=log, also=lambda text, ex: readable(task, text, ex),
    )  # fmt: skip
    if not records:
        raise ValueError(f"{name}: no sample of {model_path} was correct and readable")
    stats["non_reasoning"] = len(extra)
    write_jsonl(records + list(extra), file)
    write_json_atomic(stats_file, stats)
    stages.done(name, time.perf_counter() - t0)
    log(f"  {stats['records']} traces kept ({stats['acceptance_rate']:.1%} of samples correct "
        f"and readable), {len(extra)} non-reasoning documents added")  # fmt: skip
    return stats


def evaluate_all(a, paths: dict[str, str], log) -> dict[str, dict[str, float]]:
    """Greedy and sampled (T = 1) held-out metrics with readability (OUT/evals.jsonl)."""
    from grpo.tasks import get_task
    from grpo.tasks.readability import readable

    file = Path(a.out) / "evals.jsonl"
    done = read_rows(file, "model")
    task = get_task("addition")
    for name in MODELS:
        if name in done:
            continue
        greedy, sampled = heldout_eval(paths[name], a.heldout, a.max_new_tokens, a.seed, log,
                                       temperatures=(0.0, 1.0))  # fmt: skip
        row: dict[str, Any] = {"model": name, "questions": len(greedy.records)}
        for mode, res in (("greedy", greedy), ("sampled", sampled)):
            texts = [r["completions"][0] for r in res.records]
            exs = [r["example"] for r in res.records]
            read = [readable(task, t, ex) for t, ex in zip(texts, exs)]
            right = [r["scores"][0]["accuracy"] == 1.0 for r in res.records]
            row[f"{mode}_accuracy"] = res.metrics["eval_accuracy"]
            row[f"{mode}_readable"] = sum(read) / len(read)
            # Right answers whose trace is not readable: what R1's consistency reward targets.
            row[f"{mode}_right_unreadable"] = sum(r and not d for r, d in zip(right, read)
                                                  ) / len(read)  # fmt: skip
            if mode == "greedy":
                row["format_rate"] = res.metrics["eval_format_rate"]
                row["length"] = res.metrics["eval_completion_len_mean"]
        JsonlWriter(file).write(row)
        done[name] = row
        log(f"  {name:<13} greedy accuracy {row['greedy_accuracy']:.3f} readable "
            f"{row['greedy_readable']:.3f} | sampled accuracy {row['sampled_accuracy']:.3f} "
            f"readable {row['sampled_readable']:.3f}")  # fmt: skip
    return done


def run(a: argparse.Namespace, log) -> dict[str, Any]:
    import train_sft
    import train_zero
    from grpo.bases import ensure_base
    from grpo.run.checkpoint import resolve_model_path
    from model.checkpoint import write_json_atomic

    settings = check_args(a, log)
    out = prepare(a.out, settings, "a pipeline run")
    stages = Stages(out)
    base = str(ensure_base("demo", log=log))
    common = ["--seed", str(a.seed)]
    rl = [*common, "--plot", "false", "--max-new-tokens", str(a.max_new_tokens)]
    reward = ["--readability-weight", str(a.readability_weight)]

    def zero_stage(name, flags):
        return str(train_stage(train_zero.main, "train_zero.py", out / name, flags, stages,
                               name, log))  # fmt: skip

    def sft_stage(name, data, flags):
        return str(train_stage(train_sft.main, "train_sft.py", out / name,
                               ["--model", base, "--data", str(data), *common, *flags],
                               stages, name, log))  # fmt: skip

    zero = (str(resolve_model_path(a.zero)) if a.zero
            else zero_stage("r1_zero", ["--model", base, *rl, *RL_FLAGS]))  # fmt: skip
    # 1. cold start: a few hundred correct, readable R1-Zero traces.
    cold_data = out / "cold_start.jsonl"
    cold_stats = sample_data(a, zero, range(a.cold_questions), cold_data, stages,
                             "cold_start_data", log)  # fmt: skip
    cold = sft_stage("cold_start", cold_data, COLD_SFT_FLAGS)
    # 2. reasoning RL with the readability reward.
    reasoning = zero_stage("reasoning_rl", ["--model", cold, *rl, *reward, *RL_FLAGS])
    # 3. rejection sampling on new questions, plus non-reasoning data.
    mix = out / "sft_mix.jsonl"
    start = a.cold_questions
    mix_stats = sample_data(a, reasoning, range(start, start + a.questions), mix, stages,
                            "sft_data", log, non_reasoning_records(a.non_reasoning))  # fmt: skip
    # 4. SFT of the base on the mix; 5. the final RL stage.
    sft = sft_stage("sft", mix, SFT_FLAGS)
    final = zero_stage("final_rl", ["--model", sft, *rl, *reward, *RL_FLAGS, *FINAL_RL_FLAGS])
    paths = {"base": base, "r1_zero": zero, "cold_start": cold, "reasoning_rl": reasoning,
             "sft": sft, "final_rl": final}  # fmt: skip
    log("=== held-out evaluation: greedy, and one sample at temperature 1")
    evals = evaluate_all(a, paths, log)
    results = {"models": {n: {k: v for k, v in evals[n].items() if k != "model"}
                          for n in MODELS},
               "data": {"cold_start": cold_stats, "sft": mix_stats},
               "stage_seconds": stages.seconds, "paths": paths,
               "settings": settings}  # fmt: skip
    write_json_atomic(out / "results.json", results)
    for line in table(results):
        log(line)
    return results


def table(results: dict[str, Any]) -> list[str]:
    header = ["stage", "greedy accuracy", "format rate", "length", "readable (greedy)",
              "sampled accuracy", "readable (sampled)", "right but unreadable (sampled)"]
    rows = [[name, f"{m['greedy_accuracy']:.3f}", f"{m['format_rate']:.3f}", f"{m['length']:.1f}",
             f"{m['greedy_readable']:.3f}", f"{m['sampled_accuracy']:.3f}",
             f"{m['sampled_readable']:.3f}", f"{m['sampled_right_unreadable']:.3f}"]
            for name, m in results["models"].items()]  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    return cli("python -m grpo.experiments.r1_pipeline", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
