"""The from-scratch base models the demos start from: "demo" (CPU) and "demo-countdown" (GPU).

R1-Zero needs a *base* model: one pretrained on text, not fine-tuned to follow
a format. This module builds one for 3-4 digit addition in about ten minutes
of a 2-core CPU, ships it (assets/demo-base/), caches it, and measures it:

    python -m grpo.demo build        # THE command that produced assets/demo-base/
    python -m grpo.demo inspect      # modes, per-mode accuracy, format rate of the base
    python -m grpo.demo build --out /tmp/b --steps 100 --docs 5000   # a quick, weaker one

    from grpo.demo import TEMPLATE, ensure_base
    path = ensure_base("demo")       # shipped copy if valid, else .cache/, else build

The GPU preset's base, "demo-countdown", is the same pipeline with a countdown
corpus and a ~34M-parameter model; it is built on first use into
.cache/demo-countdown-base/ (not shipped), see "The countdown base" below:

    python -m grpo.demo build --base demo-countdown          # on CUDA if available
    python -m grpo.demo inspect --base demo-countdown        # countdown modes and searches
    path = ensure_base("demo-countdown")                     # what --model demo-countdown uses

Template: "r1zero". The prompt ends with "Assistant:" and the model must open
<think> itself, as in the paper. Measured on 500 held-out problems (numbers
in assets/README.md): greedy decoding gives a bare <answer> block every time
(format rate 0, accuracy ~0), while sampling at temperature 1 opens <think> in
~31% of completions and writes the column-by-column work in ~16%, which is
right ~91% of the time. So a group of 8 usually holds one careful, right
answer among direct, wrong ones: the signal GRPO amplifies. With
"r1zero_think" the prompt itself would open <think>, and the format question
(does the model choose to think?) would be settled before RL starts.

The corpus (`build_corpus`), stated plainly. Every document ends with
<|endoftext|>; problems come from the task's train stream
(`get_task("addition").train_example(i)`), so held-out problems never occur.

    50%  R1-Zero transcripts: the exact prompt the trainer sends
         (`task.prompt(example)`), then one of
           62%  " <answer>c</answer>"                      direct answer
           25%  " <think></think> <answer>c</answer>"      empty thinking, then the answer
            8%  " <think> WORK </think> <answer>c</answer>" careful work
            5%  " c"                                        a bare number, no tags
    50%  worked examples, no template and no tags, as in a textbook:
           "What is a + b? Column by column: WORK. The answer is c."

WORK writes the operands aligned (zero-padded to one width), then adds column
by column from the right: the two digits, the carry in, their sum, and the
partial result so far, which grows by one digit to the left each step. A final
carry gets its own step, so the answer is a copy of the last partial result,
never a reassembly of digits written in reverse (that design gave wrong final
answers in 45 of 45 long samples; R1ZERO.md section 7):

    What is 3457 + 812? Column by column: 3457 + 0812: 7+2+0=9:9, 5+1+0=6:69,
        4+8+0=12:269, 3+0+1=4:4269. The answer is 4269.
    ... User: What is 951 + 80. Assistant: <think> 951 + 080: 1+0+0=1:1,
        5+8+0=13:31, 9+0+1=10:031, 0+0+1=1:1031 </think> <answer>1031</answer>

Two details decide whether the skill learned from the worked examples shows
up in the transcripts (measured in pilot builds; tests pin both):
  - The work starts as many tokens after the question in both contexts
    ("? Column by column: " and ". Assistant: <think> " are 6 tokens each). A
    model this small looks digits up by relative position: with the work 2
    tokens after the question in worked examples, transcript scratchpads copied
    the wrong digits ~97% of the time while worked examples were ~100% right.
  - The aligned first line. Without it, work was right ~85% of the time (far
    lookups into the shorter operand, and when to stop, failed); with it, ~99%.

So the base model has learned the elementary steps and can write careful work,
but under the R1-Zero template it usually answers directly, which a model
this small gets wrong on nearly every 3-4 digit problem, and it does not
reliably use the <think>/<answer> format. `inspect` measures exactly that.

Pretraining: byte-level BPE (`train_bpe_tokenizer`: digits one token each, the
four tags atomic) trained on the first 2,000 documents, which saturates at
~414 tokens, so the 96-token prompt is one token per word or punctuation
mark; a 1.65M-parameter Llama-style `model.Transformer` (`BuildConfig`),
random init; whole documents packed into rows of 385 tokens (first-fit
decreasing, none split across rows); next-token loss on every token of every
document, because this is a language model of the corpus, not an SFT run (the
template's tokens are predictable and soon cost next to nothing);
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices) with linear warmup and
cosine decay; fp32; seeded model init and data order, so one seed gives the
same weights on the same machine.

The checkpoint folder has Hugging Face layout (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json) plus
manifest.json: the build parameters, training stats and the sha256 of every
file. `ensure_demo_base` rebuilds a folder whose parameters differ from the
current `BuildConfig` (stale) or whose files are missing or do not match their
hashes (corrupt), and logs why.

The countdown base (`CountdownBuildConfig`, `countdown_corpus_records`). The
same two lessons, applied to search. Problems come from
`get_task("countdown").train_example(i)` (3-4 numbers in 1..99, target
1..999); every document ends with <|endoftext|>:

    50%  R1-Zero transcripts, the trainer's exact prompt, then one of
           60%  " <answer>EXPR</answer>"                    direct answer
           22%  " <think></think> <answer>EXPR</answer>"    empty thinking
           12%  " <think> SEARCH </think> <answer>EXPR</answer>"
                  (15% of these give up: EXPR is their last, wrong, try)
            6%  " EXPR"                                     bare expression, no tags
    50%  worked examples: the task's question, ". Work it out: SEARCH and the
         answer is EXPR." (always solved)

SEARCH restates the numbers and the target, then writes tries. A try is a
full path of steps "a op b=c" (larger operand first, positive integers up to
999, no fractions), each followed by the numbers left, until one number
remains: " yes." if it is the target, " no." if not. Failed tries are random
first steps whose last step is the one that lands nearest the target
(`countdown_guess`); a solved search ends with a solution found by a
randomised depth-first search (`countdown_solve`). Then "so" and the answer
built one substitution at a time, so the answer is a copy of the last form:

    67 65 79 to 780: 67+65=132 [79 132], 132+79=211 no. 79-67=12 [65 12],
    65*12=780 yes. so 65*12 = 65*(79-67)

The number of failed tries before the solution is k with P(k) ~ 0.6**k, k <= 3
(mean ~0.9): the base learns to try, check and try again, and RL can learn to
try more (longer responses) and to give up less. ". Work it out: " and
". Assistant: <think> " are 6 tokens each, so the search starts as far from
the question in both kinds (tests pin it). Model: hidden 512, 8 layers, 8
heads of 64, SwiGLU 2048, ~34M parameters; rows of 768 tokens (the longest
document is ~480); 2,500 steps x 64 rows (~123M token slots, ~1.7 epochs of
300k documents) at lr 1e-3, bf16 autocast on CUDA. Its RL run:
configs/gpu-countdown.toml; what is and is not measured: configs/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from grpo.rewards import check_format, countdown_wellformed
from grpo.tasks import get_task
from model.checkpoint import fsync_dir, load_pretrained, save_pretrained, write_json_atomic
from model.config import ModelConfig
from model.generate import generate
from model.tokenizer import Tokenizer, train_bpe_tokenizer
from model.transformer import Transformer

TEMPLATE = "r1zero"  # see the module docstring for why not "r1zero_think"
EOS = "<|endoftext|>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO_ROOT / "assets" / "demo-base"
CACHE_DIR = REPO_ROOT / ".cache" / "demo-base"
CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "generation_config.json",
)  # fmt: skip
MANIFEST = "manifest.json"
# Bump when the corpus generator or the training loop changes what a build produces.
BUILD_VERSION = 1

TRANSCRIPT_MODES = ("answer", "empty_think", "scratchpad", "number")
MODES = (*TRANSCRIPT_MODES, "other")  # what `classify_completion` can return

Log = Callable[[str], None]

__all__ = [
    "DEFAULT_CONFIG", "EOS", "MODES", "TAGS", "TEMPLATE", "TRANSCRIPT_MODES", "BuildConfig",
    "build_base", "build_corpus", "classify_completion", "column_steps", "corpus_records",
    "corpus_task", "ensure_demo_base", "format_report", "inspect_base", "measure", "pack_rows",
    "pretrain", "scratchpad", "transcript_completion", "validate_base", "worked_example",
]  # fmt: skip


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the weights of a build (all of it goes into the manifest)."""

    task: ClassVar[str] = "addition"  # not a field: the shipped manifest predates it
    seed: int = 0  # corpus, tokenizer sample, model init and data order
    num_docs: int = 70_000  # documents in the corpus
    transcript_share: float = 0.5  # R1-Zero transcripts; the rest are worked examples
    answer_share: float = 0.62  # within transcripts: " <answer>c</answer>"
    empty_think_share: float = 0.25  # " <think></think> <answer>c</answer>"
    scratchpad_share: float = 0.08  # " <think> WORK </think> <answer>c</answer>"
    number_share: float = 0.05  # " c"
    tokenizer_docs: int = 2_000  # corpus sample the BPE merges are learned from
    vocab_size: int = 512  # BPE target; the corpus saturates below it (the real V is smaller)
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 6
    num_kv_heads: int = 2
    head_dim: int = 32
    seq_len: int = 384  # tokens per packed row (plus one for the shifted target)
    batch_size: int = 16  # rows per step
    steps: int = 1000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 60
    weight_decay: float = 0.1  # on matrices only
    grad_clip: float = 1.0
    version: int = BUILD_VERSION

    def __post_init__(self) -> None:
        shares = [getattr(self, f"{m}_share") for m in TRANSCRIPT_MODES]
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"transcript mode shares must be >= 0 and sum to 1, got {shares}")
        if not 0.0 <= self.transcript_share <= 1.0:
            raise ValueError(f"transcript_share must be in [0, 1], got {self.transcript_share}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return ModelConfig(
            model_type="llama", vocab_size=vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_layers=self.num_layers,
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
            max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=eos_id,
            pad_token_id=eos_id,
        )  # fmt: skip


