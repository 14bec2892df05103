"""STaR (Zelikman et al. 2022) in miniature: fine-tune on your own correct reasoning, repeat.

    python -m grpo.experiments.star --out runs/star            # about 20 minutes on 2 cores
    python -m grpo.experiments.star --out runs/star --rl runs/addition-x   # reuse an R1-Zero run

On the addition demo (STaR, Zelikman et al. 2022), from the demo base M_0:

    for iteration n = 1..N (--iterations):
        sample --k completions (temperature 1) of each of --questions train questions
            with M_{n-1}; the correct, well-formed ones are kept (the rule of
            grpo/experiments/rejection.py)
        rationalise each question with no correct sample: the same question with the
            answer given as a hint; a rationale that reaches the answer is kept, stored
            with the plain prompt, WITHOUT the hint (`hinted_example`, `star_data`)
        M_n = SFT of the ORIGINAL base (not M_{n-1}) on what iteration n kept, for
            --sft-steps x 1.2^(n-1) steps (the paper adds 20% per iteration)
        evaluate M_n greedily on --heldout held-out questions

Each iteration draws new train questions (iteration n reads positions
(n-1) x questions ..). The comparison: R1-Zero GRPO (train_zero.py's demo, or
--rl) at the same number of sampled completions, read from its metrics.jsonl
(every GRPO step samples prompts_per_step x group_size completions; its
held-out accuracy is logged every eval_every steps).

OUT/results.json: {"iterations": [{iteration, completions, completions_total,
correct, rationalised, kept, sft_steps, accuracy, format_rate, length,
grpo_step, grpo_completions, grpo_accuracy}], "base": {...}, "grpo": [...]}.
Every stage is kept in OUT and reused when the command runs again.
"""

from __future__ import annotations

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from grpo.experiments.common import (  # noqa: E402
    at_least,
    check_model,
    check_out,
    cli,
    heldout_eval,
    markdown_table,
    prepare,
    run_stage,
    task_policy,
)

# train_sft.py flags of each iteration's SFT beyond --model/--data/--out/--seed/--steps.
SFT_FLAGS: list[str] = ["--batch-size", "32", "--lr", "3e-4", "--warmup-steps", "5",
                        "--eval-n", "0"]  # fmt: skip
# train_zero.py flags of the GRPO comparison beyond --out/--seed/--max-new-tokens: the demo.
RL_FLAGS: list[str] = []
SETTINGS = ("iterations", "questions", "k", "sft_steps", "heldout", "max_new_tokens", "seed",
            "rl")  # fmt: skip


def hinted_example(example: dict[str, Any]) -> dict[str, Any]:
    """The example with the answer given as a hint at the end of its question."""
    if "solution" in example:  # countdown: one expression that reaches the target
        hint = f" Hint: {example['solution']} = {example['target']}."
    else:
        hint = f" Hint: the answer is {example['target']}."
    return {**example, "question": example["question"] + hint}


