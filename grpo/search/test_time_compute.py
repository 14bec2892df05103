"""Test-time compute, both kinds side by side: search against verifiers vs. thinking longer.

    python -m grpo.search.test_time_compute --out runs/ttc          # about 20 minutes on 2 cores
    python -m grpo.search.test_time_compute --task countdown --out runs/ttc-cd
    python -m grpo.search.test_time_compute --out runs/ttc --rl runs/addition-x  # reuse a Zero run

On a demo task (--task addition, the default, or countdown; test-time compute against
verifiers, as in Snell et al. 2024), one command:
  1. trains the R1-Zero model: train_zero.py's demo of the task into OUT/rl (or takes --rl);
  2. trains the verifiers that search each model on that model's own samples
     (python -m grpo.search.verifiers train, balanced, with hard negatives): an ORM and a
     PRM for the base (OUT/verifiers/base/orm, .../prm) and for the RL model
     (OUT/verifiers/rl/orm, .../prm). A PRM's steps are addition's scratchpad columns, or
     countdown's tries (each ends with its verdict, " yes." or " no.");
  3. runs every strategy at several budgets on the base and on the RL model, on
     the same --questions held-out questions, at --max-new-tokens:
       greedy;  majority (verifier none), best_of_n (rule: the oracle, i.e. pass@n;
       orm), weighted_best_of_n (orm, prm) at n = 1, 2, 4, 8, 16;
       beam (prm) at widths 1, 2, 4 with 4 expansions;  mcts (prm) at 4, 8, 16 simulations;
  4. writes OUT/results.json (one record per model, strategy, budget, verifier:
     task, accuracy, policy_tokens and verifier_tokens per question) and the figure
     (--figure, default docs/test_time_compute.png, docs/test_time_compute_countdown.png
     for countdown): accuracy against policy tokens
     per question (log x), one line per strategy, base solid, RL dashed; and
     against all tokens read or written, policy + verifier.

The sampling strategies at n < 16 use the first n of 16 samples drawn once per
question (the usual way to trace a budget curve; at n = 16 the samples are
those of `eval.py --strategy ... --samples 16 --max-new-tokens M --seed S`).
greedy, beam and mcts equal `eval.py --strategy ...` with the same flags, with
--verifier OUT/verifiers/MODEL/prm for the searches.

Every stage's output is kept: the RL run and the verifiers are reused when
they exist, and each record is appended to OUT/records.jsonl as soon as it is
measured, so a stopped run continues where it was when the command is run
again. OUT/summary.json has the settings, the seconds of each stage and the
verifiers' held-out checks: each one's ROC area on held-out samples of the model it
judges, its mean score on right and wrong completions of each format (the shortcut
check), and the PRM's agreement with exact step correctness.
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

SAMPLE_BUDGETS = (1, 2, 4, 8, 16)
BEAM_WIDTHS = (1, 2, 4)
EXPAND = 4
MCTS_SIMULATIONS = (4, 8, 16)
# (strategy, verifier) pairs traced over SAMPLE_BUDGETS from one pool of samples.
POOLED = (("majority", "none"), ("best_of_n", "rule"), ("best_of_n", "orm"),
          ("weighted_best_of_n", "orm"), ("weighted_best_of_n", "prm"))  # fmt: skip
SETTINGS = ("task", "questions", "seed", "max_new_tokens", "verifier_questions",
            "verifier_samples", "verifier_heldout", "verifier_epochs", "verifier_lr",
            "rollouts")  # fmt: skip
MODELS = ("base", "rl")
KINDS = ("orm", "prm")
# Per task: the completion budget (the demo's), the verifiers' train questions, the figure.
TASK_DEFAULTS = {
    "addition": {"max_new_tokens": 128, "verifier_questions": 500, "verifier_heldout": 100,
                 "verifier_epochs": 2, "figure": "docs/test_time_compute.png"},
    "countdown": {"max_new_tokens": 480, "verifier_questions": 200, "verifier_heldout": 50,
                  "verifier_epochs": 3, "figure": "docs/test_time_compute_countdown.png"},
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from grpo.run.config import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m grpo.search.test_time_compute",
                           description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--out", required=True, help="folder for the runs, verifiers and results")
    p.add_argument("--task", default="addition", choices=sorted(TASK_DEFAULTS),
                   help="the demo task (default addition)")  # fmt: skip
    p.add_argument("--figure", default=None,
                   help="output PNG (default docs/test_time_compute.png; "
                        "docs/test_time_compute_countdown.png for countdown)")  # fmt: skip
    p.add_argument("--rl", default=None,
                   help="an R1-Zero-trained checkpoint or run folder of the task's demo "
                        "(default: train one into OUT/rl with train_zero.py defaults)")  # fmt: skip
    p.add_argument("--questions", type=int, default=200, help="held-out questions")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="completion budget (default: addition 128, countdown 480)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verifier-questions", type=int, default=None,
                   help="train questions each verifier learns from (addition 500, "
                        "countdown 200)")  # fmt: skip
    p.add_argument("--verifier-samples", type=int, default=8,
                   help="samples per question, of the model the verifier judges")  # fmt: skip
    p.add_argument("--verifier-heldout", type=int, default=None,
                   help="held-out questions of each verifier's check (addition 100, "
                        "countdown 50)")  # fmt: skip
    p.add_argument("--verifier-epochs", type=int, default=None,
                   help="epochs of each verifier (addition 2, countdown 3)")  # fmt: skip
    p.add_argument("--verifier-lr", type=float, default=1e-3, help="verifiers' learning rate")
    p.add_argument("--rollouts", type=int, default=4, help="PRM: continuations per step prefix")
    return p


def check_args(a: argparse.Namespace, log=lambda *_: None) -> dict[str, Any]:
    """The settings, every check made before anything is written: the flags, --out,
    --figure (a PNG can be written there), and each model (--rl, the demo base): it loads,
    and its context holds every question it is asked at --max-new-tokens."""
    from grpo.bases import demo_base_name
    from grpo.bases.common import TEMPLATE
    from grpo.experiments.common import check_model, check_out, check_writable
    from grpo.tasks import get_task

    for name, value in TASK_DEFAULTS[a.task].items():
        if getattr(a, name) is None:
            setattr(a, name, value)
    for name in ("questions", "max_new_tokens", "verifier_questions", "verifier_samples",
                 "verifier_heldout", "verifier_epochs", "rollouts"):  # fmt: skip
        if getattr(a, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {a.seed}")
    if not (0 < a.verifier_lr <= 1.0):  # NaN fails too
        raise ValueError(f"--verifier-lr must be in (0, 1], got {a.verifier_lr}")
    check_out(a.out)
    figure = Path(a.figure)
    if figure.suffix.lower() != ".png":
        raise ValueError(f"--figure {figure}: expected a .png path")
    check_writable("--figure", figure)
    task = get_task(a.task, seed=a.seed, template=TEMPLATE)
    asked = task.heldout(a.questions)
    # The verifiers are trained on each model's samples of train and held-out questions.
    verifier_qs = [task.train_example(i) for i in range(a.verifier_questions)]
    verifier_qs += task.heldout(a.verifier_heldout)
    if a.rl:
        check_model("--rl", a.rl, a.max_new_tokens, sampled=asked + verifier_qs, task=task,
                    log=log)  # fmt: skip
    check_model(None, demo_base_name("demo", a.task), a.max_new_tokens,
                sampled=asked + verifier_qs, task=task, log=log)  # fmt: skip
    return {k: getattr(a, k) for k in SETTINGS} | {"rl": a.rl}


# ------------------------------------------------------------------ stages 1 and 2
def rl_model(a: argparse.Namespace, log) -> Path:
    """The R1-Zero-trained checkpoint: --rl, or train_zero.py's demo run in OUT/rl."""
    from grpo.run.checkpoint import resolve_model_path

    if a.rl:
        return resolve_model_path(a.rl)
    import train_zero

    run = Path(a.out) / "rl"
    from grpo.experiments.common import run_stage

    flags = ["--out", str(run), "--plot", "false", "--seed", str(a.seed), "--task", a.task]
    if (run / "metrics.jsonl").exists():
        flags.append("--resume")
    run_stage(train_zero.main, flags, "R1-Zero model: train_zero.py", log)
    return resolve_model_path(run)