DEFAULT_CONFIG = BuildConfig()


# ----------------------------------------------------------------------------- corpus
def column_steps(a: int, b: int) -> list[str]:
    """Column addition of a + b from the right: ["x+y+c=s:partial", ...].

    The last partial result is str(a + b): a final carry gets its own step.
    """
    ra, rb = str(a)[::-1], str(b)[::-1]
    steps, partial, carry, i = [], "", 0, 0
    while i < max(len(ra), len(rb)) or carry:
        x = int(ra[i]) if i < len(ra) else 0
        y = int(rb[i]) if i < len(rb) else 0
        s = x + y + carry
        partial = str(s % 10) + partial
        steps.append(f"{x}+{y}+{carry}={s}:{partial}")
        carry, i = s // 10, i + 1
    return steps


def scratchpad(a: int, b: int) -> str:
    """The careful work: the operands aligned (zero-padded to one width), then the columns.

    Every step then reads its digits from the aligned line just above, at
    positions that depend only on the width and the column, in the transcript
    and in the worked example alike.
    """
    width = max(len(str(a)), len(str(b)))
    return f"{a:0{width}d} + {b:0{width}d}: " + ", ".join(column_steps(a, b))


def _completion(mode: str, answer: str, work: str, bare_mode: str, modes: Sequence[str]) -> str:
    """The text after "Assistant:" in one mode: direct, empty think, worked, or bare."""
    if mode == "answer":
        return f" <answer>{answer}</answer>"
    if mode == "empty_think":
        return f" <think></think> <answer>{answer}</answer>"
    if mode == "scratchpad":
        return f" <think> {work} </think> <answer>{answer}</answer>"
    if mode == bare_mode:
        return f" {answer}"
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(modes)}")


