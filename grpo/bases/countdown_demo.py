"""The "demo-countdown" base's corpus: the CPU countdown demo, searches in a fixed order.

    from grpo.bases.countdown_demo import demo_countdown_records
    records = demo_countdown_records(1000, seed=0)   # (kind, example, text) per document

The task is the demo variant of countdown (`get_task("countdown")`'s
defaults): 3 numbers from 1 to 20, a target from 20 to 200, + - * / with
division only when exact (~13,000 distinct problems, ~850 of them held out).
A random expression rarely hits the target (a model that answers at once is
right about 1 time in 5), and a search that tries every first step in turn
always finds a solution (after 3.6 tries on average, 9 or more for 10% of
the problems):

    6 2 12 to 96: 6+2=8: 12+8=20 vs 96, 12-8=4 vs 96, 12*8=96 vs 96 yes. so 12*8 = 12*(6+2)
    5 3 9 to 42: 5+3=8: 9+8=17 vs 42, 9-8=1 vs 42, 9*8=72 vs 42 no. 5-3=2: 9+2=11 vs 42,
        ... 9+5=14: 14+3=17 vs 42, 14-3=11 vs 42, 14*3=42 vs 42 yes. so ...

A try is one first step (`first_steps`: the pairs in the order the numbers
are given, + - * / each, larger operand first, positive integer results,
no division by 1), then every way to finish it with the number left
(`countdown_moves`, stopping at the one that hits), each line followed by
" vs TARGET": " yes." if one reaches the target, " no." if none does. So a
try checks itself, every line is one arithmetic fact, a "yes" can be
verified by reading it, and the next try is the next first step in the list:
a searcher never repeats itself, it only decides whether to go on.

Why " vs TARGET": without it (a first build), the model had to compare each
value with the target written at the start of the search, and it did so
badly: 42% of its sampled "yes" claims were honest, and it also wrote a hit
such as "13+8=21" for target 21 and went on with "no". RL then learned to
claim "yes" after the first line (false "yes" in 60-70% of completions after
10 steps). Copying the target next to each value makes the check a
comparison of two adjacent numbers. The solved search answers with its last line,
rebuilt one substitution at a time (`expression_forms`).

Documents (every one ends with <|endoftext|>):

    40%  R1-Zero transcripts, the trainer's exact prompt, then one of
           60%  " <answer>EXPR</answer>"                  a guess (mostly wrong)
           12%  " <think></think> <answer>EXPR</answer>"  a guess after empty thinking
           23%  " <think> SEARCH </think> <answer>EXPR</answer>"
                  after each failed try it goes on with probability
                  `continue_prob` (0.6); if it stops, it gives up and answers
                  the nearest line of its last try (wrong)
            5%  " EXPR"                                   a bare guess, no tags
    60%  worked examples: the task's question, ". Work it out: SEARCH and the
         answer is EXPR." The search always goes on until it hits. Half of
         the problems solved at the first try are left out
         (`worked_one_try_keep`), so long searches are seen more often.

A guess is one random first step and the finishing step nearest the target
(`countdown_guess`): right ~22% of the time for the policy that writes it,
less for a model that imitates it. So the base usually answers without a
full search under the R1-Zero template, and when it searches it gives up
early: the gap RL closes by learning to go on (longer completions, fewer
give-ups, more recoveries). The worked examples teach the whole search; the
transcripts teach that a search can be cut short.

Why these rates (base v3): v2 (50% transcripts, continue_prob 0.4, every
worked problem kept, 1,100 steps) searched too unreliably for RL to gain
from going on. Forced to keep searching (`so` banned after `no.`), its greedy
searches were right 34% of the time (200 held-out problems; 8% of lines
wrong, 64% of "yes" claims honest, a third cut off at 480 tokens), and RL
learned nothing but short searches. v3 trains 1.6x longer on more worked
searches and long ones more often: forced to keep searching it is right 76%
of the time (4% of lines wrong, 91% of "yes" claims honest). Sampled, it
still goes on after a failed try only ~30% of the time (below the corpus's
60%), so persistence is left for RL to raise.

Problems come from the task's train stream with indices below
`grpo.run.context.RL_STREAM_OFFSET`, where the RL train stream starts, so RL
never trains on a problem the base saw (held-out problems never occur).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from grpo.bases.common import EOS, TEMPLATE, check_build_numbers, completion_text, model_config
from grpo.bases.solver import (
    MAX_VALUE,
    Step,
    _step,
    countdown_guess,
    countdown_moves,
    expression_forms,
)
from grpo.tasks import get_task
from model.config import ModelConfig

DEMO_COUNTDOWN_MODES = ("answer", "empty_think", "scratchpad", "bare")


@dataclass(frozen=True)
class CountdownDemoConfig:
    """The CPU countdown demo's base ("demo-countdown"): everything that decides its weights.

    The task variant is the countdown task's defaults (3 numbers); the model is
    ~3M parameters, built in about an hour on 2 CPU cores (61 min for the shipped v3).
    """

    task: ClassVar[str] = "countdown"
    seed: int = 0  # corpus, tokenizer sample, model init and data order
    num_docs: int = 90_000  # documents in the corpus (~21M tokens)
    transcript_share: float = 0.4  # R1-Zero transcripts; the rest are worked examples
    worked_one_try_keep: float = 0.5  # worked examples: P(keep a problem solved at the first try)
    answer_share: float = 0.6  # within transcripts: " <answer>guess</answer>"
    empty_think_share: float = 0.12  # " <think></think> <answer>guess</answer>"
    scratchpad_share: float = 0.23  # " <think> SEARCH </think> <answer>expr</answer>"
    bare_share: float = 0.05  # " guess", no tags
    continue_prob: float = 0.6  # transcript searches: P(next try | a failed try)
    max_tries: int = 9  # problems whose search needs more tries are left out (~7%)
    max_value: int = MAX_VALUE  # no number a search writes is above this
    tokenizer_docs: int = 2_000
    vocab_size: int = 512
    hidden_size: int = 256
    intermediate_size: int = 704
    num_layers: int = 4
    num_heads: int = 8
    num_kv_heads: int = 4
    head_dim: int = 32
    seq_len: int = 768  # the prompt is ~170 tokens, the longest search ~560
    batch_size: int = 10
    steps: int = 1800
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 60
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    version: int = 3

    def __post_init__(self) -> None:
        check_build_numbers(self, DEMO_COUNTDOWN_MODES)
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")
        for option in ("continue_prob", "worked_one_try_keep"):
            if not 0.0 <= getattr(self, option) <= 1.0:
                raise ValueError(f"{option} must be in [0, 1], got {getattr(self, option)}")
        if self.max_value < 1:
            raise ValueError(f"max_value must be >= 1, got {self.max_value}")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "base": "demo-countdown", **asdict(self)}

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return model_config(self, vocab_size, eos_id)


DEMO_COUNTDOWN_CONFIG = CountdownDemoConfig()


@dataclass(frozen=True)
class CountdownStudentConfig(CountdownDemoConfig):
    """The "demo-countdown-student" base: the countdown demo's corpus, tokenizer and recipe
    with about a quarter of its parameters (0.80M: hidden 128, 4 heads, 2 KV heads), the
    student of `python -m grpo.experiments.distill --task countdown`."""

    hidden_size: int = 128
    intermediate_size: int = 352
    num_heads: int = 4
    num_kv_heads: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "base": "demo-countdown-student"}


COUNTDOWN_STUDENT_CONFIG = CountdownStudentConfig()


@dataclass(frozen=True)
class Try:
    """One try: a first step, then the finishing steps written (the last one hits, or none does)."""

    first: Step
    finishes: tuple[Step, ...]
    target: int

    @property
    def hit(self) -> bool:
        return self.finishes[-1].value == self.target

    def nearest(self) -> Step:
        """The finishing step that hits, or else the one nearest the target (first on ties)."""
        return min(self.finishes, key=lambda s: abs(s.value - self.target))

    def text(self) -> str:
        lines = ", ".join(f"{s.text()} vs {self.target}" for s in self.finishes)
        return f"{self.first.text()}: {lines} {'yes' if self.hit else 'no'}."


def first_steps(numbers: Sequence[int], max_value: int = MAX_VALUE) -> list[Step]:
    """Every first step, in the searcher's fixed order (pairs as given, then + - * /).

    Division by 1 is left out: it gives the same numbers as multiplying by 1.
    """
    pool = tuple(numbers)
    moves = [m for m in countdown_moves(pool, max_value) if not (m[2] == "/" and pool[m[1]] == 1)]
    return [_step(pool, m) for m in moves]


def make_try(first: Step, target: int, max_value: int = MAX_VALUE) -> Try | None:
    """The try that starts with `first`: finishing steps in order up to the first hit."""
    finishes = []
    for move in countdown_moves(first.left, max_value):
        finishes.append(_step(first.left, move))
        if finishes[-1].value == target:
            break
    return Try(first, tuple(finishes), target) if finishes else None


def full_search(
    numbers: Sequence[int], target: int, max_value: int = MAX_VALUE
) -> list[Try] | None:
    """Every try in order up to the first that hits; None if none does."""
    tries = []
    for first in first_steps(numbers, max_value):
        t = make_try(first, target, max_value)
        if t is None:
            continue
        tries.append(t)
        if t.hit:
            return tries
    return None


def search_text(numbers: Sequence[int], target: int, tries: Sequence[Try]) -> tuple[str, str]:
    """(the written search, its answer): the answer is the last try's hit, or its nearest line."""
    last = tries[-1]
    forms = expression_forms(numbers, (last.first, last.nearest()))
    head = " ".join(map(str, numbers)) + f" to {target}:"
    body = " ".join(t.text() for t in tries)
    return f"{head} {body} so {' = '.join(forms)}", forms[-1]


