"""The "demo" base's corpus: 3-4 digit addition, transcripts and worked examples.

    from grpo.bases.addition import DEFAULT_CONFIG, build_corpus
    docs = build_corpus(1000, seed=0)   # a pure function of (num_docs, seed, mix)

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
never a reassembly of digits written in reverse (in an earlier measurement that
design gave wrong final answers in 45 of 45 long samples):

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
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from grpo.bases.common import EOS, TEMPLATE, check_build_numbers, completion_text, model_config
from grpo.tasks import get_task
from model.config import ModelConfig

# Bump when the corpus generator or the training loop changes what a build produces.
BUILD_VERSION = 1

TRANSCRIPT_MODES = ("answer", "empty_think", "scratchpad", "number")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the weights of a build (all of it goes into the manifest)."""

    task: ClassVar[str] = "addition"  # not a field: the shipped manifest has no "task" key
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
        check_build_numbers(self, TRANSCRIPT_MODES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return model_config(self, vocab_size, eos_id)


DEFAULT_CONFIG = BuildConfig()


@dataclass(frozen=True)
class StudentBuildConfig(BuildConfig):
    """The "demo-student" base: the demo's corpus, tokenizer and recipe with a quarter of
    its parameters (0.43M: hidden 96, 3 heads), the student of grpo/experiments/distill.py."""

    hidden_size: int = 96
    intermediate_size: int = 256
    num_heads: int = 3
    num_kv_heads: int = 1


STUDENT_CONFIG = StudentBuildConfig()


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


def transcript_completion(mode: str, a: int, b: int) -> str:
    """The text after "Assistant:" for one of TRANSCRIPT_MODES (EOS not included)."""
    work = scratchpad(a, b) if mode == "scratchpad" else ""
    return completion_text(mode, str(a + b), work, "number", TRANSCRIPT_MODES)


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