def verifier(a: argparse.Namespace, model: str, policy: Path, kind: str, log) -> Path:
    """OUT/verifiers/MODEL/KIND, trained on that model's own samples unless it exists."""
    from grpo.search.verifiers.train import build_parser as verifier_parser
    from grpo.search.verifiers.train import train

    out = Path(a.out) / "verifiers" / model / kind
    if (out / "verifier.json").is_file():
        log(f"=== {kind.upper()} of the {model} model: {out} exists, reused")
        return out
    flags = ["--policy", str(policy), "--task", a.task, "--kind", kind, "--out", str(out),
             "--questions", str(a.verifier_questions), "--samples", str(a.verifier_samples),
             "--heldout", str(a.verifier_heldout), "--rollouts", str(a.rollouts), "--epochs",
             str(a.verifier_epochs), "--lr", str(a.verifier_lr), "--max-new-tokens",
             str(a.max_new_tokens), "--seed", str(a.seed),
             "--samples-file", str(out.parent / "samples.json")]  # the ORM's, for the PRM
    log(f"=== {kind.upper()} of the {model} model: python -m grpo.search.verifiers train "
        f"{' '.join(flags)}")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    train(verifier_parser().parse_args(flags), log=log)
    return out


# What summary.json keeps of each verifier's verifier.json.
VERIFIER_CHECKS = ("train_samples", "train_completions", "train_kinds", "train_labels",
                   "train_positive_labels", "heldout", "heldout_judged", "heldout_exact_steps",
                   "seconds")  # fmt: skip