def guess_expression(numbers: Sequence[int], target: int, rng: random.Random,
                     max_value: int = MAX_VALUE) -> str | None:  # fmt: skip
    """A guess: a random first step, then the finishing step nearest the target."""
    steps = countdown_guess(numbers, target, rng, max_value)
    return None if steps is None else expression_forms(numbers, steps)[-1]


def demo_countdown_task(seed: int = 0):
    """The task whose train stream the corpus draws from (the trainer's, with its defaults)."""
    return get_task("countdown", seed=seed, template=TEMPLATE)


def demo_countdown_records(
    num_docs: int, seed: int, config: CountdownDemoConfig = DEMO_COUNTDOWN_CONFIG
) -> list[tuple[str, dict[str, Any], str]]:
    """(kind, example, text) per document; kind is a mode of DEMO_COUNTDOWN_MODES or "worked".

    Problems with no solution that the fixed-order search finds (positive
    integers up to max_value) within max_tries tries are skipped, so document
    i is not train problem i.
    """
    task = demo_countdown_task(seed)
    rng = random.Random(f"demo-countdown-cpu-corpus/{seed}")
    modes = list(DEMO_COUNTDOWN_MODES)
    weights = [getattr(config, f"{m}_share") for m in modes]
    records: list[tuple[str, dict[str, Any], str]] = []
    index = 0
    while len(records) < num_docs:
        example = task.train_example(index)
        index += 1
        numbers, target = example["numbers"], example["target"]
        tries = full_search(numbers, target, config.max_value)
        if tries is None or len(tries) > config.max_tries:
            continue
        if rng.random() < config.transcript_share:
            kind = rng.choices(modes, weights)[0]
            if kind == "scratchpad":
                stop = 1
                while stop < len(tries) and rng.random() < config.continue_prob:
                    stop += 1
                work, answer = search_text(numbers, target, tries[:stop])
            else:
                work, answer = "", guess_expression(numbers, target, rng, config.max_value)
                if answer is None:
                    continue
            text = task.prompt(example) + completion_text(kind, answer, work, "bare", modes)
        else:
            if len(tries) == 1 and rng.random() >= config.worked_one_try_keep:
                continue
            work, answer = search_text(numbers, target, tries)
            kind = "worked"
            text = f"{example['question']}. Work it out: {work} and the answer is {answer}."
        records.append((kind, example, text + EOS))
    return records
