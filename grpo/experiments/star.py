"""STaR (Zelikman et al. 2022) in miniature: fine-tune on your own correct reasoning, repeat.

    python -m grpo.experiments.star --out runs/star            # about 20 minutes on 2 cores
    python -m grpo.experiments.star --out runs/star --rl runs/addition-x   # reuse an R1-Zero run
    python -m grpo.experiments.star --task countdown --out runs/star-countdown

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

On countdown (--task countdown, the demo-countdown base, 480 tokens) the base
cannot read a hint in the prompt (0 of 182 pass on iteration 1's questions,
measured each run as "prompt_hint_*"), so a question is rationalised by
constrained generation instead (`constrained_rationales`): under the PLAIN
prompt, after the base's own first try if it failed honestly, the
solution's first step is forced in the base's try grammar (`countdown_hint`)
with its first finishing step's operands, and the base writes the rest. The
stored completion holds the forced tokens (counted: "forced_tokens",
"kept_forced_tokens"); the prompt never holds the hint.

Each iteration draws new train questions (iteration n reads positions
(n-1) x questions ..). The comparison: R1-Zero GRPO (train_zero.py's demo, or
--rl) at the same number of sampled completions, read from its metrics.jsonl
(every GRPO step samples prompts_per_step x group_size completions; its
held-out accuracy is logged every eval_every steps).

OUT/results.json: {"iterations": [{iteration, completions, completions_total,
correct, rationalise_attempts, rationalised, kept, sft_steps, accuracy,
format_rate, length, grpo_step, grpo_completions, grpo_accuracy, and on
countdown the constrained_rationales stats}], "base": {...}, "grpo": [...]}.
Every stage is kept in OUT and reused when the command runs again.
"""

from __future__ import annotations

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
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
# Each task's defaults: (iterations, questions, k, sft_steps, heldout, max_new_tokens), the
# demo base and the train_zero.py flags of its GRPO comparison. Countdown's: 3 x (300 x 4
# samples + the rationalisations) is about GRPO's 30 steps of 16 x 8 (3,840 completions);
# 480 tokens is the countdown demo's budget (grpo/run/config.py TASK_DEFAULTS).
TASKS: dict[str, dict[str, Any]] = {
    "addition": {"iterations": 4, "questions": 800, "k": 2, "sft_steps": 40, "heldout": 500,
                 "max_new_tokens": 128, "base": "demo", "rl_flags": []},
    "countdown": {"iterations": 3, "questions": 300, "k": 4, "sft_steps": 40, "heldout": 500,
                  "max_new_tokens": 480, "base": "demo-countdown",
                  "rl_flags": ["--task", "countdown"]},
}  # fmt: skip


def hinted_example(example: dict[str, Any]) -> dict[str, Any]:
    """The example with the answer given as a hint at the end of its question."""
    if "solution" in example:  # countdown: one expression that reaches the target
        hint = f" Hint: {example['solution']} = {example['target']}."
    else:
        hint = f" Hint: the answer is {example['target']}."
    return {**example, "question": example["question"] + hint}


# Countdown's rationalisation: hint-constrained generation (the docstring's "countdown").
_SOLUTION = (re.compile(r"^\(\s*(\d{1,6})\s*([-+*/])\s*(\d{1,6})\s*\)\s*[-+*/]\s*(\d{1,6})$"),
             re.compile(r"^(\d{1,6})\s*[-+*/]\s*\(\s*(\d{1,6})\s*([-+*/])\s*(\d{1,6})\s*\)$"))
_STEP = re.compile(r"(\d{1,6})([-+*/])(\d{1,6})=(\d{1,7})")
VERDICT_NO = " no."


def _inner_step(solution: str) -> tuple[int, str, int] | None:
    """The inner operation (x, op, y) of a generator's 3-number solution, as written:
    "(x op y) op c" or "c op (x op y)"; None for any other shape. Regexes only."""
    s = solution.strip()
    if m := _SOLUTION[0].match(s):
        return int(m[1]), m[2], int(m[3])
    if m := _SOLUTION[1].match(s):
        return int(m[2]), m[3], int(m[4])
    return None