def transcript_completion(mode: str, a: int, b: int) -> str:
    """The text after "Assistant:" for one of TRANSCRIPT_MODES (EOS not included)."""
    work = scratchpad(a, b) if mode == "scratchpad" else ""
    return _completion(mode, str(a + b), work, "number", TRANSCRIPT_MODES)


def worked_example(a: int, b: int) -> str:
    """A textbook line: no template, no tags (EOS not included)."""
    # "? Column by column: " is as many tokens as ". Assistant: <think> ", so the
    # work starts at the same distance from the question as in a transcript.
    return f"What is {a} + {b}? Column by column: {scratchpad(a, b)}. The answer is {a + b}."


def corpus_task(seed: int = 0):
    """The addition task whose train stream the corpus draws from (and the trainer uses)."""
    return get_task("addition", seed=seed, template=TEMPLATE)


def corpus_records(num_docs: int, seed: int, config: BuildConfig = DEFAULT_CONFIG):
    """(kind, example, text) per document; kind is a transcript mode or "worked"."""
    task = corpus_task(seed)
    rng = random.Random(f"demo-corpus/{seed}")
    modes = list(TRANSCRIPT_MODES)
    weights = [getattr(config, f"{m}_share") for m in modes]
    records = []
    for i in range(num_docs):
        example = task.train_example(i)
        a, b = example["a"], example["b"]
        if rng.random() < config.transcript_share:
            kind = rng.choices(modes, weights)[0]
            text = task.prompt(example) + transcript_completion(kind, a, b)
        else:
            kind, text = "worked", worked_example(a, b)
        records.append((kind, example, text + EOS))
    return records


def build_corpus(num_docs: int, seed: int, config: BuildConfig = DEFAULT_CONFIG) -> list[str]:
    """The pretraining documents, a pure function of (num_docs, seed, mix in `config`)."""
    return [text for _, _, text in corpus_records(num_docs, seed, config)]


# ----------------------------------------------------------------------------- countdown corpus
COUNTDOWN_MODES = ("answer", "empty_think", "scratchpad", "bare")
COUNTDOWN_ALL_MODES = (*COUNTDOWN_MODES, "other")  # what `classify_countdown` can return
MAX_VALUE = 999  # default cap on every number a written search holds (~2% of problems need more)


