"""Countdown (TinyZero): combine 3-4 numbers with + - * / to hit a target."""

from __future__ import annotations

import operator
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from grpo.tasks.base import Example, GeneratedTask
from grpo.tasks.rewards import (
    MAX_LITERAL_DIGITS,
    countdown_correct,
    countdown_expression,
    countdown_value,
    countdown_wellformed,
    extract_answer,
)
from grpo.tasks.search_metrics import search_behaviour

COUNTDOWN_QUESTION = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use "
    "basic arithmetic operations (+, -, *, /) and each number exactly once. Show your work "
    "in <think> </think> tags and return the final equation in <answer> </answer> tags, "
    "for example <answer> (1 + 2) / 3 </answer>"
)


# TinyZero's countdown: 3-4 numbers in 1..99, targets 1..999 (configs/gpu-countdown.toml).
TINYZERO_COUNTDOWN = {"min_numbers": 3, "max_numbers": 4, "min_number": 1, "max_number": 99,
                      "min_target": 1, "max_target": 999}  # fmt: skip


@dataclass(kw_only=True)
class CountdownTask(GeneratedTask):
    """Countdown: reach `target` using each of `numbers` once with + - * /.

    Examples are built forwards: draw the numbers, combine them in a random
    order with random operations, keep the result if it is an integer in
    [min_target, max_target]. So every example is solvable; the generator's
    expression is stored as "solution" for checking, but any valid expression
    scores (see grpo.tasks.rewards.countdown_correct, which also accepts "expr = target").
    """

    name: ClassVar[str] = "countdown"
    # The defaults are the CPU demo's variant (grpo/bases/countdown_demo.py): small
    # enough for a ~3M-parameter model to search, hard enough that guessing
    # mostly fails. TinyZero's ranges are TINYZERO_COUNTDOWN (the GPU preset's).
    min_numbers: int = 3
    max_numbers: int = 3
    min_number: int = 1
    max_number: int = 20
    min_target: int = 20
    max_target: int = 200
    max_attempts: ClassVar[int] = 10_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.min_numbers <= self.max_numbers <= 8:
            raise ValueError(
                f"need 2 <= min_numbers <= max_numbers <= 8, got {self.min_numbers}, "
                f"{self.max_numbers}"
            )
        if not 0 <= self.min_number <= self.max_number < 10**MAX_LITERAL_DIGITS:
            raise ValueError(
                f"need 0 <= min_number <= max_number < 10**{MAX_LITERAL_DIGITS}, got "
                f"{self.min_number}, {self.max_number}"
            )
        if not 1 <= self.min_target <= self.max_target:
            raise ValueError(
                f"need 1 <= min_target <= max_target, got {self.min_target}, {self.max_target}"
            )

    def generate(self, rng: random.Random) -> Example:
        # The count is drawn once: redrawing it on every failed attempt would
        # favour counts whose random targets land in range more often.
        count = rng.randint(self.min_numbers, self.max_numbers)
        for _ in range(self.max_attempts):
            numbers = [rng.randint(self.min_number, self.max_number) for _ in range(count)]
            built = _random_expression(numbers, rng)
            if built is None:
                continue
            value, expression = built
            if value.denominator == 1 and self.min_target <= value <= self.max_target:
                target = int(value)
                return {
                    "question": COUNTDOWN_QUESTION.format(numbers=numbers, target=target),
                    "numbers": numbers,
                    "target": target,
                    "solution": expression,
                }
        raise ValueError(
            f"countdown: no target in [{self.min_target}, {self.max_target}] after "
            f"{self.max_attempts} attempts; widen the target or number range"
        )

    def example_key(self, example: Example) -> str:
        # Sorted: the same numbers in another order are the same problem.
        return f"{sorted(example['numbers'])}->{example['target']}"

    def is_correct(self, answer: str, example: Example) -> bool:
        return countdown_correct(answer, example["numbers"], example["target"])

    def answer_wellformed(self, answer: str, example: Example) -> bool:
        return countdown_wellformed(answer)

    def behaviour(self, completion: str, example: Example, correct: bool) -> dict[str, float]:
        """Tries, giving up, false "yes" claims, recoveries (grpo.tasks.search_metrics)."""
        return search_behaviour(completion, example["numbers"], example["target"], correct)

    def answer_key(self, completion: str, example: Example) -> str | None:
        """The exact value of a valid expression ("98", "7/3"), else "invalid:<text>"."""
        answer = extract_answer(completion)
        if not answer:
            return None
        expression = countdown_expression(answer, example["target"])
        value = None
        if expression is not None:
            value = countdown_value(expression.strip(), example["numbers"])
        # The prefix keeps a bare "98" (which uses no numbers) out of the
        # bucket of valid expressions worth 98.
        return str(value) if value is not None else f"invalid:{answer}"


_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _random_expression(numbers: list[int], rng: random.Random) -> tuple[Fraction, str] | None:
    """Combine all `numbers` pairwise in random order; (value, expression), or None on x/0."""
    pool = [(Fraction(x), str(x)) for x in numbers]
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        (a, left), (b, right) = pool[i], pool[j]
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        pool = [p for k, p in enumerate(pool) if k not in (i, j)]
        pool.append((_OPERATORS[op](a, b), f"({left} {op} {right})"))
    value, expression = pool[0]
    if len(numbers) > 1:
        expression = expression[1:-1]  # the outermost pair wraps the whole expression
    return value, expression
