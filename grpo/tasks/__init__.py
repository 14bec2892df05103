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

Tasks (get_task's names):
    addition   a + b with 3-4 digit operands (the tiny CPU demo's task)    addition.py
    countdown  TinyZero-style: combine 3-4 numbers with + - * / to hit a target  countdown.py
    jsonl      a file of {"question": ..., "answer": ...} lines (GSM8K style)  jsonl.py

The rest of the package:
    base.py            Task and GeneratedTask: the stream, the held-out split, score()
    templates.py       the R1-Zero prompt template (and its variants)
    rewards.py         the rule-based rewards: format check, answer extraction, countdown's
                       safe evaluator (a parser, never eval)
    search_metrics.py  how a countdown completion searches: tries, give-ups, false claims
    readability.py     R1's language-consistency reward in miniature
"""

from __future__ import annotations

import dataclasses
from typing import Any

from grpo.tasks.addition import AdditionTask
from grpo.tasks.base import Example, GeneratedTask, Task, in_heldout, stable_hash
from grpo.tasks.countdown import COUNTDOWN_QUESTION, TINYZERO_COUNTDOWN, CountdownTask
from grpo.tasks.jsonl import JsonlTask, jsonl_objects, load_jsonl, reference_answer

__all__ = [
    "COUNTDOWN_QUESTION", "TINYZERO_COUNTDOWN", "TASKS", "AdditionTask", "CountdownTask",
    "Example", "GeneratedTask", "JsonlTask", "Task", "available_tasks", "get_task",
    "in_heldout", "jsonl_objects", "load_jsonl", "reference_answer", "stable_hash",
]

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
