"""Tasks: where questions come from and how completions are scored.

    from grpo.tasks import get_task
    task = get_task("countdown", seed=0)       # or "addition", or "jsonl", path=...
    example = task.train_example(0)            # a JSON-serialisable dict with "question"
    prompt = task.prompt(example)              # R1-Zero template filled in
    task.score(completion, example)            # {"reward", "accuracy", "format", "answer_parsed"}

Data positions are plain ints: the train stream is train_example(0),
train_example(1), ..., each a pure function of (task options, seed, index),
so resuming a run needs only the next index.

Held-out data never overlaps the train stream. For generated tasks an example
is held out iff a stable hash (sha256, not Python's per-process salted hash())
of its canonical content falls in the first `heldout_fraction` of the hash
range; the train stream regenerates such examples and the held-out set keeps
only them. The held-out set depends on the generator options but not on
`seed`, so runs with different seeds are evaluated on the same questions.
For the jsonl task the split is by hash of the question text.

Tasks:
    addition   a + b with 3-4 digit operands (the tiny CPU demo's task)
    countdown  TinyZero-style: combine 3-4 numbers with + - * / to hit a target
    jsonl      a file of {"question": ..., "answer": ...} lines (GSM8K style)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import operator
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from grpo.rewards import (
    MAX_LITERAL_DIGITS,
    check_format,
    combine_reward,
    countdown_correct,
    countdown_expression,
    countdown_value,
    countdown_wellformed,
    extract_answer,
    normalize_number,
)
from grpo.search_metrics import search_behaviour
from grpo.templates import build_prompt, get_template
from grpo.templates import primer as template_primer

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
    template: str = "r1zero"  # a name in grpo.templates.TEMPLATES
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

        format = the tag structure (grpo.rewards.check_format) AND an answer in
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
    scores (see grpo.rewards.countdown_correct, which also accepts "expr = target").
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
        """Tries, giving up, false "yes" claims, recoveries (grpo.search_metrics)."""
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


def reference_answer(raw: Any) -> str:
    """The reference answer as text: GSM8K's "... #### 42" gives "42"; numbers via str()."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise TypeError(f"answer must be a string or a number, got {type(raw).__name__}")
    if isinstance(raw, str):
        return raw.rpartition("####")[2].strip()
    return str(raw)


def jsonl_objects(path: Path):
    """(where, object) for each non-blank line of a JSONL file, `where` = "path:line";
    ValueError naming the line that is not JSON or not a JSON object."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: invalid JSON ({e.msg})") from e
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def load_jsonl(path: str | Path) -> list[Example]:
    """Read {"question": str, "answer": str | number} lines; blank lines are skipped.

    Errors name the file and the 1-based line: FileNotFoundError for a missing
    file, ValueError for bad JSON, a missing or mistyped field, an empty
    answer, or a file with no examples.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"jsonl task: {path}: {what}")
    examples = []
    for where, record in jsonl_objects(path):
        for key in ("question", "answer"):
            if key not in record:
                raise ValueError(f"{where}: missing field {key!r}")
        if not isinstance(record["question"], str) or not record["question"].strip():
            raise ValueError(f"{where}: field 'question' must be a non-empty string")
        try:
            answer = reference_answer(record["answer"])
        except TypeError as e:
            raise ValueError(f"{where}: field 'answer': {e}") from e
        if not answer:
            raise ValueError(f"{where}: field 'answer' is empty")
        examples.append({"question": record["question"].strip(), "answer": answer})
    if not examples:
        raise ValueError(f"{path}: no examples (the file is empty or blank)")
    return examples


@dataclass(kw_only=True)
class JsonlTask(Task):
    """Questions with numeric (or exact-text) answers from a user's JSONL file.

    The answer is compared after normalize_number; if the reference is not a
    number, the stripped texts must be equal. Held-out: the questions whose
    hash falls in the first `heldout_fraction` of the hash range (at least one
    and at most all but one distinct question when there are two or more), or
    the whole of `heldout_path` if given, in which case train lines whose
    question is also in that file are dropped.
    """

    name: ClassVar[str] = "jsonl"
    path: str
    heldout_path: str | None = None
    heldout_fraction: float = 0.1
    _train: list[Example] = field(init=False, repr=False, default_factory=list)
    _heldout: list[Example] = field(init=False, repr=False, default_factory=list)
    _order: tuple[int, list[int]] = field(init=False, repr=False, default=(-1, []))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        examples = load_jsonl(self.path)
        if self.heldout_path is not None:
            self._heldout = load_jsonl(self.heldout_path)
            held = {ex["question"] for ex in self._heldout}
        else:
            held = self._split(sorted({ex["question"] for ex in examples}))
            self._heldout = [ex for ex in examples if ex["question"] in held]
        self._train = [ex for ex in examples if ex["question"] not in held]
        if not self._train:
            raise ValueError(f"{self.path}: no training examples left after the held-out split")

    def _split(self, questions: list[str]) -> set[str]:
        by_hash = sorted(questions, key=lambda q: stable_hash(f"jsonl:{q}"))
        k = sum(in_heldout(f"jsonl:{q}", self.heldout_fraction) for q in questions)
        k = min(max(k, 1), len(questions) - 1)  # 0 when there is a single question
        return set(by_hash[:k])

    @property
    def train_size(self) -> int:
        """How many training examples the file holds (held-out questions excluded)."""
        return len(self._train)

    def train_example(self, index: int) -> Example:
        """Epoch e = index // N visits the train split in a shuffled order seeded by (seed, e)."""
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        epoch, position = divmod(index, len(self._train))
        if self._order[0] != epoch:
            order = list(range(len(self._train)))
            random.Random(f"jsonl/train/{self.seed}/{epoch}").shuffle(order)
            self._order = (epoch, order)
        return dict(self._train[self._order[1][position]])

    def heldout(self, n: int) -> list[Example]:
        """The first `n` held-out examples in file order (fewer if the split is smaller)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return [dict(ex) for ex in self._heldout[:n]]

    def is_correct(self, answer: str, example: Example) -> bool:
        reference = normalize_number(example["answer"])
        if reference is None:
            return answer.strip() == example["answer"].strip()
        return normalize_number(answer) == reference

    def answer_wellformed(self, answer: str, example: Example) -> bool:
        if normalize_number(example["answer"]) is None:
            return bool(answer.strip())
        return normalize_number(answer) is not None

    def answer_key(self, completion: str, example: Example) -> str | None:
        answer = extract_answer(completion)
        if not answer:
            return None
        return normalize_number(answer) or answer


TASKS: dict[str, type[Task]] = {
    AdditionTask.name: AdditionTask,
    CountdownTask.name: CountdownTask,
    JsonlTask.name: JsonlTask,
}


def available_tasks() -> list[str]:
    return sorted(TASKS)


def get_task(name: str, **options: Any) -> Task:
    """Build the task registered as `name` with its options (seed, template, ...).

    ValueError for an unknown task name, TypeError for an unknown or missing
    option; both messages list what is valid.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(available_tasks())}")
    cls = TASKS[name]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    valid = sorted(f.name for f in fields)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)} for task {name!r}; "
            f"valid options: {', '.join(valid)}"
        )
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in options
    ]
    if missing:
        raise TypeError(f"task {name!r} needs option(s): {', '.join(missing)}")
    return cls(**options)