# ------------------------------------------------------------------ stage 3
class Records:
    """OUT/records.jsonl: one line per measured record, flushed as it is written."""

    def __init__(self, path: Path) -> None:
        from grpo.experiments.common import (
            read_rows,  # a torn last line from a kill: measured again
        )

        self.path, self.rows = path, list(read_rows(path, self.key).values())

    @staticmethod
    def key(r: dict) -> tuple:
        return r["model"], r["strategy"], r["budget"], r["verifier"]

    def has(self, *key) -> bool:
        return any(self.key(r) == key for r in self.rows)

    def add(self, record: dict, log) -> None:
        from grpo.run.runfolder import JsonlWriter

        self.rows.append(record)
        JsonlWriter(self.path).write(record)
        log(f"  {record['model']:>4}  {record['strategy']:<18} {record['verifier']:<4} "
            f"budget {record['budget']:>2}: accuracy {record['accuracy']:.3f}, "
            f"{record['policy_tokens']:.0f} policy + {record['verifier_tokens']:.0f} verifier "
            f"tokens per question ({record['seconds']:.0f} s)")  # fmt: skip


def pooled(model_name, policy, tok, task, examples, verifiers, a, records, log) -> None:
    """POOLED strategies at every SAMPLE_BUDGETS from 16 samples per question."""
    from grpo.search.strategies import (
        QUESTIONS_PER_BATCH,
        RuleScorer,
        VerifierScorer,
        pick,
        sample_many,
    )

    wanted = [(s, v, n) for s, v in POOLED for n in SAMPLE_BUDGETS
              if not records.has(model_name, s, n, v)]  # fmt: skip
    if not wanted:
        return
    t0 = time.perf_counter()
    N = max(SAMPLE_BUDGETS)
    texts, lengths = [], []
    for j, c0 in enumerate(range(0, len(examples), QUESTIONS_PER_BATCH)):
        chunk = examples[c0 : c0 + QUESTIONS_PER_BATCH]
        t, n_tok = sample_many(policy, tok, [task.prompt(ex) for ex in chunk], N,
                               a.max_new_tokens, a.seed + 1009 * j)  # fmt: skip
        texts += t
        lengths += n_tok
    log(f"  {model_name}: {N} samples of {len(examples)} questions "
        f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    prompts = [task.prompt(ex) for ex in examples]
    flat = [(q, t) for q in range(len(examples)) for t in texts[q]]
    scores = {"none": [1.0] * len(flat), "rule": RuleScorer(task, examples)(flat)}
    read = {"none": [0] * len(flat), "rule": [0] * len(flat)}
    for v in sorted({v for _s, v, _n in wanted} - {"none", "rule"}):
        t1 = time.perf_counter()
        scorer = VerifierScorer(verifiers[v], tok, prompts)
        scores[v], read[v] = scorer(flat), scorer.lengths
        log(f"  {model_name}: {v.upper()} scored {len(flat)} samples "
            f"({time.perf_counter() - t1:.0f} s)")  # fmt: skip
    spent = time.perf_counter() - t0
    keys = [[task.answer_key(t, ex) for t in ts] for ts, ex in zip(texts, examples)]
    for s, v, n in wanted:
        right = p_tok = v_tok = 0
        for q, ex in enumerate(examples):
            sl = slice(q * N, q * N + n)
            text = pick(s, texts[q][:n], keys[q][:n], scores[v][sl])
            right += task.score(text, ex)["accuracy"] == 1.0
            p_tok += sum(lengths[q][:n])
            v_tok += sum(read[v][sl])
        Q = len(examples)
        records.add({"task": task.name, "model": model_name, "strategy": s, "budget": n,
                     "verifier": v,
                     "accuracy": right / Q, "policy_tokens": p_tok / Q,
                     "verifier_tokens": v_tok / Q, "samples": n, "questions": Q,
                     "seconds": spent / len(wanted), "pooled_from": N}, log)  # fmt: skip


def searched(model_name, policy, tok, task, examples, verifiers, a, records, log) -> None:
    """greedy, beam and mcts, each question's search its own, as eval.py runs them."""
    from grpo.search.strategies import run_strategy_batched

    runs = [("greedy", "none", 1, {})]
    runs += [("beam", "prm", w * EXPAND, {"width": w, "expand": EXPAND}) for w in BEAM_WIDTHS]
    runs += [("mcts", "prm", s, {"simulations": s, "expand": EXPAND}) for s in MCTS_SIMULATIONS]
    for name, v, budget, kw in runs:
        if records.has(model_name, name, budget, v):
            continue
        t0 = time.perf_counter()
        res = run_strategy_batched(name, policy, tok, task, examples, verifiers.get(v),
                                   seed=a.seed, max_new_tokens=a.max_new_tokens, **kw)  # fmt: skip
        right = sum(r.correct for r in res)
        p_tok = sum(r.policy_tokens for r in res)
        v_tok = sum(r.verifier_tokens for r in res)
        Q = len(examples)
        rec = {"task": task.name, "model": model_name, "strategy": name, "budget": budget,
               "verifier": v,
               "accuracy": right / Q, "policy_tokens": p_tok / Q, "verifier_tokens": v_tok / Q,
               **({"beam_width": kw["width"]} if "width" in kw else {}),
               **({"simulations": kw["simulations"]} if "simulations" in kw else {}),
               **({"expand": kw["expand"]} if "expand" in kw else {}),
               "questions": Q, "seconds": time.perf_counter() - t0}  # fmt: skip
        records.add(rec, log)


# ------------------------------------------------------------------ stage 4: the figure
STYLE = {("greedy", "none"): ("black", "greedy"), ("majority", "none"): ("C0", "majority"),
         ("best_of_n", "rule"): ("C7", "best-of-n, rule oracle (pass@n)"),
         ("best_of_n", "orm"): ("C1", "best-of-n, ORM"),
         ("weighted_best_of_n", "orm"): ("C2", "weighted best-of-n, ORM"),
         ("weighted_best_of_n", "prm"): ("C3", "weighted best-of-n, PRM"),
         ("beam", "prm"): ("C4", "beam search, PRM (width 1, 2, 4; 4 expansions)"),
         ("mcts", "prm"): ("C5", "MCTS, PRM (4, 8, 16 simulations)")}  # fmt: skip


def figure(results: list[dict], out: Path, questions: int, task: str = "addition") -> Path:
    """Accuracy against policy tokens (left) and policy + verifier tokens (right), log x."""
    from grpo.run.plot import _matplotlib

    plt = _matplotlib()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, total in zip(axes, (False, True)):
        for (strategy, v), (color, label) in STYLE.items():
            for model, ls in (("base", "-"), ("rl", "--")):
                rows = sorted((r for r in results if (r["model"], r["strategy"], r["verifier"])
                               == (model, strategy, v)), key=lambda r: r["budget"])  # fmt: skip
                if not rows:
                    continue
                x = [r["policy_tokens"] + total * r["verifier_tokens"] for r in rows]
                ax.plot(x, [r["accuracy"] for r in rows], color=color, ls=ls,
                        marker="*" if strategy == "greedy" else "o", ms=9 if strategy ==
                        "greedy" else 4, label=f"{label}" if model == "base" else None)  # fmt: skip
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("policy + verifier tokens per question (log)" if total
                      else "policy tokens generated per question (log)")  # fmt: skip
    axes[0].set_ylabel(f"held-out accuracy ({questions} {task} questions)")
    axes[0].set_title("solid: the base searched against verifiers; dashed: the R1-Zero model")
    axes[1].set_title("the same, counting the tokens a learned verifier reads")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ------------------------------------------------------------------ the command
def run(a: argparse.Namespace, log=print) -> list[dict]:
    import torch

    from grpo.bases import demo_base_name, ensure_base
    from grpo.bases.common import TEMPLATE
    from grpo.experiments.common import prepare
    from grpo.run.plot import _matplotlib
    from grpo.search.verifiers.train import load_verifier
    from grpo.tasks import get_task
    from model import Tokenizer, load_pretrained
    from model.checkpoint import write_json_atomic

    settings = check_args(a, log)
    _matplotlib()  # before any work: the figure is part of the result
    out = prepare(a.out, settings)
    summary_path = out / "summary.json"
    summary: dict[str, Any] = (json.loads(summary_path.read_text()) if summary_path.exists()
                               else {"seconds": {}})  # fmt: skip
    t_all = time.perf_counter()

    def stage(name, fn):
        t0 = time.perf_counter()
        res = fn()
        summary["seconds"][name] = summary["seconds"].get(name, 0.0) + time.perf_counter() - t0
        write_json_atomic(summary_path, summary)
        return res

    paths = {"base": ensure_base(demo_base_name("demo", a.task))}
    paths["rl"] = stage("rl", lambda: rl_model(a, log))
    verifiers: dict[str, dict] = {m: {} for m in MODELS}
    summary["verifiers"] = {m: {} for m in MODELS}
    for m in MODELS:
        for k in KINDS:
            p = stage(f"{m}_{k}", lambda m=m, k=k: verifier(a, m, paths[m], k, log))
            verifiers[m][k], _tok, meta = load_verifier(p)
            summary["verifiers"][m][k] = {key: meta.get(key) for key in VERIFIER_CHECKS}
    summary["models"] = {k: str(v) for k, v in paths.items()}
    task = get_task(a.task, seed=a.seed, template=TEMPLATE)
    examples = task.heldout(a.questions)
    records = Records(out / "records.jsonl")
    torch.manual_seed(a.seed)
    for name, path in paths.items():
        policy = load_pretrained(path, dtype=torch.float32).eval()
        tok = Tokenizer.from_dir(path)
        log(f"=== strategies on the {name} model ({path}), {len(examples)} held-out questions")
        for fn in (pooled, searched):
            stage(f"eval_{name}", lambda fn=fn, name=name, policy=policy, tok=tok: fn(
                name, policy, tok, task, examples, verifiers[name], a, records, log))  # fmt: skip
    order = {(m, s, v): i for i, (m, (s, v)) in enumerate(
        (m, sv) for m in ("base", "rl") for sv in STYLE)}  # fmt: skip
    results = sorted(records.rows, key=lambda r: (order[r["model"], r["strategy"], r["verifier"]],
                                                  r["budget"]))  # fmt: skip
    write_json_atomic(out / "results.json", results)
    summary["seconds"]["this_invocation"] = time.perf_counter() - t_all
    write_json_atomic(summary_path, summary)
    log(f"wrote {out / 'results.json'} ({len(results)} records)")
    log(f"wrote {figure(results, Path(a.figure), len(examples), a.task)}")
    return results


def main(argv: list[str] | None = None) -> int:
    from grpo.experiments.common import cli

    return cli("python -m grpo.search.test_time_compute", run, build_parser(), argv, (ImportError,))


if __name__ == "__main__":
    sys.exit(main())
