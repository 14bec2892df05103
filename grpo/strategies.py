"""Test-time strategies for one question, with their compute (BEYOND_ZERO.md sections 1-4).

    scorer = RuleScorer(task, example)                 # or VerifierScorer(verifier, tok, prompt)
    res = run_strategy("beam", policy, tok, task, example, scorer, width=4, expand=4, seed=0)
    res.correct, res.policy_tokens, res.verifier_tokens

Strategies (STRATEGIES):
- majority: n samples, the most frequent answer (self-consistency);
- best_of_n: n samples, the one the scorer rates highest;
- weighted_best_of_n: n samples, the answer whose samples' scores sum highest;
- beam: step-level beam search (grpo.search.beam_search) with `width` beams, each
  extended by `expand` sampled steps, ranked by the scorer;
- mcts: grpo.search.mcts with `simulations` simulations of `expand` children; a
  leaf is valued by finishing it with one sampled continuation and scoring that.

Compute, counted per question so that strategies compare at equal compute:
policy tokens generated (samples, steps and rollouts) and verifier tokens
scored (every token a learned verifier reads; 0 for the rule).
Every random draw is seeded from `seed`, so a strategy is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo.search import PolicySteps, beam_search, mcts, weighted_vote
from model import generate
from model.generate import left_pad

STRATEGIES = ("majority", "best_of_n", "weighted_best_of_n", "beam", "mcts")
ANSWER_END = "</answer>"


@dataclass
class StrategyResult:
    text: str  # the chosen completion
    correct: bool
    policy_tokens: int
    verifier_tokens: int


class RuleScorer:
    """The oracle: the task's rule-based reward of a finished completion; an unfinished
    prefix (no answer yet) scores 0, since the rule cannot judge it."""

    def __init__(self, task, example) -> None:
        self.task, self.example, self.tokens = task, example, 0

    def __call__(self, texts: list[str]) -> list[float]:
        return [self.task.score(t, self.example)["reward"] if ANSWER_END in t else 0.0
                for t in texts]  # fmt: skip


class VerifierScorer:
    """A learned ORM or PRM (grpo.verifiers): P(correct) read at the text's last token."""

    def __init__(self, verifier, tok, prompt: str) -> None:
        self.verifier, self.tok, self.prompt, self.tokens = verifier, tok, prompt, 0

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        ids = self.tok.encode_batch([self.prompt + t for t in texts])
        self.tokens += sum(len(i) for i in ids)
        # Left-padded: every text's last token sits in the last column.
        x, m = left_pad(ids, self.tok.pad_id, next(self.verifier.parameters()).device)
        return torch.sigmoid(self.verifier(x, m)[:, -1]).tolist()


def _sample(policy, tok, prompt: str, n: int, max_new: int, seed: int) -> tuple[list[str], int]:
    out = generate(policy, [tok.encode(prompt)], max_new_tokens=max_new, num_samples=n,
                   temperature=1.0, eos_ids=tok.eos_ids, stop_strings=[ANSWER_END],
                   tokenizer=tok, pad_id=tok.pad_id, seed=seed)  # fmt: skip
    return tok.decode_batch(out.completions()), int(out.lengths.sum())


def run_strategy(
    name: str, policy, tok, task, example, scorer, *, n: int = 8, width: int = 4,
    expand: int = 4, simulations: int = 16, max_new_tokens: int = 128,
    delimiters: tuple[str, ...] = (", ",), seed: int = 0,
) -> StrategyResult:  # fmt: skip
    """Run one strategy on one question (see the module docstring)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    prompt = task.prompt(example)
    policy_tokens = 0
    if name in ("majority", "best_of_n", "weighted_best_of_n"):
        texts, policy_tokens = _sample(policy, tok, prompt, n, max_new_tokens, seed)
        keys = [task.answer_key(t, example) for t in texts]
        if name == "best_of_n":
            scores = scorer(texts)
            text = texts[max(range(len(texts)), key=lambda i: (scores[i], -i))]
        else:
            scores = [1.0] * len(texts) if name == "majority" else scorer(texts)
            winner = weighted_vote(keys, scores)
            text = texts[keys.index(winner)] if winner is not None else texts[0]
    else:
        steps = PolicySteps(policy, tok, prompt, delimiters=delimiters, seed=seed)

        def score(prefixes):
            return scorer(["".join(p) for p in prefixes])

        if name == "beam":
            beams = beam_search(steps, score, width=width, k=expand)
            text = "".join(beams[0].prefix)
        else:
            finished_by_rollout = {}

            def evaluate(prefix) -> float:
                nonlocal policy_tokens
                head = "".join(prefix)
                if prefix and not prefix[-1].endswith(delimiters):  # a finished step
                    return score([prefix])[0]
                tails, used = _sample(policy, tok, prompt + head, 1, max_new_tokens,
                                      seed + 104_729 * (len(finished_by_rollout) + 1))  # fmt: skip
                policy_tokens += used
                finished_by_rollout[prefix] = head + tails[0]
                return scorer([head + tails[0]])[0]

            _root, path = mcts(steps, evaluate, simulations=simulations, k=expand)
            text = "".join(path)
            if ANSWER_END not in text:  # the best path stops short of an answer: finish it
                text = finished_by_rollout.get(path) or text
        policy_tokens += steps.tokens
    correct = task.score(text, example)["accuracy"] == 1.0
    return StrategyResult(text, correct, policy_tokens, scorer.tokens)