def countdown_hint(example: dict[str, Any]) -> tuple[str, str] | None:
    """(the hinted first step in the base's try grammar, e.g. "12-5=7", where it came from).

    The step is the solution's inner operation, written as the base's searcher writes a
    first step (grpo/bases/countdown_demo.py: larger operand first, a positive integer
    result, no division by 1): x-y with x < y becomes y-x (the outer operation then flips,
    c+(x-y) = c-(y-x)), x/1 becomes x*1. It is kept ("solution") only if one of the
    finishing steps of the base's grammar then reaches the target. Otherwise (a fractional
    or zero inner value: 18 of the 333 unsolved questions of the countdown run in
    docs/beyond_zero.md) the hint is the first step of the first try that hits in the
    base's fixed search order ("search"); None if no try hits. Integer arithmetic only;
    nothing is eval'ed."""
    from grpo.bases.countdown_demo import first_steps, full_search, make_try

    numbers, target = example["numbers"], example["target"]
    steps = first_steps(numbers)
    inner = _inner_step(example.get("solution", ""))
    if inner is not None:
        x, op, y = inner
        if op == "-":
            x, y = max(x, y), min(x, y)
        elif op == "/" and y == 1:
            op = "*"
        elif op in "+*":
            x, y = max(x, y), min(x, y)
        for step in steps:
            if (step.a, step.op, step.b) == (x, op, y):
                t = make_try(step, target)
                if t is not None and t.hit:
                    return step.text(), "solution"
    tries = full_search(numbers, target)
    return (tries[-1].first.text(), "search") if tries else None


# Whether the hinted try's first finishing operands are forced too (" 12-5=7: 14+7="), not
# only its first step: on iteration 1's 182 unsolved questions of the countdown default, 21
# attempts passed with the step alone (12%), 61 with the operands (34%; docs/beyond_zero.md).
FORCE_FINISH = True


def _first_finish(example: dict[str, Any], hint: str) -> str:
    """The start of the hinted try's first finishing step, "40+11=" (its operands)."""
    from grpo.bases.countdown_demo import first_steps, make_try

    step = next(s for s in first_steps(example["numbers"]) if s.text() == hint)
    f = make_try(step, example["target"]).finishes[0]
    return f"{f.a}{f.op}{f.b}="


def _header(example: dict[str, Any]) -> str:
    """How the base opens a search: " <think> 5 12 14 to 21:"."""
    return f" <think> {' '.join(map(str, example['numbers']))} to {example['target']}:"


def _value(a: int, op: str, b: int) -> int | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a // b if b and a % b == 0 else None


def honest_failed_try(text: str, example: dict[str, Any], hint: str) -> bool:
    """Whether `text` (a sample cut after its first " no.") is the base's header and one
    try that honestly fails: every step's arithmetic right, no finishing step at the
    target, and a first step other than the hint (which is forced next)."""
    head = _header(example)
    if not text.startswith(head) or not text.endswith(VERDICT_NO):
        return False
    body = text[len(head) : -len(VERDICT_NO)]
    if "<" in body or " yes." in body or ":" not in body:
        return False
    steps = [(int(a), op, int(b), int(c)) for a, op, b, c in _STEP.findall(body)]
    if len(steps) < 2 or any(_value(a, op, b) != c for a, op, b, c in steps):
        return False
    first = body.split(":")[0].strip()
    return first != hint and all(c != example["target"] for *_, c in steps[1:])


def _continue(model, tok, prompts: list[str], prefixes: list[str], *, max_new_tokens: int,
              stop_strings: list[str], seed: int, temperature: float = 1.0,
              ) -> list[tuple[str, int, str, int]]:  # fmt: skip
    """Sample (temperature 1) one continuation of each prompt + prefix (the prefix is
    forced: it is put after the prompt, as the start of the completion), within
    max_new_tokens counted from the start of the completion (prefix included).
    [(text after the prefix, tokens sampled, "stop" or "length", prefix tokens)]."""
    import torch

    from model import generate

    pids = [tok.encode(p) for p in prompts]
    xids = [tok.encode(x) if x else [] for x in prefixes]
    budget = [max_new_tokens - len(x) for x in xids]
    out: list[tuple[str, int, str, int]] = [("", 0, "length", len(x)) for x in xids]
    rows = [i for i, b in enumerate(budget) if b > 0]
    if not rows:
        return out
    with torch.no_grad():
        g = generate(model, [pids[i] + xids[i] for i in rows],
                     max_new_tokens=max(budget[i] for i in rows), temperature=temperature,
                     eos_ids=tok.eos_ids, stop_strings=stop_strings, tokenizer=tok,
                     pad_id=tok.pad_id, seed=seed)  # fmt: skip
    for i, ids, why in zip(rows, g.completions(), g.finish_reasons):
        if len(ids) > budget[i]:  # a longer budget was shared by the batch
            ids, why = ids[: budget[i]], "length"
        out[i] = (tok.decode(ids), len(ids), why, len(xids[i]))
    return out


