"""Addition of 3-4 digit numbers: the task a tiny from-scratch model learns on a CPU."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from grpo.tasks.base import Example, GeneratedTask
from grpo.tasks.rewards import (
    extract_answer,
    normalize_number,
)


@dataclass(kw_only=True)
class AdditionTask(GeneratedTask):
    """Multi-digit addition, the task a tiny from-scratch model can learn on CPU."""

    name: ClassVar[str] = "addition"
    min_digits: int = 3
    max_digits: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        # 30 digits keeps every sum within normalize_number's length bound.
        if not 1 <= self.min_digits <= self.max_digits <= 30:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits <= 30, got {self.min_digits}, "
                f"{self.max_digits}"
            )

    def _operand(self, rng: random.Random) -> int:
        # Uniform over digit counts first, so 3-digit operands are not
        # swamped by the ten times more numerous 4-digit ones.
        digits = rng.randint(self.min_digits, self.max_digits)
        low = 10 ** (digits - 1) if digits > 1 else 0
        return rng.randint(low, 10**digits - 1)

    def generate(self, rng: random.Random) -> Example:
        a, b = self._operand(rng), self._operand(rng)
        return {"question": f"What is {a} + {b}", "a": a, "b": b, "target": a + b}

    def example_key(self, example: Example) -> str:
        return f"{example['a']}+{example['b']}"

    def is_correct(self, answer: str, example: Example) -> bool:
        return normalize_number(answer) == str(example["target"])

    def answer_wellformed(self, answer: str, example: Example) -> bool:
        return normalize_number(answer) is not None

    def answer_key(self, completion: str, example: Example) -> str | None:
        answer = extract_answer(completion)
        return None if answer is None else normalize_number(answer)
