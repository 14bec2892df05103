"""Countdown's rules, and the searches the countdown corpora write (grpo/bases/countdown*.py).

    from grpo.bases.solver import countdown_solve
    steps = countdown_solve([67, 65, 79], 780, random.Random(0))   # 79-67=12, 65*12=780

A step is "a op b=c": the larger operand first, c a positive integer up to
MAX_VALUE (999), no fractions (`countdown_moves`). A try is a full path of
steps down to one number. `countdown_solve` finds a solution (randomised
depth-first), `countdown_guess` a plausible failed try, `expression_forms`
turns a solution into an answer built one substitution at a time, and
`Search` writes the tries as the corpus shows them:

    67 65 79 to 780: 67+65=132 [79 132], 132+79=211 no. 79-67=12 [65 12],
    65*12=780 yes. so 65*12 = 65*(79-67)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_VALUE = 999  # default cap on every number a written search holds (~2% of problems need more)


@dataclass(frozen=True)
class Step:
    """One step of a search: `a op b = value` (a >= b), and the numbers left after it."""

    a: int
    op: str
    b: int
    value: int
    left: tuple[int, ...]  # the pool after the step: untouched numbers, then `value`
    i: int  # positions of a and b in the pool before the step (not written)
    j: int

    def text(self) -> str:
        return f"{self.a}{self.op}{self.b}={self.value}"


def _combine(a: int, op: str, b: int, max_value: int = MAX_VALUE) -> int | None:
    """a op b for a >= b if it is a positive integer <= max_value, else None."""
    if op == "+":
        v = a + b
    elif op == "-":
        v = a - b
    elif op == "*":
        v = a * b
    else:
        v = a // b if b and a % b == 0 else 0
    return v if 0 < v <= max_value else None


def countdown_moves(
    pool: Sequence[int], max_value: int = MAX_VALUE
) -> list[tuple[int, int, str, int]]:
    """Every step from `pool`: (i, j, op, value), pool[i] >= pool[j], positive integer results.

    These are the real game's rules (no negatives, no fractions), plus a cap:
    every number the search writes is a positive integer of at most 3 digits,
    so every step is arithmetic a small model can learn to do in one go.
    """
    out = []
    for i in range(len(pool)):
        for j in range(i + 1, len(pool)):
            hi, lo = (i, j) if pool[i] >= pool[j] else (j, i)
            for op in "+-*/":
                v = _combine(pool[hi], op, pool[lo], max_value)
                if v is not None:
                    out.append((hi, lo, op, v))
    return out


def _step(pool: Sequence[int], move: tuple[int, int, str, int]) -> Step:
    i, j, op, v = move
    left = tuple(x for k, x in enumerate(pool) if k not in (i, j)) + (v,)
    return Step(pool[i], op, pool[j], v, left, i, j)


def countdown_solve(
    numbers: Sequence[int], target: int, rng: random.Random, budget: int = 20_000,
    max_value: int = MAX_VALUE,
) -> tuple[Step, ...] | None:  # fmt: skip
    """A solution as steps (depth-first, moves in random order), or None within `budget` nodes.

    Random order, so the corpus shows many different solutions, not always the
    first in some fixed order. The task's own generator may use negative or
    fractional intermediates; this search finds one without them, every number
    <= max_value (999), for all but ~2% of problems (those are left out of the corpus).
    """
    nodes = [budget]

    def search(pool: tuple[int, ...]) -> tuple[Step, ...] | None:
        if len(pool) == 1:
            return () if pool[0] == target else None
        moves = countdown_moves(pool, max_value)
        rng.shuffle(moves)
        for move in moves:
            nodes[0] -= 1
            if nodes[0] < 0:
                return None
            step = _step(pool, move)
            rest = search(step.left)
            if rest is not None:
                return (step, *rest)
        return None

    return search(tuple(numbers))


def countdown_guess(
    numbers: Sequence[int], target: int, rng: random.Random, max_value: int = MAX_VALUE
) -> tuple[Step, ...] | None:
    """A plausible try: random steps, then the last step whose value is closest to the target.

    The last step is the one a searcher can choose by looking (which of a + b,
    a - b, a * b, a / b lands nearest?); the earlier ones are guesses.
    """
    pool, steps = tuple(numbers), []
    while len(pool) > 1:
        moves = countdown_moves(pool, max_value)
        if not moves:
            return None
        if len(pool) == 2:
            move = min(moves, key=lambda m: abs(m[3] - target))
        else:
            move = rng.choice(moves)
        steps.append(_step(pool, move))
        pool = steps[-1].left
    return tuple(steps)


def expression_forms(numbers: Sequence[int], steps: Sequence[Step]) -> list[str]:
    """The last step's left side, then one earlier result replaced per form by its own step.

    [81*4, (9+72)*4] for 9 72 4 -> 324: the final expression is a copy of the
    last form, and each form is the one before with one number, the leftmost
    that a step produced, expanded in parentheses (the lesson of the addition
    base: the answer must be a copy, never a reassembly done in one go).
    """
    # An expression node: a number (int), or [value, op, left, right, expanded].
    pool: list[Any] = list(numbers)
    for s in steps:  # replay by position: equal values of different origin stay apart
        a, b = pool[s.i], pool[s.j]
        pool = [n for k, n in enumerate(pool) if k not in (s.i, s.j)]
        pool.append([s.value, s.op, a, b, False])
    root = pool[0]
    if isinstance(root, int):  # a single number: no steps
        return [str(root)]

    def render(node: Any, top: bool) -> str:
        if isinstance(node, int):
            return str(node)
        if not node[4]:
            return str(node[0])
        text = f"{render(node[2], False)}{node[1]}{render(node[3], False)}"
        return text if top else f"({text})"

    def first_collapsed(node: Any) -> Any:
        if isinstance(node, int):
            return None
        if not node[4]:
            return node
        return first_collapsed(node[2]) or first_collapsed(node[3])

    root[4] = True
    forms = [render(root, True)]
    while (node := first_collapsed(root)) is not None:
        node[4] = True
        forms.append(render(root, True))
    return forms


@dataclass(frozen=True)
class Search:
    """A written search: tries (each a full path to one number), solved or given up."""

    numbers: tuple[int, ...]
    target: int
    tries: tuple[tuple[Step, ...], ...]

    @property
    def solved(self) -> bool:
        return self.tries[-1][-1].value == self.target

    @property
    def forms(self) -> list[str]:
        return expression_forms(self.numbers, self.tries[-1])

    @property
    def expression(self) -> str:
        """The answer: the last form (a wrong expression if the search gave up)."""
        return self.forms[-1]

    def text(self) -> str:
        """The scratchpad, e.g. (one failed try, then the solution):

        67 65 79 to 780: 67+65=132 [79 132], 132+79=211 no. 79-67=12 [65 12],
        65*12=780 yes. so 65*12 = 65*(79-67)
        """
        head = " ".join(map(str, self.numbers)) + f" to {self.target}:"
        tries = []
        for steps in self.tries:
            words = [f"{s.text()} [{' '.join(map(str, s.left))}]" for s in steps[:-1]]
            last = steps[-1]
            words.append(f"{last.text()} {'yes' if last.value == self.target else 'no'}")
            tries.append(", ".join(words) + ".")
        return f"{head} {' '.join(tries)} so {' = '.join(self.forms)}"