def constrained_rationales(model, tok, task, examples: list[dict], *, max_new_tokens: int,
                           seed: int, positions: list[int], temperature: float = 1.0,
                           ) -> tuple[list[dict], dict[str, Any]]:  # fmt: skip
    """Countdown's rationalisation: one attempt per example, constrained to try the hinted
    first step (`countdown_hint`), sampled under the PLAIN prompt.

    1. Sample the plain prompt up to the first " no.". If that is the base's header and
       one honestly failed try (`honest_failed_try`), it is kept: the attempt goes on from
       there. Otherwise the attempt starts from the base's header alone (forced).
    2. Force the hinted step and the operands of its first finishing step, " 12-5=7:
       14+7=", as the next try (FORCE_FINISH; without the operands the base mostly
       finishes with a number the hinted step already used); the base samples the rest:
       that step's value, the other finishing steps, the verdict, "so ...", the answer.
    3. Keep it if the task's rule passes it (rejection.passes: correct, well-formed, not
       cut off) and no try claims a false "yes" (search_behaviour).
    The record holds the plain prompt and question; its completion holds the forced
    text (the header, the step and the operands the model did not choose) but no hint
    wording. `temperature`: of step 2's sampling (step 1 is sampled at 1)."""
    from grpo.experiments.rejection import QUESTIONS_PER_BATCH, passes
    from grpo.tasks.search_metrics import search_behaviour

    records: list[dict[str, Any]] = []
    st = {"rationalise_attempts": 0, "hint_from_solution": 0, "hint_from_search": 0,
          "own_try_kept": 0, "forced_tokens": 0, "forced_chars": 0, "sampled_tokens": 0,
          "kept_forced_tokens": 0, "kept_tokens": 0, "no_hint": 0}  # fmt: skip
    hinted = []
    for p, ex in zip(positions, examples):
        h = countdown_hint(ex)
        if h is None:
            st["no_hint"] += 1
            continue
        st[f"hint_from_{h[1]}"] += 1
        hinted.append((p, ex, h[0]))
    for b, q0 in enumerate(range(0, len(hinted), QUESTIONS_PER_BATCH)):
        chunk = hinted[q0 : q0 + QUESTIONS_PER_BATCH]
        prompts = [task.prompt(ex) for _, ex, _ in chunk]
        s = seed * 1_000_003 + 2 * b
        first = _continue(model, tok, prompts, [""] * len(chunk), max_new_tokens=max_new_tokens,
                          stop_strings=[VERDICT_NO], seed=s)  # fmt: skip
        own, prefixes = [], []
        for (_, ex, hint), (text, n, _, _) in zip(chunk, first):
            st["sampled_tokens"] += n
            cut = text[: text.find(VERDICT_NO) + len(VERDICT_NO)] if VERDICT_NO in text else ""
            keep = cut if honest_failed_try(cut, ex, hint) else ""
            own.append(keep)
            prefixes.append((keep or _header(ex)) + f" {hint}:" + (f" {_first_finish(ex, hint)}"
                                                                   if FORCE_FINISH else ""))
        rest = _continue(model, tok, prompts, prefixes, max_new_tokens=max_new_tokens,
                         stop_strings=["</answer>"], seed=s + 1,
                         temperature=temperature)  # fmt: skip
        for (p, ex, hint), mine, prefix, (text, n, why, nx) in zip(chunk, own, prefixes, rest):
            forced = nx - (len(tok.encode(mine)) if mine else 0)
            st["rationalise_attempts"] += 1
            st["own_try_kept"] += bool(mine)
            st["forced_tokens"] += forced
            st["forced_chars"] += len(prefix) - len(mine)
            st["sampled_tokens"] += n
            completion = prefix + text
            score = task.score(completion, ex)
            if not passes(score, why):
                continue
            if search_behaviour(completion, ex["numbers"], ex["target"], True)["false_yes"]:
                continue
            st["kept_forced_tokens"] += forced
            st["kept_tokens"] += nx + n
            records.append({"prompt": task.prompt(ex), "completion": completion,
                            "question": ex["question"], "target": ex.get("target"), "pos": p,
                            "rationalised": True, "hint": hint, "own_try": bool(mine),
                            "forced_tokens": forced})  # fmt: skip
    st["rationalised"] = len(records)
    st["rationalise_rate"] = len(records) / max(1, st["rationalise_attempts"])
    return records, st