def star_data(model, tok, task, examples: list[dict], *, k: int, max_new_tokens: int,
              seed: int, positions: list[int]) -> tuple[list[dict], dict[str, Any]]:  # fmt: skip
    """One iteration's SFT records: the correct samples, then the rationalisations."""
    from grpo.experiments.rejection import rejection_sample

    records, s1 = rejection_sample(model, tok, task, examples, k=k, keep=1,
                                   max_new_tokens=max_new_tokens, seed=seed,
                                   positions=positions)  # fmt: skip
    solved = {r["pos"] for r in records}
    wrong = [(p, ex) for p, ex in zip(positions, examples) if p not in solved]
    hinted = [hinted_example(ex) for _, ex in wrong]
    rationales, s2 = rejection_sample(model, tok, task, hinted, k=1, keep=1,
                                      max_new_tokens=max_new_tokens, seed=seed + 7919,
                                      positions=[p for p, _ in wrong])  # fmt: skip
    plain = {p: ex for p, ex in wrong}
    for r in rationales:  # stored WITHOUT the hint: the plain question's prompt
        ex = plain[r["pos"]]
        r.update(prompt=task.prompt(ex), question=ex["question"], rationalised=True)
    stats = {"completions": s1["samples"] + s2["samples"], "correct": len(records),
             "rationalised": len(rationales), "kept": len(records) + len(rationales)}  # fmt: skip
    return records + rationales, stats


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.experiments.star",
                           description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for every iteration and the results")
    p.add_argument("--iterations", type=int, default=4, help="STaR iterations (default 4)")
    p.add_argument("--questions", type=int, default=800,
                   help="train questions per iteration (default 800)")  # fmt: skip
    p.add_argument("--k", type=int, default=2, help="samples per question (default 2)")
    p.add_argument("--sft-steps", type=int, default=40,
                   help="SFT steps of iteration 1, +20%% per iteration (default 40)")  # fmt: skip
    p.add_argument("--heldout", type=int, default=500, help="held-out questions (default 500)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="completion budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rl", default=None,
                   help="the GRPO run to compare with: a train_zero.py run folder of the "
                        "addition demo (default: train one into OUT/grpo)")  # fmt: skip
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out, --rl,
    and the base: it loads, and its context holds the held-out questions and every train
    question (with its hint) the iterations sample, at --max-new-tokens."""
    from grpo.run.context import rl_example
    from grpo.tasks import get_task

    at_least(a, 1, "iterations", "questions", "k", "sft_steps", "heldout", "max_new_tokens")
    at_least(a, 0, "seed")
    check_out(a.out)
    if a.rl:
        for name in ("metrics.jsonl", "train_config.json"):
            if not (Path(a.rl) / name).is_file():
                raise ValueError(f"--rl {a.rl}: not a train_zero.py run folder (no {name})")
    task = get_task("addition")
    train = [rl_example(task, p) for p in range(a.iterations * a.questions)]
    check_model(None, "demo", a.max_new_tokens, heldout=a.heldout,
                sampled=train + [hinted_example(ex) for ex in train], log=log)  # fmt: skip
    return {k: getattr(a, k) for k in SETTINGS}


def evaluate_model(a, path: str, log) -> dict[str, float]:
    m = heldout_eval(path, a.heldout, a.max_new_tokens, a.seed, log)[0].metrics
    return {"accuracy": m["eval_accuracy"], "format_rate": m["eval_format_rate"],
            "length": m["eval_completion_len_mean"]}  # fmt: skip


def iteration(a, n: int, model_path: str, base: str, log) -> dict[str, Any]:
    """Iteration n (1-based): data from `model_path`, SFT of `base`, evaluation."""
    import train_sft
    from grpo.experiments.rejection import write_jsonl
    from grpo.run.checkpoint import resolve_model_path
    from grpo.run.context import rl_example
    from model.checkpoint import write_json_atomic

    folder = Path(a.out) / f"iter_{n}"
    done = folder / "iteration.json"
    if done.is_file():
        log(f"=== iteration {n}: {done} exists, reused")
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data, stats_file = folder / "data.jsonl", folder / "data.json"
    if not stats_file.is_file():
        log(f"=== iteration {n}: {a.k} samples of {a.questions} train questions with "
            f"{model_path}, rationalising the unsolved ones")  # fmt: skip
        model, tok, task = task_policy(model_path, a.seed, log)
        positions = list(range((n - 1) * a.questions, n * a.questions))
        records, stats = star_data(model, tok, task, [rl_example(task, p) for p in positions],
                                   k=a.k, max_new_tokens=a.max_new_tokens,
                                   seed=a.seed * 1009 + n, positions=positions)  # fmt: skip
        if not records:
            raise ValueError(f"iteration {n}: nothing correct and no rationale reached its "
                             "answer: nothing to fine-tune on")  # fmt: skip
        write_jsonl(records, data)
        write_json_atomic(stats_file, stats)
    stats = json.loads(stats_file.read_text())
    log(f"  kept {stats['kept']}: {stats['correct']} correct, {stats['rationalised']} "
        f"rationalised ({stats['completions']} completions sampled)")  # fmt: skip
    steps = math.ceil(a.sft_steps * 1.2 ** (n - 1))
    run = folder / "sft"
    if not _finished(run, steps):
        flags = ["--model", base, "--data", str(data), "--out", str(run), "--seed", str(a.seed),
                 "--steps", str(steps), *SFT_FLAGS]  # fmt: skip
        if (run / "metrics.jsonl").exists():
            flags.append("--resume")
        run_stage(train_sft.main, flags, "train_sft.py", log)
    path = str(resolve_model_path(run))
    m = evaluate_model(a, path, log)
    row = {"iteration": n, **stats, "sft_steps": steps, **m, "model": path,
           "seconds": time.perf_counter() - t0}  # fmt: skip
    write_json_atomic(done, row)
    log(f"  iteration {n}: held-out accuracy {m['accuracy']:.3f}  format {m['format_rate']:.3f}"
        f"  length {m['length']:.1f}")  # fmt: skip
    return row


def grpo_curve(a, log) -> tuple[list[dict[str, Any]], int]:
    """The GRPO run's evaluations [{step, completions, accuracy}] and completions per step."""
    import train_zero

    run = Path(a.rl) if a.rl else Path(a.out) / "grpo"
    if not a.rl and not _finished(run):
        flags = ["--out", str(run), "--plot", "false", "--seed", str(a.seed),
                 "--max-new-tokens", str(a.max_new_tokens), *RL_FLAGS]  # fmt: skip
        if (run / "metrics.jsonl").exists():
            flags.append("--resume")
        run_stage(train_zero.main, flags, "train_zero.py", log)
    cfg = json.loads((run / "train_config.json").read_text())
    per_step = cfg["prompts_per_step"] * cfg["group_size"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [{"step": r["step"], "completions": r["step"] * per_step,
              "accuracy": r["eval_accuracy"]} for r in rows if "eval_accuracy" in r]  # fmt: skip
    return curve, per_step


def _finished(run: Path, steps: int | None = None) -> bool:
    """Whether the run's latest checkpoint is of its last step (`steps`, or its config's)."""
    from grpo.run.checkpoint import latest_checkpoint

    if steps is None:
        cfg = run / "train_config.json"
        if not cfg.is_file():
            return False
        steps = json.loads(cfg.read_text())["steps"]
    last = latest_checkpoint(run)
    return last is not None and last.name == f"step_{steps:06d}"


def run(a: argparse.Namespace, log) -> dict[str, Any]:
    from grpo.bases import ensure_base
    from model.checkpoint import write_json_atomic

    settings = check_args(a, log)
    out = prepare(a.out, settings, "a STaR run")
    base = str(ensure_base("demo", log=log))
    base_file = out / "base.json"
    if not base_file.is_file():
        write_json_atomic(base_file, evaluate_model(a, base, log))
    base_m = json.loads(base_file.read_text())
    rows, model, total = [], base, 0
    for n in range(1, a.iterations + 1):
        row = iteration(a, n, model, base, log)
        total += row["completions"]
        rows.append({**row, "completions_total": total})
        model = row["model"]
    curve, per_step = grpo_curve(a, log)
    for row in rows:  # GRPO's last evaluation within the same sampled completions
        within = [c for c in curve if c["completions"] <= row["completions_total"]]
        g = within[-1] if within else curve[0]
        row.update(grpo_step=g["step"], grpo_completions=g["completions"],
                   grpo_accuracy=g["accuracy"])
    results = {"base": base_m, "iterations": rows, "grpo": curve,
               "grpo_completions_per_step": per_step, "settings": settings}  # fmt: skip
    write_json_atomic(out / "results.json", results)
    for line in table(results):
        log(line)
    return results


def table(results: dict[str, Any]) -> list[str]:
    header = ["STaR iteration", "completions sampled", "kept (correct + rationalised)",
              "SFT steps", "held-out accuracy", "GRPO at the same completions"]
    rows = [["0 (base)", "0", "-", "-", f"{results['base']['accuracy']:.3f}", "-"]]
    rows += [[str(r["iteration"]), str(r["completions_total"]),
              f"{r['kept']} ({r['correct']} + {r['rationalised']})", str(r["sft_steps"]),
              f"{r['accuracy']:.3f}",
              f"{r['grpo_accuracy']:.3f} (step {r['grpo_step']}, {r['grpo_completions']})"]
             for r in results["iterations"]]  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    return cli("python -m grpo.experiments.star", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
