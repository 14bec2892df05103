"""Held-out evaluation and the test-time-compute metrics.

    res = evaluate(policy, tok, task, task.heldout(500), max_new_tokens=96)
    res.metrics["eval_accuracy"]                         # pass@1 (greedy by default)
    res = evaluate(..., samples=8, temperature=1.0)      # + pass@8, maj@8, best_of_8

With k samples per question:
- pass@k: some sample is correct (unbiased estimator 1 - C(n-c, k) / C(n, k)
  with n = k samples, i.e. "any correct").
- maj@k (self-consistency): the answers vote (`task.answer_key` canonicalises
  them, e.g. "1,234" and "1234" are one vote); the most frequent one is
  graded. Completions with no answer do not vote.
- best_of_k: the sample the outcome reward model scores highest is graded.
  Here the reward model is the task's rule-based reward (accuracy + format
  weight), a perfect verifier, so best-of-k is an upper bound that a learned
  reward model could only approach.

Progress contract: `progress(done, total)`, if given, is called after every
decode step. `total` is len(examples) (questions, not sequences); `done` is
the number of questions finished so far, as a float estimate within a
generation batch (questions before the batch + batch size x decode steps /
max_new_tokens) and exact at the end of each batch. It never decreases
(a batch that stops early jumps to its end), and the last call is
progress(total, total). The caller throttles what it prints (grpo.run.progress).
"""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from math import comb

import torch

from grpo.tasks.search_metrics import behaviour_means
from model import Tokenizer, Transformer, generate
from model.flops import rollout_flops


@dataclass
class EvalResult:
    metrics: dict[str, float]
    records: list[dict] = field(default_factory=list)  # one per question: samples and grades
    flops: int = 0  # matmul FLOPs the generation needed (model.flops.rollout_flops)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_vote(keys: list[str | None], correct: list[float]) -> float:
    """Accuracy of the most common answer key (ties: the earliest-seen key wins)."""
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return 0.0
    best = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == best)
    return correct[keys.index(winner)]


@torch.no_grad()
def evaluate(
    policy: Transformer, tok: Tokenizer, task, examples: list[dict], *, max_new_tokens: int,
    samples: int = 1, temperature: float = 0.0, top_p: float = 1.0, stop_strings=("</answer>",),
    batch_size: int = 512, seed: int = 0, autocast=None, progress=None,
    share: tuple[int, int] | None = None,
) -> EvalResult:  # fmt: skip
    """Generate `samples` completions per example and grade them; metrics prefixed eval_.

    `progress(done, total)`: see the module docstring for the contract.
    `share=(offset, n)`: `examples` are items offset .. of a list of n (a data-parallel
    rank's questions); the generation batches and their noise are those of the whole
    list, so each question gets the completions the whole evaluation would give it.
    """
    if samples > 1 and temperature == 0:
        raise ValueError("several samples per question need temperature > 0")
    records: list[dict] = []
    flops = 0
    total = len(examples)
    offset, n_all = share or (0, total)
    per_batch = max(1, batch_size // samples)
    # The whole list's batches [c0, c0 + per_batch), cut to these examples.
    cuts = sorted({0, total} | {c0 - offset for c0 in range(0, n_all, per_batch)
                                if 0 < c0 - offset < total})  # fmt: skip
    for b0, b1 in zip(cuts, cuts[1:]):
        chunk = examples[b0:b1]
        c0 = (offset + b0) // per_batch * per_batch  # the whole list's batch this is in
        c_len = min(per_batch, n_all - c0)
        prompts = tok.encode_batch([task.prompt(ex) for ex in chunk])
        step_progress = None
        if progress:

            def step_progress(t: int, t_max: int, b0: int = b0, m: int = len(chunk)) -> None:
                progress(b0 + m * t / t_max, total)

        with autocast() if autocast else nullcontext():
            out = generate(
                policy, prompts, max_new_tokens=max_new_tokens, num_samples=samples,
                temperature=temperature, top_p=top_p if top_p < 1 else None,
                eos_ids=tok.eos_ids, stop_strings=list(stop_strings), tokenizer=tok,
                pad_id=tok.pad_id, seed=seed + c0, progress=step_progress,
                noise_rows=None if share is None else ((offset + b0 - c0) * samples,
                                                       c_len * samples),
            )  # fmt: skip
        ids = out.completions()
        texts = tok.decode_batch(ids)
        flops += rollout_flops(policy.config, [len(p) for p in prompts], [len(c) for c in ids],
                               samples)  # fmt: skip
        for j, ex in enumerate(chunk):
            rows = range(j * samples, (j + 1) * samples)
            scores = [task.score(texts[r], ex) for r in rows]
            records.append({
                "example": ex,
                "completions": [texts[r] for r in rows],
                "lengths": [len(ids[r]) for r in rows],
                "truncated": [out.finish_reasons[r] == "length" for r in rows],
                "scores": scores,
                "keys": [task.answer_key(texts[r], ex) for r in rows],
                "behaviour": [task.behaviour(texts[r], ex, s["accuracy"] == 1.0)
                              for r, s in zip(rows, scores)],
            })  # fmt: skip
        if progress:
            progress(b0 + len(chunk), total)
    return EvalResult(summarise(records, samples), records, flops)


def summarise(records: list[dict], samples: int) -> dict[str, float]:
    n_q = max(1, len(records))
    flat = [s for r in records for s in r["scores"]]
    n_s = max(1, len(flat))
    m = {
        "eval_accuracy": sum(s["accuracy"] for s in flat) / n_s,  # pass@1 (mean over samples)
        "eval_format_rate": sum(s["format"] for s in flat) / n_s,
        "eval_reward": sum(s["reward"] for s in flat) / n_s,
        "eval_completion_len_mean": sum(n for r in records for n in r["lengths"]) / n_s,
        "eval_truncated_frac": sum(t for r in records for t in r["truncated"]) / n_s,
        # Search behaviour (countdown: eval_tries_mean, ...); nothing for other tasks.
        **behaviour_means([b for r in records for b in r.get("behaviour", [])], "eval_"),
    }
    if samples > 1:
        k = samples
        m[f"eval_pass@{k}"] = sum(
            pass_at_k(k, int(sum(s["accuracy"] for s in r["scores"])), k) for r in records
        ) / n_q
        m[f"eval_maj@{k}"] = sum(
            majority_vote(r["keys"], [s["accuracy"] for s in r["scores"]]) for r in records
        ) / n_q
        m[f"eval_best_of_{k}"] = sum(
            max(r["scores"], key=lambda s: s["reward"])["accuracy"] for r in records
        ) / n_q
    return m
