"""What every task is: a stream of training examples, a held-out set that never
overlaps it, the R1-Zero prompt, and a score for a completion."""

from __future__ import annotations

import hashlib
import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from grpo.tasks.rewards import (
    check_format,
    combine_reward,
    extract_answer,
)
from grpo.tasks.templates import build_prompt, get_template
from grpo.tasks.templates import primer as template_primer

Example = dict[str, Any]





def stable_hash(key: str) -> int:
    """A 64-bit hash of `key` that is identical in every process and Python version."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def in_heldout(key: str, fraction: float) -> bool:
    """True iff the example with canonical content `key` belongs to the held-out split."""
    return stable_hash(key) < fraction * 2**64


@dataclass(kw_only=True)
class Task(ABC):
    """A source of examples plus a rule-based scorer. Subclasses add their own options."""

    name: ClassVar[str]
    seed: int = 0  # selects the train stream; the held-out set does not depend on it
    template: str = "r1zero"  # a name in grpo.tasks.templates.TEMPLATES
    format_weight: float = 0.1
    accuracy_weight: float = 1.0

    def __post_init__(self) -> None:
        get_template(self.template)  # fail at construction, not at the first prompt
        if type(self.seed) is not int:
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        for option in ("format_weight", "accuracy_weight"):
            value = float(getattr(self, option))
            if not math.isfinite(value):
                raise ValueError(f"{option} must be finite, got {value}")
            setattr(self, option, value)

    @abstractmethod
    def train_example(self, index: int) -> Example:
        """The example at position `index` (>= 0) of the train stream."""

    @abstractmethod
    def heldout(self, n: int) -> list[Example]:
        """The first `n` examples of the fixed held-out set."""

    @abstractmethod
    def is_correct(self, answer: str, example: Example) -> bool:
        """Whether the extracted answer text is right for `example`."""

    @abstractmethod
    def answer_key(self, completion: str, example: Example) -> str | None:
        """A canonical key of the completion's answer for majority voting; None if none."""

    @property
    def primer(self) -> str:
        return template_primer(self.template)

    def prompt(self, example: Example) -> str:
        return build_prompt(example["question"], self.template)

    def answer_wellformed(self, answer: str, example: Example) -> bool:
        """Whether the answer has the task's answer format (right or wrong)."""
        return bool(answer.strip())

    def behaviour(self, completion: str, example: Example, correct: bool) -> dict[str, float]:
        """Per-completion behaviour the trainer logs as means (see CountdownTask); none here."""
        return {}

    def score(self, completion: str, example: Example) -> dict[str, float]:
        """Score text generated after the prompt (the template's primer is not in it).

        format = the tag structure (grpo.tasks.rewards.check_format) AND an answer in
        the task's answer format (a number; a computable expression). So a
        well-tagged "9**9**9" or "3/(1-1)" earns nothing, not even the format bonus.
        """
        answer = extract_answer(completion)
        format_ok = float(
            check_format(completion, self.primer)
            and answer is not None
            and self.answer_wellformed(answer, example)
        )
        accuracy = float(answer is not None and self.is_correct(answer, example))
        return {
            "reward": combine_reward(
                accuracy, format_ok, self.accuracy_weight, self.format_weight
            ),
            "accuracy": accuracy,
            "format": format_ok,
            "answer_parsed": float(answer is not None),
        }


@dataclass(kw_only=True)
class GeneratedTask(Task):
    """A task whose examples are drawn from a random generator."""

    heldout_fraction: float = 1 / 16  # share of the example space reserved for held-out

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")

    @abstractmethod
    def generate(self, rng: random.Random) -> Example:
        """Draw one example (train or held-out: the caller decides by its key)."""

    @abstractmethod
    def example_key(self, example: Example) -> str:
        """Canonical content: two examples with equal keys are the same problem."""

    def is_heldout(self, example: Example) -> bool:
        return in_heldout(self.example_key(example), self.heldout_fraction)

    def train_example(self, index: int) -> Example:
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        # A fresh generator per index (random.Random hashes a str seed with
        # sha512, stable across processes): example i never depends on i - 1.
        rng = random.Random(f"{self.name}/train/{self.seed}/{index}")
        while True:
            example = self.generate(rng)
            if not self.is_heldout(example):
                return example

    def heldout(self, n: int) -> list[Example]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(f"{self.name}/heldout")
        out: list[Example] = []
        seen: set[str] = set()
        max_draws = int(20 * n / self.heldout_fraction) + 1000
        # A used-up example space is given up on as soon as `patience` draws in a row
        # bring nothing new, not after max_draws (minutes for a large n). With 99.9% of
        # the held-out split drawn, a new example still comes every ~1000 / fraction
        # draws on average: giving up then has a chance of about e^-10.
        patience = int(10_000 / self.heldout_fraction) + 10_000
        draws = since_new = 0
        while draws < max_draws and since_new < patience:
            if len(out) == n:
                return out
            example = self.generate(rng)
            draws += 1
            key = self.example_key(example)
            if key not in seen and in_heldout(key, self.heldout_fraction):
                seen.add(key)
                out.append(example)
                since_new = 0
            else:
                since_new += 1
        if len(out) == n:
            return out
        raise ValueError(
            f"{self.name}: found only {len(out)} distinct held-out examples in {draws} "
            f"draws, {n} asked; the example space is too small for that (widen the options)"
        )