@dataclass(frozen=True)
class CountdownBuildConfig:
    """The GPU preset's base ("demo-countdown"): everything that decides its weights.

    Same pipeline as `BuildConfig` (corpus, BPE, packing, AdamW), another corpus
    and a ~34M-parameter model. `task` is not a field (the manifest gets it from
    `to_dict`), so it cannot be replaced into a wrong value.
    """

    task: ClassVar[str] = "countdown"
    seed: int = 0  # corpus, tokenizer sample, model init and data order
    num_docs: int = 300_000  # documents in the corpus (~60M tokens, ~90 s to generate)
    transcript_share: float = 0.5  # R1-Zero transcripts; the rest are worked examples
    answer_share: float = 0.6  # within transcripts: " <answer>expr</answer>"
    empty_think_share: float = 0.22  # " <think></think> <answer>expr</answer>"
    scratchpad_share: float = 0.12  # " <think> SEARCH </think> <answer>expr</answer>"
    bare_share: float = 0.06  # " expr", no tags
    retry_ratio: float = 0.6  # P(k failed tries before the solution) ~ retry_ratio**k
    max_failed_tries: int = 3  # k <= this (and a give-up has 1 .. this + 1 failed tries)
    give_up_share: float = 0.15  # transcript searches that stop after a failed try
    max_value: int = MAX_VALUE  # no step result above this: every number has <= 3 digits
    tokenizer_docs: int = 2_000  # corpus sample the BPE merges are learned from
    vocab_size: int = 1024  # BPE target; the corpus saturates below it
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_layers: int = 8
    num_heads: int = 8
    num_kv_heads: int = 8  # plain multi-head attention: no GQA path in SDPA's masked kernels
    head_dim: int = 64
    seq_len: int = 768  # tokens per packed row; the longest document is ~465
    batch_size: int = 64  # rows per step
    steps: int = 2500
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.1  # on matrices only
    grad_clip: float = 1.0
    version: int = 1  # bump when the corpus generator or the training loop changes

    def __post_init__(self) -> None:
        shares = [getattr(self, f"{m}_share") for m in COUNTDOWN_MODES]
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"transcript mode shares must be >= 0 and sum to 1, got {shares}")
        for name in ("transcript_share", "give_up_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.retry_ratio < 0 or self.max_failed_tries < 0:
            raise ValueError("need retry_ratio >= 0 and max_failed_tries >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **asdict(self)}

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return BuildConfig.model_config(self, vocab_size, eos_id)  # type: ignore[arg-type]


COUNTDOWN_CONFIG = CountdownBuildConfig()
AnyConfig = BuildConfig | CountdownBuildConfig


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


def countdown_search(
    example: dict[str, Any], rng: random.Random, config: CountdownBuildConfig = COUNTDOWN_CONFIG,
    give_up: bool = False,
) -> Search | None:  # fmt: skip
    """A search for `example`: k failed tries, then a solution (or, with `give_up`, k + 1
    failed tries and no solution). None if no solution without negatives or fractions exists.

    k ~ retry_ratio**k for k = 0 .. max_failed_tries. Failed tries are distinct
    `countdown_guess`es that miss the target.
    """
    numbers, target = tuple(example["numbers"]), example["target"]
    solution = countdown_solve(numbers, target, rng, max_value=config.max_value)
    if solution is None:
        return None
    ks = range(config.max_failed_tries + 1)
    k = rng.choices(ks, [config.retry_ratio**i for i in ks])[0] + int(give_up)
    failed: list[tuple[Step, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(20 * k):
        if len(failed) == k:
            break
        guess = countdown_guess(numbers, target, rng, config.max_value)
        if guess is None or guess[-1].value == target:
            continue
        key = tuple(s.text() for s in guess)
        if key not in seen:
            seen.add(key)
            failed.append(guess)
    if give_up and not failed:
        return None
    tries = tuple(failed) if give_up else (*failed, solution)
    return Search(numbers, target, tries)


def countdown_completion(mode: str, search: Search) -> str:
    """The text after "Assistant:" for one of COUNTDOWN_MODES (EOS not included)."""
    work = search.text() if mode == "scratchpad" else ""
    return _completion(mode, search.expression, work, "bare", COUNTDOWN_MODES)


def countdown_worked_example(example: dict[str, Any], search: Search) -> str:
    """The question as the task asks it, then the search, no template (EOS not included)."""
    # ". Work it out: " is as many tokens as ". Assistant: <think> " (6), so the
    # search starts as far from the question as in a transcript.
    # The search is followed by a space, as by " </think>" in a transcript, so
    # its last token is the same in both (".", like ")" , would merge with ")").
    work = search.text()
    return f"{example['question']}. Work it out: {work} and the answer is {search.expression}."


def countdown_task(seed: int = 0):
    """The countdown task whose train stream the corpus draws from (and the trainer uses)."""
    return get_task("countdown", seed=seed, template=TEMPLATE)


def countdown_corpus_records(
    num_docs: int, seed: int, config: CountdownBuildConfig = COUNTDOWN_CONFIG
) -> list[tuple[str, dict[str, Any], str]]:
    """(kind, example, text) per document; kind is a mode of COUNTDOWN_MODES or "worked".

    Every direct answer, and every worked example, is right; transcript
    scratchpads give up (answer their last, wrong, try) `give_up_share` of
    the time. The ~2% of train problems with no solution in positive
    integers <= max_value are skipped, so document i is not train problem i.
    """
    task = countdown_task(seed)
    rng = random.Random(f"demo-countdown-corpus/{seed}")
    modes = list(COUNTDOWN_MODES)
    weights = [getattr(config, f"{m}_share") for m in modes]
    records: list[tuple[str, dict[str, Any], str]] = []
    index = 0
    while len(records) < num_docs:
        example = task.train_example(index)
        index += 1
        if rng.random() < config.transcript_share:
            kind = rng.choices(modes, weights)[0]
            give_up = kind == "scratchpad" and rng.random() < config.give_up_share
            search = countdown_search(example, rng, config, give_up)
            if search is None:
                continue
            text = task.prompt(example) + countdown_completion(kind, search)
        else:
            search = countdown_search(example, rng, config)
            if search is None:
                continue
            kind, text = "worked", countdown_worked_example(example, search)
        records.append((kind, example, text + EOS))
    return records


# ----------------------------------------------------------------------------- modes
_STEP = re.compile(r"\d\+\d\+\d=\d+:\d+")


def _classify(
    completion: str, step: re.Pattern, bare: Callable[[str], bool], bare_mode: str
) -> str:
    """Shared mode reader: <answer> first, empty or working <think>, a bare answer, other."""
    text = completion.replace(EOS, " ").strip()
    if text.startswith("<answer>"):
        return "answer"
    if text.startswith("<think>"):
        end = text.find("</think>")
        if end < 0:
            return "other"
        inner = text[len("<think>") : end]
        if not inner.strip():
            return "empty_think"
        return "scratchpad" if step.search(inner) else "other"
    return bare_mode if text and bare(text) else "other"


def classify_completion(completion: str) -> str:
    """Which mode a completion (text after the prompt) is in: one of MODES.

    answer: starts with <answer>; empty_think: "<think></think>" then more;
    scratchpad: a <think> block holding at least one column step; number: only
    digits (and end markers); other: anything else (truncated, malformed, ...).
    """
    return _classify(completion, _STEP, str.isdigit, "number")


_COUNTDOWN_STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")


def classify_countdown(completion: str) -> str:
    """Which countdown mode a completion is in: one of COUNTDOWN_ALL_MODES.

    answer: starts with <answer>; empty_think: "<think></think>" then more;
    scratchpad: a <think> block holding at least one step "a op b=c"; bare: no
    tags, only a computable expression; other: anything else.
    """
    return _classify(completion, _COUNTDOWN_STEP, countdown_wellformed, "bare")


def _exact(a: int, op: str, b: int) -> int | None:
    """a op b if it is an integer (any size, any sign), else None."""
    if op == "/":
        return a // b if b and a % b == 0 else None
    return a + b if op == "+" else a - b if op == "-" else a * b


def search_stats(completions: Sequence[str], target_of: Sequence[int]) -> dict[str, Any]:
    """How written searches go: steps whose arithmetic is right, tries, "yes" claims.

    Over the <think> blocks of `completions` that hold steps (any mode text
    after the block is ignored); `target_of[i]` is the target of completion i.
    A try ends with " yes." or " no."; a "yes" is honest when that try's last
    step is right and equals the target.
    """
    searches = steps = right = tries = yes = honest = 0
    for text, target in zip(completions, target_of):
        start, end = text.find("<think>"), text.find("</think>")
        inner = text[start + 7 : end if end >= 0 else len(text)] if start >= 0 else ""
        found = _COUNTDOWN_STEP.findall(inner)
        if not found:
            continue
        searches += 1
        steps += len(found)
        right += sum(_exact(int(a), op, int(b)) == int(c) for a, op, b, c in found)
        for chunk in re.split(r"(?<= yes\.)|(?<= no\.)", inner):
            if chunk.endswith(" yes.") or chunk.endswith(" no."):
                tries += 1
            if chunk.endswith(" yes."):
                yes += 1
                last = _COUNTDOWN_STEP.findall(chunk)
                if last:
                    a, op, b, c = last[-1]
                    honest += int(_exact(int(a), op, int(b)) == int(c) == target)
    return {
        "searches": searches,
        "step_accuracy": right / steps if steps else None,
        "tries_per_search": tries / searches if searches else None,
        "yes_claims": yes,
        "honest_yes": honest / yes if yes else None,
    }


# ----------------------------------------------------------------------------- packing
def pack_rows(docs: Sequence[Sequence[int]], row_len: int, pad_id: int, window: int = 512):
    """Pack whole documents into rows of `row_len` ids: (rows (R, row_len), is_real (R, row_len)).

    First-fit decreasing within windows of `window` documents (deterministic).
    A row starts with a document, as a prompt does at inference; later
    documents in the row can attend to earlier ones, as in GPT pretraining.
    """
    rows: list[list[int]] = []
    for start in range(0, len(docs), window):
        chunk = sorted(docs[start : start + window], key=len, reverse=True)
        open_rows: list[list[int]] = []
        for ids in chunk:
            if len(ids) > row_len:
                raise ValueError(f"a document of {len(ids)} tokens exceeds the row of {row_len}")
            for row in open_rows:
                if len(row) + len(ids) <= row_len:
                    row.extend(ids)
                    break
            else:
                open_rows.append(list(ids))
        rows.extend(open_rows)
    out = torch.full((len(rows), row_len), pad_id, dtype=torch.long)
    real = torch.zeros(len(rows), row_len, dtype=torch.bool)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
        real[i, : len(row)] = True
    return out, real


# ----------------------------------------------------------------------------- pretraining
def train_tokenizer(corpus: Sequence[str], config: AnyConfig) -> Tokenizer:
    return train_bpe_tokenizer(
        corpus[: config.tokenizer_docs], config.vocab_size, special_tokens=(EOS,),
        atomic_strings=TAGS,
    )  # fmt: skip


def lr_at(step: int, config: AnyConfig) -> float:
    """Linear warmup to lr, then cosine to lr * min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def corpus_for(config: AnyConfig) -> list[str]:
    """The pretraining documents of a build: addition or countdown, by the config's type."""
    if config.task == "countdown":
        records = countdown_corpus_records(config.num_docs, config.seed, config)
        return [text for _, _, text in records]
    return build_corpus(config.num_docs, config.seed, config)


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """The device a build runs on: "auto" is cuda when available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    return dev


def pretrain(
    config: AnyConfig, log: Log = print, log_every: int = 50, device: str | torch.device = "cpu"
):
    """Corpus -> tokenizer -> packed rows -> trained model. Returns (model, tokenizer, stats).

    On CPU: fp32 throughout (the shipped addition base was built so, and the
    same seed reproduces it byte for byte). On CUDA: fp32 master weights and
    AdamW state, the forward under bf16 autocast (loss and RMSNorm in fp32),
    TF32 for what autocast leaves in fp32; not bitwise reproducible.
    """
    t0 = time.time()
    device = resolve_device(device)
    cuda = device.type == "cuda"
    corpus = corpus_for(config)
    tok = train_tokenizer(corpus, config)
    ids: list[list[int]] = []
    for i in range(0, len(corpus), 4096):  # chunked: Encoding objects are large
        ids.extend(tok.encode_batch(corpus[i : i + 4096]))
    del corpus
    rows, real = pack_rows(ids, config.seq_len + 1, tok.pad_id)
    n_tokens = sum(map(len, ids))
    del ids
    log(
        f"corpus: {config.num_docs} documents, {n_tokens} tokens, {len(rows)} rows of "
        f"{config.seq_len + 1} ({n_tokens / real.numel():.0%} filled); vocab {tok.vocab_size} "
        f"({time.time() - t0:.1f}s)"
    )

    torch.manual_seed(config.seed)
    cfg = config.model_config(tok.vocab_size, tok.eos_id)
    model = Transformer(cfg).init_weights(seed=config.seed).to(device)  # init on CPU: same seed
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}),
    )  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_step = config.batch_size * config.seq_len
    epochs = config.steps * config.batch_size / len(rows)
    log(
        f"model: {n_params / 1e6:.2f}M params; {config.steps} steps x {config.batch_size} rows x "
        f"{config.seq_len} = {config.steps * tokens_per_step / 1e6:.1f}M tokens "
        f"({epochs:.2f} epochs); "
        + (f"{device}, bf16 autocast" if cuda else f"{torch.get_num_threads()} threads")
    )
    rows, real = rows.to(device), real.to(device)  # no-ops on CPU
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or cuda

    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(rows), generator=g)
    cursor = 0
    start = time.time()
    # Summed on the device in float64 (== Python's sum of loss.item()), read at log
    # lines only: no host sync per step on CUDA.
    window_loss, window_n = torch.zeros((), dtype=torch.float64, device=device), 0
    loss_history: list[tuple[int, float]] = []
    try:
        for step in range(config.steps):
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(rows), generator=g), 0
            idx = order[cursor : cursor + config.batch_size].to(device)
            cursor += config.batch_size
            batch, mask = rows[idx], real[idx]
            inputs = batch[:, :-1]  # (B, T)
            targets = batch[:, 1:].masked_fill(~mask[:, 1:], -100)  # (B, T), padding ignored
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            with autocast:
                logits = model(inputs)  # (B, T, V); padding sits at row ends: causality hides it
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            window_loss += loss.detach().double()
            window_n += 1
            if (step + 1) % log_every == 0 or step + 1 == config.steps:
                elapsed = time.time() - start
                rate = (step + 1) * tokens_per_step / elapsed
                eta = elapsed / (step + 1) * (config.steps - step - 1)
                mean = window_loss.item() / window_n
                loss_history.append((step + 1, round(mean, 4)))
                log(
                    f"step {step + 1:5d}/{config.steps}  loss {mean:.4f}  "
                    f"lr {lr_at(step, config):.2e}  {rate:,.0f} tok/s  elapsed {elapsed:5.0f}s  "
                    f"eta {eta:5.0f}s"
                )
                window_loss.zero_()
                window_n = 0
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    model.eval()
    if cuda:
        torch.cuda.synchronize(device)
    model = model.cpu()  # the checkpoint is written from CPU tensors, fp32
    stats = {
        "params": n_params,
        "corpus_tokens": n_tokens,
        "train_seconds": round(time.time() - start, 1),
        "total_seconds": round(time.time() - t0, 1),
        "tokens_per_second": round(config.steps * tokens_per_step / (time.time() - start)),
        "loss_history": loss_history,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
    }
    return model, tok, stats


# ----------------------------------------------------------------------------- cache
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_base(
    out: str | Path, config: AnyConfig = DEFAULT_CONFIG, log: Log = print, log_every: int = 50,
    device: str | torch.device = "cpu",
) -> Path:  # fmt: skip
    """Pretrain and write a checkpoint folder with a manifest; atomic (temp folder, rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model, tok, stats = pretrain(config, log, log_every, device)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        save_pretrained(model, tmp, tokenizer=tok)
        if config.task == "countdown":
            what = (
                "R1-Zero GPU-preset base model (grpo/demo.py); rebuild: "
                + BUILD_COMMANDS["demo-countdown"]
            )
        else:
            what = "R1-Zero demo base model (grpo/demo.py); rebuild: python -m grpo.demo build"
        manifest = {
            "what": what,
            "build": config.to_dict(),
            "stats": stats,
            "files": {name: sha256_file(tmp / name) for name in CHECKPOINT_FILES},
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        # mkdtemp/mkstemp create private modes; a cache or an asset is shared reading.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out} ({stats['total_seconds']:.0f}s)")
    return out


def validate_base(path: str | Path, config: AnyConfig = DEFAULT_CONFIG) -> str | None:
    """None if `path` holds a complete build of `config`; otherwise the reason it does not."""
    path = Path(path)
    if not path.is_dir():
        return f"{path} does not exist"
    mf = path / MANIFEST
    if not mf.is_file():
        return f"{mf} is missing"
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"{mf} is not valid JSON ({e})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"{mf} has no file list"
    built = manifest.get("build")
    want = config.to_dict()
    if built != want:
        changed = sorted(
            k for k in set(want) | set(built or {}) if (built or {}).get(k) != want.get(k)
        )
        detail = ", ".join(f"{k}: {(built or {}).get(k)!r} -> {want.get(k)!r}" for k in changed)
        return f"stale: build parameters changed ({detail})"
    for name in CHECKPOINT_FILES:
        f = path / name
        if not f.is_file():
            return f"corrupt: {name} is missing"
        want_hash = manifest["files"].get(name)
        if want_hash is None:
            return f"corrupt: {name} is not in the manifest"
        if sha256_file(f) != want_hash:
            return f"corrupt: {name} does not match its sha256 in the manifest"
    return None


def ensure_demo_base(
    path: str | Path | None = None, rebuild: bool = False, log: Log = print,
    config: BuildConfig = DEFAULT_CONFIG, log_every: int = 50,
) -> Path:  # fmt: skip
    """A folder holding a valid demo base model, building it if needed.

    With `path=None`: the shipped assets/demo-base/ if it validates, else the
    cache .cache/demo-base/ under the repository root (built or rebuilt there).
    With a path: that folder, rebuilt if missing, stale or corrupt.
    `rebuild=True` always builds (never over the shipped copy when path is None).
    """
    if path is None:
        if not rebuild:
            reason = validate_base(SHIPPED_DIR, config)
            if reason is None:
                return SHIPPED_DIR
            log(f"demo base: shipped copy not used: {reason}")
        path = CACHE_DIR
    path = Path(path)
    if not rebuild:
        reason = validate_base(path, config)
        if reason is None:
            return path
        log(f"demo base: building {path}: {reason}")
    else:
        log(f"demo base: rebuilding {path} (asked to)")
    return build_base(path, config, log, log_every)


BASES = ("demo", "demo-countdown")  # the names `ensure_base` (and the trainer's --model) take
COUNTDOWN_CACHE_DIR = REPO_ROOT / ".cache" / "demo-countdown-base"
BUILD_COMMANDS = {
    "demo": "python -m grpo.demo build",
    "demo-countdown": "python -m grpo.demo build --base demo-countdown",
}


def base_config(name: str) -> AnyConfig:
    """The default build config of a named base."""
    if name == "demo":
        return DEFAULT_CONFIG
    if name == "demo-countdown":
        return COUNTDOWN_CONFIG
    raise ValueError(f"unknown base {name!r}; bases: {', '.join(BASES)}")


def ensure_base(
    name: str = "demo", log: Log = print, *, path: str | Path | None = None,
    rebuild: bool = False, device: str | torch.device = "auto",
    config: AnyConfig | None = None,
) -> Path:  # fmt: skip
    """A folder holding a valid build of the named base, building it if needed.

    "demo": the CPU demo's addition base, exactly `ensure_demo_base` (the
    shipped assets/demo-base/ if valid, else .cache/demo-base/, built on CPU;
    `device` is not used).
    "demo-countdown": the GPU preset's countdown base, never shipped (~130 MB):
    .cache/demo-countdown-base/ (or `path`), built on first use on `device`
    ("auto": CUDA if available) and rebuilt when stale or corrupt. Building the
    default config on a CPU is refused (it would take many hours); build it
    there on purpose with `python -m grpo.demo build --base demo-countdown --device cpu`.
    """
    want = config if config is not None else base_config(name)
    if name == "demo":
        return ensure_demo_base(path, rebuild=rebuild, log=log, config=want)
    base_config(name)  # unknown names fail here
    path = Path(path) if path is not None else COUNTDOWN_CACHE_DIR
    if not rebuild:
        reason = validate_base(path, want)
        if reason is None:
            return path
        log(f"{name} base: building {path}: {reason}")
    else:
        log(f"{name} base: rebuilding {path} (asked to)")
    dev = resolve_device(device)
    if dev.type == "cpu" and want == COUNTDOWN_CONFIG:
        raise ValueError(
            f"the {name} base is built on a GPU (~10 min on one H100, hours on a CPU) and "
            f"there is no CUDA device here; on a CPU build it explicitly with "
            f"`{BUILD_COMMANDS[name]} --device cpu`, or a weaker one with --steps/--docs/--out DIR "
            f"and train from DIR; or build it on a GPU machine and copy {path}"
        )
    return build_base(path, want, log, device=dev)


# ----------------------------------------------------------------------------- inspect
def _complete(model, tok, prompts, max_new_tokens, samples, temperature, seed, batch_size):
    """Completions (text, token count) for each prompt x sample, in row order."""
    out: list[tuple[str, int]] = []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        res = generate(
            model, chunk, max_new_tokens=max_new_tokens, num_samples=samples,
            temperature=temperature, eos_ids=tok.eos_ids, stop_strings=["</answer>"],
            tokenizer=tok, pad_id=tok.pad_id, generator=gen,
        )  # fmt: skip
        for ids in res.completions():
            out.append((tok.decode(ids), len(ids)))
    return out


def _modes_of(task) -> tuple[Callable[[str], str], tuple[str, ...]]:
    """(classifier, its modes) for a task: countdown has its own, the rest addition's."""
    if task.name == "countdown":
        return classify_countdown, COUNTDOWN_ALL_MODES
    return classify_completion, MODES


def measure(
    task, examples, completions: Sequence[tuple[str, int]], samples: int, prefix: str = ""
) -> dict[str, Any]:
    """Mode shares, per-mode accuracy, accuracy, format rate and length of completions.

    `completions` holds `samples` consecutive rows per example; `prefix` is text
    that was forced after the prompt (it counts as part of the completion).
    For countdown also `search`: how the written searches went (`search_stats`).
    """
    classify, modes = _modes_of(task)
    counts = dict.fromkeys(modes, 0)
    right = dict.fromkeys(modes, 0)
    acc = fmt = length = 0.0
    for j, (text, n) in enumerate(completions):
        example = examples[j // samples]
        full = prefix + text
        score = task.score(full, example)
        mode = classify(full)
        counts[mode] += 1
        right[mode] += int(score["accuracy"])
        acc += score["accuracy"]
        fmt += float(check_format(full, task.primer))
        length += n
    total = max(1, len(completions))
    out = {
        "n": len(completions),
        "accuracy": acc / total,
        "format_rate": fmt / total,
        "mean_length": length / total,
        "mode_share": {m: counts[m] / total for m in modes},
        "mode_accuracy": {m: (right[m] / counts[m] if counts[m] else None) for m in modes},
    }
    if task.name == "countdown":
        texts = [prefix + text for text, _ in completions]
        targets = [examples[j // samples]["target"] for j in range(len(completions))]
        out["search"] = search_stats(texts, targets)
    return out


def base_task(path: str | Path) -> str:
    """The task a base folder was built for, from its manifest ("addition" if it says none)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return "addition"
    build = manifest.get("build") if isinstance(manifest, dict) else None
    return build.get("task", "addition") if isinstance(build, dict) else "addition"


def inspect_base(
    path: str | Path, n: int = 500, samples: int = 4, max_new_tokens: int = 128, seed: int = 0,
    batch_size: int = 128, task: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Measure the base on `n` held-out problems of its task with the demo's template.

    `task`: "addition" or "countdown"; by default the one in the folder's manifest.

    greedy: temperature 0, one completion each (what eval sees at step 0).
    sampled: temperature 1, `samples` each (what GRPO's rollouts see).
    forced_scratchpad: greedy after forcing " <think> " (the scratchpad's own
    start), i.e. how often the careful mode is right when it is used; the 3
    forced tokens count for the score, not for the length.
    Lengths are generated tokens, the EOS or the "</answer>" that ended a
    completion included.
    """
    model = load_pretrained(path, dtype=torch.float32)
    tok = Tokenizer.from_dir(path)
    task_name = task or base_task(path)
    task = countdown_task() if task_name == "countdown" else corpus_task()
    classify, modes = _modes_of(task)
    examples = task.heldout(n)
    prompts = [tok.encode(task.prompt(ex)) for ex in examples]
    forced = " <think> "
    forced_prompts = [tok.encode(task.prompt(ex) + forced) for ex in examples]
    t0 = time.time()
    greedy = _complete(model, tok, prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    sampled = _complete(model, tok, prompts, max_new_tokens, samples, 1.0, seed, batch_size)
    scratch = _complete(model, tok, forced_prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    first: dict[str, str] = {}  # the first sampled completion in each mode
    for text, _ in sampled:
        first.setdefault(classify(text), text)
    return {
        "base": str(path),
        "task": task.name,
        "template": TEMPLATE,
        "heldout": n,
        "prompt_tokens": sum(map(len, prompts)) / len(prompts),
        "greedy": measure(task, examples, greedy, 1),
        "sampled": measure(task, examples, sampled, samples) | {"temperature": 1.0},
        "forced_scratchpad": measure(task, examples, scratch, 1, prefix=forced),
        "examples": {
            "greedy": greedy[0][0],
            **{f"sampled {m}": first[m] for m in modes if m in first},
            "forced_scratchpad": forced + scratch[0][0],
        },
        "seconds": round(time.time() - t0, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    """The `inspect` report as a table: one column per decoding, one row per measure."""
    runs = ("greedy", "sampled", "forced_scratchpad")
    heads = ("greedy (T=0)", "sampled (T=1)", 'forced " <think> "')

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    def row(label: str, cells: Sequence[str]) -> str:
        return f"{label:22s}" + "".join(f"{c:>22s}" for c in cells)

    task = report.get("task", "addition")
    lines = [
        f"base {report['base']}, "
        + (f"task {task}, " if task != "addition" else "")
        + f"template {report['template']}, {report['heldout']} held-out "
        f"problems, prompt {report['prompt_tokens']:.1f} tokens",
        row("", heads),
        row("completions", [str(report[r]["n"]) for r in runs]),
        row("accuracy", [pct(report[r]["accuracy"]) for r in runs]),
        row("format rate", [pct(report[r]["format_rate"]) for r in runs]),
        row("mean length (tokens)", [f"{report[r]['mean_length']:.1f}" for r in runs]),
        "mode: share (accuracy within the mode)",
    ]
    for m in report[runs[0]]["mode_share"]:
        cells = [
            f"{pct(report[r]['mode_share'][m])} ({pct(report[r]['mode_accuracy'][m])})"
            for r in runs
        ]
        lines.append(row(f"  {m}", cells))
    if "search" in report[runs[0]]:
        search = [report[r]["search"] for r in runs]

        def num(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}"

        lines += [
            "written searches (<think> blocks with steps)",
            row("  searches", [str(x["searches"]) for x in search]),
            row("  steps right", [pct(x["step_accuracy"]) for x in search]),
            row("  tries per search", [num(x["tries_per_search"]) for x in search]),
            row("  honest 'yes'", [pct(x["honest_yes"]) for x in search]),
        ]
    for key, value in report["examples"].items():
        lines.append(f"example {key}: {value!r}")
    lines.append(f"({report['seconds']}s)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def _override(config: AnyConfig, assignment: str) -> AnyConfig:
    """replace(config, key=value) from "key=value", the value parsed as the field's type."""
    key, eq, value = assignment.partition("=")
    names = {f.name: f for f in fields(config)}
    if not eq or key not in names:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE, KEY one of {', '.join(names)}")
    kind = type(getattr(config, key))
    try:
        return replace(config, **{key: kind(value)})
    except ValueError as e:
        raise SystemExit(f"--set {assignment!r}: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grpo.demo", description="Build or inspect the demo's base models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="pretrain a base model (the shipped one: no options)")
    b.add_argument("--base", choices=BASES, default="demo",
                   help="demo: the CPU demo's addition base (shipped); demo-countdown: the GPU "
                   "preset's countdown base (default: %(default)s)")  # fmt: skip
    b.add_argument("--out", default=None, help=f"output folder (default: {SHIPPED_DIR} for demo, "
                   f"{COUNTDOWN_CACHE_DIR} for demo-countdown)")  # fmt: skip
    b.add_argument("--seed", type=int, default=None, help="build seed (default: the base's)")
    b.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the base's)")
    b.add_argument("--docs", type=int, default=None, help="corpus documents (default: the base's)")
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other build parameter, e.g. --set hidden_size=256 (repeatable)",
    )
    b.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:N or auto (default: "
        "cpu for demo, whose shipped bytes are a CPU build; auto otherwise)",
    )
    b.add_argument("--log-every", type=int, default=50, help="progress line every N steps")
    i = sub.add_parser("inspect", help="measure a base: modes, accuracies, format rate")
    i.add_argument("--base", default="demo", help="a checkpoint folder, or a base name: "
                   f"{', '.join(BASES)} (built if needed; default: %(default)s)")  # fmt: skip
    i.add_argument(
        "--task",
        choices=("addition", "countdown"),
        default=None,
        help="the task to measure on (default: the one in the base's manifest)",
    )
    i.add_argument("--n", type=int, default=500, help="held-out problems")
    i.add_argument("--samples", type=int, default=4, help="temperature-1 samples per problem")
    i.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="completion budget (default: 128 for addition, 384 for countdown)",
    )
    i.add_argument("--json", default=None, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)
    if args.command == "build":
        config = base_config(args.base)
        for key, value in (("seed", args.seed), ("steps", args.steps), ("num_docs", args.docs)):
            if value is not None:
                config = replace(config, **{key: value})
        for assignment in args.set:
            config = _override(config, assignment)
        default_out = SHIPPED_DIR if args.base == "demo" else COUNTDOWN_CACHE_DIR
        device = args.device or ("cpu" if args.base == "demo" else "auto")
        log(f"build config: {json.dumps(config.to_dict())}")
        build_base(args.out or default_out, config, log, args.log_every, device)
        return 0
    base = ensure_base(args.base, log) if args.base in BASES else Path(args.base)
    task = args.task or base_task(base)
    budget = args.max_new_tokens or (384 if task == "countdown" else 128)
    report = inspect_base(base, args.n, args.samples, budget, task=task)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
