"""Test-time strategies, with their compute (Snell et al. 2024).

    scorer = RuleScorer(task, examples)          # or VerifierScorer(verifier, tok, prompts)
    results = run_strategy_many("beam", policy, tok, task, examples, scorer,
                                width=4, expand=4, seed=0)
    results[q].correct, results[q].policy_tokens, results[q].verifier_tokens
    r = run_strategy("mcts", policy, tok, task, example, RuleScorer(task, [example]))

Strategies (STRATEGIES):
- greedy: one completion at temperature 0; sample: one at temperature 1;
- majority: n samples, the most frequent answer (self-consistency);
- best_of_n: n samples, the one the scorer rates highest;
- weighted_best_of_n: n samples, the answer whose samples' scores sum highest;
- beam: step-level beam search (grpo.search.tree.beam_search) with `width` beams, each
  extended by `expand` sampled steps, ranked by the scorer;
- mcts: grpo.search.tree.mcts with `simulations` simulations of `expand` children,
  selecting by `rule` (uct, or puct with the policy's step probabilities as
  priors); a leaf is valued by finishing it with one sampled continuation and
  scoring that.

The questions run together: the samples of many questions share one policy
call, and so do the beams (or the MCTS simulations) of every question, round by
round (grpo.search.tree.beam_search_many, mcts_many); a scorer reads all its texts
in batches. Each question's search is still its own: batching changes which
random numbers a question draws, not how its search proceeds.

Compute, counted per question so that strategies compare at equal compute:
policy tokens generated (samples, steps and rollouts) and verifier tokens
scored (every token a learned verifier reads; 0 for the rule).
Every random draw is seeded from `seed`, so a strategy is deterministic given
its seed and its list of questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo.search.tree import (
    PolicySteps,
    beam_search_many,
    generate_within,
    mcts_many,
    weighted_vote,
)
from model.generate import left_pad

STRATEGIES = ("greedy", "sample", "majority", "best_of_n", "weighted_best_of_n", "beam", "mcts")
UNSCORED = ("greedy", "sample", "majority")  # strategies that use no verifier
ANSWER_END = "</answer>"
QUESTIONS_PER_BATCH = 64  # questions searched together by eval.py and grpo.search.test_time_compute


@dataclass
class StrategyResult:
    text: str  # the chosen completion
    correct: bool
    policy_tokens: int
    verifier_tokens: int


class RuleScorer:
    """The oracle: the task's rule-based reward of a finished completion; an unfinished
    prefix (no answer yet) scores 0, since the rule cannot judge it.

    Called with (question index, text) pairs; `tokens[q]` stays 0 (a rule reads no tokens).
    """

    def __init__(self, task, examples) -> None:
        self.task, self.examples = task, list(examples)
        self.tokens = [0] * len(self.examples)

    def __call__(self, requests: list[tuple[int, str]]) -> list[float]:
        return [self.task.score(t, self.examples[q])["reward"] if ANSWER_END in t else 0.0
                for q, t in requests]  # fmt: skip


class VerifierScorer:
    """A learned ORM or PRM (grpo.search.verifiers): P(correct) read at the text's last token.

    Called with (question index, text) pairs, it scores prompts[q] + text, at most
    `batch_size` texts per forward; `tokens[q]` counts the tokens it read for q, and
    `lengths` those of each request of the last call.
    """

    def __init__(self, verifier, tok, prompts, batch_size: int = 64) -> None:
        self.verifier, self.tok, self.prompts = verifier, tok, list(prompts)
        self.batch_size = batch_size
        self.tokens = [0] * len(self.prompts)
        self.lengths: list[int] = []

    @torch.no_grad()
    def __call__(self, requests: list[tuple[int, str]]) -> list[float]:
        ids = self.tok.encode_batch([self.prompts[q] + t for q, t in requests])
        self.lengths = [len(row) for row in ids]  # tokens read per request, this call
        for (q, _), n in zip(requests, self.lengths):
            self.tokens[q] += n
        device = next(self.verifier.parameters()).device
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batches of like lengths
        scores = [0.0] * len(ids)
        for b0 in range(0, len(order), self.batch_size):
            rows = order[b0 : b0 + self.batch_size]
            # Left-padded: every text's last token sits in the last column.
            x, m = left_pad([ids[i] for i in rows], self.tok.pad_id, device)
            for i, p in zip(rows, torch.sigmoid(self.verifier(x, m)[:, -1]).tolist()):
                scores[i] = p
        return scores


def sample_many(
    policy, tok, prompts: list[str], n: int, max_new: int, seed: int, max_rows: int = 512,
    temperature: float = 1.0, used: list[int] | None = None,
) -> tuple[list[list[str]], list[list[int]]]:  # fmt: skip
    """n completions of every prompt, and the policy tokens each one took.

    At most `max_rows` rows per policy call; call j uses seed + j. `used[i]`: tokens of
    the completion budget `max_new` that prompt i's text has already taken (a search's
    prefix), so its continuations take at most max_new - used[i] (at least 1).
    """
    texts: list[list[str]] = []
    tokens: list[list[int]] = []
    per_call = max(1, max_rows // n)
    for j, c0 in enumerate(range(0, len(prompts), per_call)):
        chunk = prompts[c0 : c0 + per_call]
        left = [max(1, max_new - (used[c0 + i] if used else 0)) for i in range(len(chunk))]
        out = generate_within(policy, tok, tok.encode_batch(chunk), left, n,
                              stop_strings=[ANSWER_END], temperature=temperature,
                              seed=seed + j)  # fmt: skip
        done = tok.decode_batch(out.completions())
        lengths = out.lengths.tolist()
        for i in range(len(chunk)):
            texts.append(done[i * n : (i + 1) * n])
            tokens.append(lengths[i * n : (i + 1) * n])
    return texts, tokens


def run_strategy_batched(
    name: str, policy, tok, task, examples, verifier=None, *, seed: int = 0, progress=None,
    **kw,
) -> list[StrategyResult]:  # fmt: skip
    """run_strategy_many on every question, QUESTIONS_PER_BATCH at a time (batch j seeded
    seed + 1009 * j), scored by the rule (verifier None) or a learned verifier; calls
    progress(questions done) after each batch. eval.py and grpo.search.test_time_compute use it,
    so their figures are the same for the same flags."""
    out: list[StrategyResult] = []
    for j, c0 in enumerate(range(0, len(examples), QUESTIONS_PER_BATCH)):
        chunk = examples[c0 : c0 + QUESTIONS_PER_BATCH]
        scorer = RuleScorer(task, chunk)
        if verifier is not None:
            scorer = VerifierScorer(verifier, tok, [task.prompt(ex) for ex in chunk])
        out += run_strategy_many(name, policy, tok, task, chunk, scorer, seed=seed + 1009 * j,
                                 **kw)  # fmt: skip
        if progress is not None:
            progress(len(out))
    return out


def run_strategy(name: str, policy, tok, task, example, scorer, **kw) -> StrategyResult:
    """run_strategy_many on one question; `scorer` is built for [example]."""
    return run_strategy_many(name, policy, tok, task, [example], scorer, **kw)[0]


def run_strategy_many(
    name: str, policy, tok, task, examples, scorer, *, n: int = 8, width: int = 4,
    expand: int = 4, simulations: int = 16, max_new_tokens: int = 128,
    delimiters: tuple[str, ...] | None = None, seed: int = 0, max_rows: int = 512,
    rule: str = "uct",
) -> list[StrategyResult]:  # fmt: skip
    """Run one strategy on every question of `examples` (see the module docstring).

    The searches' steps end at `delimiters` (default: the task's, STEP_DELIMITERS:
    addition's ", ", countdown's verdicts " yes." / " no."), and no completion, searched
    or sampled, takes more than `max_new_tokens` tokens.
    """
    from grpo.search.verifiers.train import MAX_STEP_TOKENS, STEP_DELIMITERS

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if delimiters is None:
        delimiters = STEP_DELIMITERS.get(task.name, (", ",))
    prompts = [task.prompt(ex) for ex in examples]
    Q = len(examples)
    policy_tokens = [0] * Q
    if name in ("greedy", "sample"):
        temperature = 0.0 if name == "greedy" else 1.0
        samples, used = sample_many(policy, tok, prompts, 1, max_new_tokens, seed, max_rows,
                                    temperature)  # fmt: skip
        policy_tokens = [sum(u) for u in used]
        chosen = [texts[0] for texts in samples]
    elif name in ("majority", "best_of_n", "weighted_best_of_n"):
        samples, used = sample_many(policy, tok, prompts, n, max_new_tokens, seed, max_rows)
        policy_tokens = [sum(u) for u in used]
        flat = [(q, t) for q in range(Q) for t in samples[q]]
        flat_scores = [1.0] * len(flat) if name == "majority" else scorer(flat)
        chosen = []
        for q, texts in enumerate(samples):
            scores = flat_scores[q * n : (q + 1) * n]
            chosen.append(pick(name, texts, [task.answer_key(t, examples[q]) for t in texts],
                               scores))  # fmt: skip
    else:
        steps = PolicySteps(policy, tok, prompts, delimiters=delimiters, seed=seed,
                            max_rows=max_rows, max_new_tokens=max_new_tokens,
                            max_step_tokens=MAX_STEP_TOKENS.get(task.name, 48))  # fmt: skip

        def score(requests):
            return scorer([(q, "".join(p)) for q, p in requests])

        if name == "beam":
            found = beam_search_many(steps.many, score, Q, width, expand)
            chosen = ["".join(beams[0].prefix) for beams in found]
        else:
            finished_by_rollout: dict = {}
            rollout_calls = [0]

            def evaluate(requests) -> list[float]:
                texts = ["".join(p) for _, p in requests]
                # A finished step is scored as it is; an open prefix is finished by one rollout.
                todo = [i for i, (_, p) in enumerate(requests)
                        if not p or p[-1].endswith(delimiters)]  # fmt: skip
                if todo:
                    rollout_calls[0] += 1
                    heads = [prompts[requests[i][0]] + texts[i] for i in todo]
                    taken = [len(a) - len(b) for a, b in zip(
                        tok.encode_batch(heads),
                        tok.encode_batch([prompts[requests[i][0]] for i in todo]))]  # fmt: skip
                    tails, used = sample_many(policy, tok, heads, 1, max_new_tokens,
                                              seed + 104_729 * rollout_calls[0], max_rows,
                                              used=taken)  # fmt: skip
                    for i, tail, u in zip(todo, tails, used):
                        q, p = requests[i]
                        policy_tokens[q] += sum(u)
                        texts[i] += tail[0]
                        finished_by_rollout[q, p] = texts[i]
                return scorer([(q, t) for (q, _), t in zip(requests, texts)])

            chosen = []
            for q, (_root, path) in enumerate(
                    mcts_many(steps.many, evaluate, Q, simulations, expand, rule)):  # fmt: skip
                text = "".join(path)
                if ANSWER_END not in text:  # the best path stops short of an answer: finish it
                    text = finished_by_rollout.get((q, path)) or text
                chosen.append(text)
        policy_tokens = [a + b for a, b in zip(policy_tokens, steps.tokens)]
    return [StrategyResult(text, task.score(text, ex)["accuracy"] == 1.0, policy_tokens[q],
                           scorer.tokens[q])
            for q, (text, ex) in enumerate(zip(chosen, examples))]  # fmt: skip


def pick(name: str, texts: list[str], keys: list, scores: list[float]) -> str:
    """The chosen sample of majority, best_of_n or weighted_best_of_n."""
    if name == "best_of_n":
        return texts[max(range(len(texts)), key=lambda i: (scores[i], -i))]
    winner = weighted_vote(keys, [1.0] * len(texts) if name == "majority" else scores)
    return texts[keys.index(winner)] if winner is not None else texts[0]