def star_data(model, tok, task, examples: list[dict], *, k: int, max_new_tokens: int,
              seed: int, positions: list[int], constrained: bool = False,
              prompt_hint: bool = True) -> tuple[list[dict], dict[str, Any]]:  # fmt: skip
    """One iteration's SFT records: the correct samples, then the rationalisations.

    `constrained` (countdown): rationalise with `constrained_rationales` (the hinted step
    forced, the prompt plain); else with the hint in the prompt (`hinted_example`), and
    the rationale stored under the plain prompt. With `constrained`, `prompt_hint` also
    measures the prompt hint on the same questions (stats "prompt_hint_*"; its samples
    are not kept or counted in "completions": a comparison, not part of STaR)."""
    from grpo.experiments.rejection import rejection_sample

    records, s1 = rejection_sample(model, tok, task, examples, k=k, keep=1,
                                   max_new_tokens=max_new_tokens, seed=seed,
                                   positions=positions)  # fmt: skip
    solved = {r["pos"] for r in records}
    wrong = [(p, ex) for p, ex in zip(positions, examples) if p not in solved]
    stats: dict[str, Any] = {}
    if constrained:
        rationales, st = constrained_rationales(
            model, tok, task, [ex for _, ex in wrong], max_new_tokens=max_new_tokens,
            seed=seed + 7919, positions=[p for p, _ in wrong])  # fmt: skip
        stats = {k: v for k, v in st.items() if k not in ("rationalised",)}
        samples = st["rationalise_attempts"]
    if not constrained or prompt_hint:
        hinted = [hinted_example(ex) for _, ex in wrong]
        prompted, s2 = rejection_sample(model, tok, task, hinted, k=1, keep=1,
                                        max_new_tokens=max_new_tokens, seed=seed + 7919,
                                        positions=[p for p, _ in wrong])  # fmt: skip
        plain = {p: ex for p, ex in wrong}
        for r in prompted:  # stored WITHOUT the hint: the plain question's prompt
            ex = plain[r["pos"]]
            r.update(prompt=task.prompt(ex), question=ex["question"], rationalised=True)
        if constrained:
            stats.update(prompt_hint_attempts=s2["samples"], prompt_hint_passed=len(prompted))
        else:
            rationales, samples = prompted, s2["samples"]
    stats = {"completions": s1["samples"] + samples, "correct": len(records),
             "rationalise_attempts": samples, "rationalised": len(rationales),
             "kept": len(records) + len(rationales), **stats}  # fmt: skip
    return records + rationales, stats


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.experiments.star",
                           description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for every iteration and the results")
    p.add_argument("--task", default="addition", choices=sorted(TASKS),
                   help="addition (default; rationalised with the answer as a prompt hint) or "
                        "countdown (the hinted first step forced into a sample of the plain "
                        "prompt)")  # fmt: skip
    d, c = TASKS["addition"], TASKS["countdown"]
    for flag, what in (("iterations", "STaR iterations"),
                       ("questions", "train questions per iteration"),
                       ("k", "samples per question"),
                       ("sft_steps", "SFT steps of iteration 1, +20%% per iteration"),
                       ("heldout", "held-out questions"),
                       ("max_new_tokens", "completion budget")):  # fmt: skip
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None,
                       help=f"{what} (default {d[flag]}; {c[flag]} for countdown)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rl", default=None,
                   help="the GRPO run to compare with: a train_zero.py run folder of the "
                        "task's demo (default: train one into OUT/grpo)")  # fmt: skip
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out, --rl,
    and the base: it loads, and its context holds the held-out questions and every train
    question (with its hint) the iterations sample, at --max-new-tokens."""
    from grpo.run.context import rl_example
    from grpo.tasks import get_task

    for k, v in TASKS[a.task].items():
        if getattr(a, k, 0) is None:
            setattr(a, k, v)
    at_least(a, 1, "iterations", "questions", "k", "sft_steps", "heldout", "max_new_tokens")
    at_least(a, 0, "seed")
    check_out(a.out)
    if a.rl:
        for name in ("metrics.jsonl", "train_config.json"):
            if not (Path(a.rl) / name).is_file():
                raise ValueError(f"--rl {a.rl}: not a train_zero.py run folder (no {name})")
        try:
            rl_task = json.loads((Path(a.rl) / "train_config.json").read_text()).get("task")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"--rl {a.rl}: train_config.json is not valid JSON ({e})") from e
        if rl_task != a.task:
            raise ValueError(f"--rl {a.rl} is a run of the {rl_task} task, not {a.task}")
    task = get_task(a.task)
    train = [rl_example(task, p) for p in range(a.iterations * a.questions)]
    # Addition samples the hinted prompts every iteration; countdown samples the plain ones
    # (the hint is forced into the completion, within --max-new-tokens) and measures the
    # prompt hint on iteration 1's questions.
    hinted = [hinted_example(ex) for ex in (train if a.task == "addition" else
                                            train[: a.questions])]  # fmt: skip
    check_model(None, TASKS[a.task]["base"], a.max_new_tokens, heldout=a.heldout,
                sampled=train + hinted, task=task, log=log)  # fmt: skip
    settings = {k: getattr(a, k) for k in SETTINGS}
    if a.task != "addition":  # an addition folder's settings.json stays as it was
        settings["task"] = a.task
    return settings


def evaluate_model(a, path: str, log) -> dict[str, float]:
    m = heldout_eval(path, a.heldout, a.max_new_tokens, a.seed, log, task=a.task)[0].metrics
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
        model, tok, task = task_policy(model_path, a.seed, log, task=a.task)
        positions = list(range((n - 1) * a.questions, n * a.questions))
        records, stats = star_data(model, tok, task, [rl_example(task, p) for p in positions],
                                   k=a.k, max_new_tokens=a.max_new_tokens,
                                   seed=a.seed * 1009 + n, positions=positions,
                                   constrained=a.task == "countdown",
                                   prompt_hint=n == 1)  # fmt: skip
        if not records:
            raise ValueError(f"iteration {n}: nothing correct and no rationale reached its "
                             "answer: nothing to fine-tune on")  # fmt: skip
        write_jsonl(records, data)
        write_json_atomic(stats_file, stats)
    stats = json.loads(stats_file.read_text())
    log(f"  kept {stats['kept']}: {stats['correct']} correct, {stats['rationalised']} of "
        f"{stats['rationalise_attempts']} hinted attempts rationalised "
        f"({stats['completions']} completions sampled)")  # fmt: skip
    if "prompt_hint_attempts" in stats:
        log(f"  the hint in the prompt instead: {stats['prompt_hint_passed']} of "
            f"{stats['prompt_hint_attempts']} pass")  # fmt: skip
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
                 "--max-new-tokens", str(a.max_new_tokens), *TASKS[a.task]["rl_flags"],
                 *RL_FLAGS]  # fmt: skip
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
    base = str(ensure_base(TASKS[a.task]["base"], log=log))
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
    """The results as Markdown; a countdown run adds the rationalisation pass rate and the
    share of the kept rationales' tokens that were forced."""
    cd = results["settings"].get("task") == "countdown"
    header = ["STaR iteration", "completions sampled", "kept (correct + rationalised)",
              *(["rationalised / hinted attempts", "forced tokens of the kept rationales"]
                if cd else []),
              "SFT steps", "held-out accuracy", "GRPO at the same completions"]  # fmt: skip
    rows = [["0 (base)", "0", "-", *(["-", "-"] if cd else []), "-",
             f"{results['base']['accuracy']:.3f}", "-"]]  # fmt: skip
    for r in results["iterations"]:
        extra = []
        if cd:
            extra = [f"{r['rationalised']} / {r['rationalise_attempts']} "
                     f"({r['rationalised'] / max(1, r['rationalise_attempts']):.0%})",
                     f"{r['kept_forced_tokens']} of {r['kept_tokens']} "
                     f"({r['kept_forced_tokens'] / max(1, r['kept_tokens']):.0%})"]  # fmt: skip
        rows.append([str(r["iteration"]), str(r["completions_total"]),
                     f"{r['kept']} ({r['correct']} + {r['rationalised']})", *extra,
                     str(r["sft_steps"]), f"{r['accuracy']:.3f}",
                     f"{r['grpo_accuracy']:.3f} (step {r['grpo_step']}, "
                     f"{r['grpo_completions']})"])  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    return cli("python -m grpo.experiments.star", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
