"""A file of {"question": ..., "answer": ...} lines (GSM8K style)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from grpo.tasks.base import Example, Task, in_heldout, stable_hash
from grpo.tasks.rewards import (
    extract_answer,
    normalize_number,
)


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
