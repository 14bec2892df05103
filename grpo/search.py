"""Search against verifiers, the algorithms alone: weighted vote, step-level beam search, MCTS.

These are written against two callables, so that they can be tested on a toy
step tree whose answers are known, and driven later by the policy and a
verifier (BEYOND_ZERO.md sections 2-4):

    expand(prefix, k) -> list[Step]      # k candidate next steps from `prefix`
    score(prefixes)   -> list[float]     # a verifier's value of each prefix (PRM, ORM, rule)

A prefix is a tuple of steps (strings); a step is finished when it carries
the answer. Only PolicySteps (the policy as `expand`) runs a model.

    weighted_vote(keys, scores)                      # weighted best-of-N (majority if all 1)
    beam_search(expand, score, width=4, k=4)         # keep the W best prefixes by score
    mcts(expand, evaluate, simulations=32, k=4)      # UCT or PUCT selection, backup of values
    expand = PolicySteps(policy, tok, prompt, delimiters=(", ",))   # steps from the policy

Determinism: ties are broken by order (the earlier candidate or child wins),
and nothing here draws random numbers; `expand` and `evaluate` own the
randomness. Tests: tests/test_search.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from model import generate

Prefix = tuple[str, ...]


@dataclass(frozen=True)
class Step:
    text: str  # the step as generated (ends at the task's step delimiter, or with the answer)
    prior: float = 1.0  # the policy's probability of the step (PUCT); normalised over siblings
    finished: bool = False  # the step completes the solution (it carries the answer)


# ---------------------------------------------------------------------- voting
def weighted_vote(keys: Sequence[Hashable | None], scores: Sequence[float]) -> Hashable | None:
    """score(a) = sum of the scores of the samples whose answer key is a; argmax_a.

    Samples without an answer (key None) do not vote. With every score 1 this is
    majority voting. Ties go to the answer that appeared first.
    """
    if len(keys) != len(scores):
        raise ValueError(f"{len(keys)} keys but {len(scores)} scores")
    totals: dict[Hashable, float] = {}
    for key, s in zip(keys, scores):
        if key is not None:
            totals[key] = totals.get(key, 0.0) + float(s)
    if not totals:
        return None
    best = max(totals.values())
    return next(k for k, v in totals.items() if v == best)


# ---------------------------------------------------------------------- beam search
@dataclass
class Beam:
    prefix: Prefix
    score: float
    finished: bool


def beam_search(
    expand: Callable[[Prefix, int], list[Step]], score: Callable[[list[Prefix]], list[float]],
    width: int, k: int, max_steps: int = 32,
) -> list[Beam]:  # fmt: skip
    """Step-level beam search (BEYOND_ZERO.md section 3).

    Each round, every unfinished beam is extended by its k sampled next steps;
    the candidates are scored, and the `width` best of (finished beams so far +
    candidates) are kept, so a finished beam keeps its place until better ones
    push it out. Stops when every kept beam is finished or after `max_steps`
    rounds. Returns the kept beams, best first (ties: earlier first).
    """
    if width < 1 or k < 1:
        raise ValueError(f"width and k must be >= 1, got width={width}, k={k}")
    beams = [Beam((), 0.0, False)]
    for _ in range(max_steps):
        open_beams = [b for b in beams if not b.finished]
        if not open_beams:
            break
        cands: list[tuple[Prefix, bool]] = []
        for b in open_beams:
            cands += [(b.prefix + (s.text,), s.finished) for s in expand(b.prefix, k)]
        scores = score([p for p, _ in cands]) if cands else []
        pool = [b for b in beams if b.finished]
        pool += [Beam(p, float(s), f) for (p, f), s in zip(cands, scores)]
        # sorted() is stable: among equal scores the earlier (finished first) stays ahead.
        beams = sorted(pool, key=lambda b: -b.score)[:width]
    return sorted(beams, key=lambda b: -b.score)


# ---------------------------------------------------------------------- MCTS
def uct(q: float, n_parent: int, n_child: int, c: float) -> float:
    """Q(s,a) + c * sqrt(ln N(s) / N(s,a)); an unvisited child scores +inf."""
    if n_child == 0:
        return math.inf
    return q + c * math.sqrt(math.log(n_parent) / n_child)


def puct(q: float, prior: float, n_parent: int, n_child: int, c: float) -> float:
    """Q(s,a) + c * P(a|s) * sqrt(N(s)) / (1 + N(s,a))."""
    return q + c * prior * math.sqrt(n_parent) / (1 + n_child)


@dataclass
class Node:
    prefix: Prefix
    prior: float = 1.0
    finished: bool = False
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    visits: int = 0  # N
    value_sum: float = 0.0  # W

    @property
    def q(self) -> float:
        """Q = W / N (0 before any visit)."""
        return self.value_sum / self.visits if self.visits else 0.0


def select_child(node: Node, rule: str = "uct", c: float = 1.4) -> Node:
    """The child maximising UCT or PUCT (ties: the earlier child)."""
    if rule == "uct":
        key = lambda ch: uct(ch.q, node.visits, ch.visits, c)  # noqa: E731
    elif rule == "puct":
        key = lambda ch: puct(ch.q, ch.prior, node.visits, ch.visits, c)  # noqa: E731
    else:
        raise ValueError(f"unknown selection rule {rule!r}; valid: uct, puct")
    best, best_v = None, -math.inf
    for ch in node.children:
        v = key(ch)
        if best is None or v > best_v:
            best, best_v = ch, v
    return best


def backup(leaf: Node, value: float) -> None:
    """Add `value` to every node from the leaf to the root: N += 1, W += value."""
    node = leaf
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node = node.parent


def mcts(
    expand: Callable[[Prefix, int], list[Step]], evaluate: Callable[[Prefix], float],
    simulations: int, k: int, rule: str = "uct", c: float = 1.4,
) -> tuple[Node, Prefix]:  # fmt: skip
    """Monte Carlo tree search over steps (BEYOND_ZERO.md section 4).

    Each simulation selects from the root down to a leaf (UCT or PUCT), expands
    the leaf with k sampled steps (unless it is finished), evaluates the first
    new child (or the finished leaf) with `evaluate` (a rollout to an answer
    scored by a rule or verifier, or a PRM value), and backs the value up.
    Priors are normalised over each node's children. Returns the root and the
    answer: the most-visited path from the root down to a finished node (ties:
    higher Q, then earlier), or the deepest node reached on that path.
    """
    if simulations < 1 or k < 1:
        raise ValueError(f"simulations and k must be >= 1, got {simulations} and {k}")
    root = Node(())
    for _ in range(simulations):
        node = root
        while node.children:
            node = select_child(node, rule, c)
        if not node.finished:
            steps = expand(node.prefix, k)
            total = sum(s.prior for s in steps) or 1.0
            node.children = [Node(node.prefix + (s.text,), s.prior / total, s.finished, node)
                             for s in steps]  # fmt: skip
            if node.children:
                node = node.children[0]
        backup(node, float(evaluate(node.prefix)))
    node = root
    while node.children:
        node = max(node.children, key=lambda ch: (ch.visits, ch.q))
        if node.finished:
            break
    return root, node.prefix


# ---------------------------------------------------------------------- the policy as expand()
class PolicySteps:
    """`expand` for beam_search and mcts: k next steps sampled from the policy.

    A step is the text the policy writes after prompt + prefix, up to and
    including the first step delimiter (the addition scratchpad's ", "), or up
    to the end of the answer. A step that does not end with a delimiter is
    finished (the answer, EOS, or `max_step_tokens` reached). Identical
    samples are merged into one step; a step's prior is its probability under
    the policy, exp(sum of its tokens' log-probs at `temperature`). The text is
    re-tokenised at every call, as text-level step search does. Call j uses
    seed + j, so a search is deterministic given its seed. `tokens` counts the
    policy tokens generated, for compute accounting.
    """

    def __init__(
        self, policy, tok, prompt: str, delimiters: Sequence[str] = (", ",),
        answer_end: str = "</answer>", max_step_tokens: int = 48, temperature: float = 1.0,
        seed: int = 0,
    ) -> None:  # fmt: skip
        if not delimiters or any(not d for d in delimiters):
            raise ValueError("PolicySteps needs at least one non-empty step delimiter")
        self.policy, self.tok, self.prompt = policy, tok, prompt
        self.delimiters, self.answer_end = tuple(delimiters), answer_end
        self.max_step_tokens, self.temperature, self.seed = max_step_tokens, temperature, seed
        self.calls = 0
        self.tokens = 0

    def __call__(self, prefix: Prefix, k: int) -> list[Step]:
        ids = self.tok.encode(self.prompt + "".join(prefix))
        out = generate(
            self.policy, [ids], max_new_tokens=self.max_step_tokens, num_samples=k,
            temperature=self.temperature, eos_ids=self.tok.eos_ids,
            stop_strings=[*self.delimiters, self.answer_end], tokenizer=self.tok,
            pad_id=self.tok.pad_id, seed=self.seed + self.calls, return_logprobs=True,
        )  # fmt: skip
        self.calls += 1
        self.tokens += int(out.lengths.sum())
        merged: dict[str, float] = {}
        for row, n, lp in zip(out.tokens, out.lengths.tolist(), out.logprobs):
            text = self.tok.decode(row[:n].tolist())
            merged.setdefault(text, math.exp(float(lp[:n].sum())))
        return [Step(t, p, not t.endswith(self.delimiters)) for t, p in merged.items()]
