"""Search against verifiers, the algorithms alone: weighted vote, step-level beam search, MCTS.

These are written against two callables, so that they can be tested on a toy
step tree whose answers are known, and driven later by the policy and a
verifier (a PRM, as in Lightman et al. 2023, or the task's rules):

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

import torch

from model import generate

Prefix = tuple[str, ...]
Request = tuple[int, Prefix]  # (question index, prefix), for the lockstep *_many searches


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
    """Step-level beam search, scored by a step verifier, for one question.

    Each round, every unfinished beam is extended by its k sampled next steps;
    the candidates are scored, and the `width` best of (finished beams so far +
    candidates) are kept, so a finished beam keeps its place until better ones
    push it out. Stops when every kept beam is finished or after `max_steps`
    rounds. Returns the kept beams, best first (ties: earlier first).
    """
    return beam_search_many(
        lambda reqs, k: [expand(p, k) for _, p in reqs],
        lambda reqs: score([p for _, p in reqs]), 1, width, k, max_steps,
    )[0]  # fmt: skip


def beam_search_many(
    expand: Callable[[list[Request], int], list[list[Step]]],
    score: Callable[[list[Request]], list[float]], n: int, width: int, k: int,
    max_steps: int = 32,
) -> list[list[Beam]]:  # fmt: skip
    """`beam_search` on n questions in lockstep: one `expand` and one `score` call per round.

    A request is (question index, prefix); expand(requests, k) returns each
    request's next steps, score(requests) each request's value. Each question's
    beams evolve exactly as `beam_search` would evolve them alone, given the
    same steps and scores; batching only lets the policy and the verifier run
    many prefixes per call.
    """
    if width < 1 or k < 1:
        raise ValueError(f"width and k must be >= 1, got width={width}, k={k}")
    beams = [[Beam((), 0.0, False)] for _ in range(n)]
    for _ in range(max_steps):
        reqs = [(q, b.prefix) for q in range(n) for b in beams[q] if not b.finished]
        if not reqs:
            break
        cands: list[tuple[int, Prefix, bool]] = []
        for (q, prefix), steps in zip(reqs, expand(reqs, k)):
            cands += [(q, prefix + (s.text,), s.finished) for s in steps]
        scores = score([(q, p) for q, p, _ in cands]) if cands else []
        pools = [[b for b in beams[q] if b.finished] for q in range(n)]
        for (q, p, f), s in zip(cands, scores):
            pools[q].append(Beam(p, float(s), f))
        for q in {q for q, _ in reqs}:
            # sorted() is stable: among equal scores the earlier (finished first) stays ahead.
            beams[q] = sorted(pools[q], key=lambda b: -b.score)[:width]
    return [sorted(b, key=lambda b: -b.score) for b in beams]


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
    """Monte Carlo tree search over reasoning steps for one question.

    Each simulation selects from the root down to a leaf (UCT or PUCT), expands
    the leaf with k sampled steps (unless it is finished), evaluates the first
    new child (or the finished leaf) with `evaluate` (a rollout to an answer
    scored by a rule or verifier, or a PRM value), and backs the value up.
    Priors are normalised over each node's children. Returns the root and the
    answer: the most-visited path from the root down to a finished node (ties:
    higher Q, then earlier), or the deepest node reached on that path.
    """
    return mcts_many(
        lambda reqs, k: [expand(p, k) for _, p in reqs],
        lambda reqs: [evaluate(p) for _, p in reqs], 1, simulations, k, rule, c,
    )[0]  # fmt: skip


def mcts_many(
    expand: Callable[[list[Request], int], list[list[Step]]],
    evaluate: Callable[[list[Request]], list[float]], n: int, simulations: int, k: int,
    rule: str = "uct", c: float = 1.4,
) -> list[tuple[Node, Prefix]]:  # fmt: skip
    """`mcts` on n questions in lockstep: simulation s of every question runs together,
    with one `expand` call for all the leaves to expand and one `evaluate` call for
    all the nodes to value (requests are (question index, prefix), as in
    `beam_search_many`). Each tree evolves exactly as `mcts` would evolve it alone."""
    if simulations < 1 or k < 1:
        raise ValueError(f"simulations and k must be >= 1, got {simulations} and {k}")
    if rule not in ("uct", "puct"):
        raise ValueError(f"unknown selection rule {rule!r}; valid: uct, puct")
    roots = [Node(()) for _ in range(n)]
    for _ in range(simulations):
        leaves = []
        for root in roots:
            node = root
            while node.children:
                node = select_child(node, rule, c)
            leaves.append(node)
        grow = [q for q, leaf in enumerate(leaves) if not leaf.finished]
        new = expand([(q, leaves[q].prefix) for q in grow], k) if grow else []
        for q, steps in zip(grow, new):
            node = leaves[q]
            total = sum(s.prior for s in steps) or 1.0
            node.children = [Node(node.prefix + (s.text,), s.prior / total, s.finished, node)
                             for s in steps]  # fmt: skip
            if node.children:
                leaves[q] = node.children[0]
        values = evaluate([(q, leaf.prefix) for q, leaf in enumerate(leaves)])
        for leaf, v in zip(leaves, values):
            backup(leaf, float(v))
    out = []
    for root in roots:
        node = root
        while node.children:
            node = max(node.children, key=lambda ch: (ch.visits, ch.q))
            if node.finished:
                break
        out.append((root, node.prefix))
    return out


# ---------------------------------------------------------------------- the policy as expand()
def generate_within(policy, tok, ids: list[list[int]], budgets: Sequence[int], n: int, *,
                    stop_strings: Sequence[str], temperature: float, seed: int,
                    return_logprobs: bool = False):  # fmt: skip
    """generate() of n samples of each prompt, row i stopped after budgets[i] tokens.

    A search continues prefixes that have already used part of the completion budget:
    each continuation may take only what is left of it. One call decodes up to the
    largest budget (at most what the context leaves after the longest prompt) and each
    row's `lengths` is cut to its own budget; with equal budgets this is plain generate.
    """
    if min(budgets) < 1:
        raise ValueError(f"every budget must be >= 1 token, got {min(budgets)}")
    room = policy.config.max_position_embeddings - max(len(x) for x in ids)
    out = generate(policy, ids, max_new_tokens=max(1, min(max(budgets), room)), num_samples=n,
                   temperature=temperature, eos_ids=tok.eos_ids, stop_strings=list(stop_strings),
                   tokenizer=tok, pad_id=tok.pad_id, seed=seed,
                   return_logprobs=return_logprobs)  # fmt: skip
    cap = torch.tensor([b for b in budgets for _ in range(n)], dtype=out.lengths.dtype)
    out.lengths = torch.minimum(out.lengths, cap.to(out.lengths.device))
    return out


class PolicySteps:
    """`expand` for beam_search and mcts: k next steps sampled from the policy.

    A step is the text the policy writes after prompt + prefix, up to and
    including the first step delimiter (the addition scratchpad's ", "), or up
    to the end of the answer. A step that does not end with a delimiter is
    finished (the answer, EOS, or `max_step_tokens` reached; with `max_new_tokens`, also
    a step that uses up the completion budget, prefix included). Identical
    samples are merged into one step; a step's prior is its probability under
    the policy, exp(sum of its tokens' log-probs at `temperature`). The text is
    re-tokenised at every call, as text-level step search does.

    `prompts` is one prompt (then `expand(prefix, k)` serves `beam_search` and
    `mcts`) or a list of them (then `expand.many(requests, k)` serves
    `beam_search_many` and `mcts_many`, with requests (prompt index, prefix)).
    One `many` call runs the policy on at most `max_rows` rows at a time; the
    j-th policy call uses seed + j, so a search is deterministic given its seed
    and its questions. `tokens[q]` counts the policy tokens generated for prompt
    q, for compute accounting.
    """

    def __init__(
        self, policy, tok, prompts: str | Sequence[str], delimiters: Sequence[str] = (", ",),
        answer_end: str = "</answer>", max_step_tokens: int = 48, temperature: float = 1.0,
        seed: int = 0, max_rows: int = 512, max_new_tokens: int | None = None,
    ) -> None:  # fmt: skip
        if not delimiters or any(not d for d in delimiters):
            raise ValueError("PolicySteps needs at least one non-empty step delimiter")
        self.policy, self.tok = policy, tok
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.delimiters, self.answer_end = tuple(delimiters), answer_end
        self.max_step_tokens, self.temperature, self.seed = max_step_tokens, temperature, seed
        self.max_rows, self.max_new_tokens = max_rows, max_new_tokens
        self.calls = 0
        self.tokens = [0] * len(self.prompts)

    def __call__(self, prefix: Prefix, k: int) -> list[Step]:
        if len(self.prompts) != 1:
            raise ValueError("PolicySteps(prefix, k) needs one prompt; use .many for several")
        return self.many([(0, prefix)], k)[0]

    def many(self, requests: Sequence[Request], k: int) -> list[list[Step]]:
        out: list[list[Step]] = []
        per_call = max(1, self.max_rows // k)
        for c0 in range(0, len(requests), per_call):
            out += self._call(requests[c0 : c0 + per_call], k)
        return out

    def _call(self, requests: Sequence[Request], k: int) -> list[list[Step]]:
        ids = self.tok.encode_batch([self.prompts[q] + "".join(p) for q, p in requests])
        budget = self.max_new_tokens
        used = [0] * len(requests)  # completion tokens each prefix has taken
        if budget is not None:
            bare = self.tok.encode_batch([self.prompts[q] for q, _ in requests])
            used = [len(x) - len(b) for x, b in zip(ids, bare)]
        # The tokens each step may take: what the completion budget leaves, at most a step's.
        left = [max(1, min(self.max_step_tokens, budget - u)) if budget is not None
                else self.max_step_tokens for u in used]  # fmt: skip
        out = generate_within(self.policy, self.tok, ids, left, k,
                              stop_strings=[*self.delimiters, self.answer_end],
                              temperature=self.temperature, seed=self.seed + self.calls,
                              return_logprobs=True)  # fmt: skip
        self.calls += 1
        lengths = out.lengths.tolist()
        texts = self.tok.decode_batch([row[:n].tolist() for row, n in zip(out.tokens, lengths)])
        result = []
        for i, (q, _prefix) in enumerate(requests):
            merged: dict[str, tuple[float, bool]] = {}
            for r in range(i * k, (i + 1) * k):
                self.tokens[q] += lengths[r]
                # A step that ends without a delimiter, or uses up the budget, is final.
                final = not texts[r].endswith(self.delimiters) or (
                    budget is not None and used[i] + lengths[r] >= budget)  # fmt: skip
                merged.setdefault(texts[r], (math.exp(float(out.logprobs[r, : lengths[r]].sum())),
                                             final))  # fmt: skip
            result.append([Step(t, p, f) for t, (p, f) in merged.items()])
        return result
