"""Prompt length against the model's context: checked before anything is allocated.

    fits, over = split_by_context(task, tok, examples, max_new_tokens, max_positions)

A question of 2,800 tokens on a 1,024-position model, or a 1.6 MB question,
must be skipped or refused with a count, not discovered by an out-of-memory
error minutes later. `split_by_context` tokenizes each prompt once and keeps
the examples whose prompt plus the completion budget fit in the model's
context; the trainer and `eval.py` report how many were dropped.

The trainer's three uses, each a plain function:

    heldout = heldout_that_fits(task, tok, eval_n, max_new_tokens, context, log)
    check_train_set(task, tok, prompts_per_step, max_new_tokens, context, log)
    examples, next_pos, skipped = draw_examples(task, tok, data_pos, prompts_per_step,
                                                max_new_tokens, context, step)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grpo.tasks import JsonlTask

# Where RL's train stream starts in a generated task's stream. The demo bases
# are pretrained on train_example(0), train_example(1), ... (far fewer than
# this), so RL never trains on a problem index the base's corpus used. A JSONL
# task's stream is its file, read from the start.
RL_STREAM_OFFSET = 1_000_000_000

# A prompt longer than this many characters per position cannot fit even if
# every token covered a long word; such prompts are rejected without
# tokenizing them (a multi-megabyte question costs nothing).
_MAX_CHARS_PER_POSITION = 64


def rl_example(task, pos: int) -> dict[str, Any]:
    """The question at data position `pos` of RL's train stream (see RL_STREAM_OFFSET)."""
    offset = 0 if isinstance(task, JsonlTask) else RL_STREAM_OFFSET
    return task.train_example(offset + pos)


def prompt_budget(max_new_tokens: int, max_positions: int) -> int:
    """How many prompt tokens fit beside `max_new_tokens` in `max_positions`."""
    return max_positions - max_new_tokens


def split_by_context(
    task, tok, examples: list[dict[str, Any]], max_new_tokens: int, max_positions: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """(examples that fit, indices of those that do not) for prompt + max_new_tokens."""
    budget = prompt_budget(max_new_tokens, max_positions)
    if budget < 1:
        raise ValueError(
            f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's "
            f"context of {max_positions} positions"
        )
    prompts = [task.prompt(ex) for ex in examples]
    short = [i for i, p in enumerate(prompts) if len(p) <= budget * _MAX_CHARS_PER_POSITION]
    lengths = dict(zip(short, (len(ids) for ids in tok.encode_batch([prompts[i] for i in short]))))
    keep, over = [], []
    for i, ex in enumerate(examples):
        if lengths.get(i, budget + 1) <= budget:
            keep.append(ex)
        else:
            over.append(i)
    return keep, over


def _too_long(max_new_tokens: int, max_positions: int) -> str:
    return f"prompt + --max-new-tokens {max_new_tokens} exceeds the model's context " \
           f"of {max_positions} positions"  # fmt: skip


def heldout_that_fits(
    task, tok, eval_n: int, max_new_tokens: int, max_positions: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The first `eval_n` held-out questions, less those too long; says what was dropped."""
    asked = task.heldout(eval_n)
    # Raises if max_new_tokens alone leaves no room for a prompt.
    kept, over = split_by_context(task, tok, asked, max_new_tokens, max_positions)
    budget = _too_long(max_new_tokens, max_positions)
    if not kept:
        raise ValueError(f"none of the {len(asked)} held-out questions fits: {budget}")
    if over:
        log(f"held-out: dropped {len(over)} of {len(asked)} questions ({budget})")
    if len(asked) < eval_n:
        log(f"held-out: {len(asked)} questions (--eval-n {eval_n} asked; the "
            f"task's held-out split has only {len(asked)})")  # fmt: skip
    return kept


def check_train_set(
    task, tok, prompts_per_step: int, max_new_tokens: int, max_positions: int,
    log: Callable[[str], None],
) -> None:  # fmt: skip
    """Refuse a train set none of whose questions fits; count those that will be skipped."""
    if isinstance(task, JsonlTask):  # a finite set: check all of it
        n = task.train_size
    else:  # an endless stream: the first step's questions stand for it
        n = prompts_per_step
    kept, over = split_by_context(
        task, tok, [rl_example(task, i) for i in range(n)], max_new_tokens, max_positions
    )
    what = _too_long(max_new_tokens, max_positions)
    if not kept:
        raise ValueError(f"none of the {n} training questions checked fits: {what}")
    if over and isinstance(task, JsonlTask):
        log(f"train: {len(over)} of {n} questions will be skipped ({what})")


def draw_examples(
    task, tok, start: int, want: int, max_new_tokens: int, max_positions: int, step: int
) -> tuple[list[dict[str, Any]], int, int]:
    """(step `step`'s questions, the data position after them, questions skipped as too long).

    `start` is the data position before the step. It counts questions consumed,
    skipped ones included, so a resumed run draws exactly what a straight run would.
    Position p is `rl_example(task, p)`: past the problems the demo bases saw.
    """
    pos, out, skipped = start, [], 0
    while len(out) < want:
        cand = [rl_example(task, pos + i) for i in range(want - len(out))]
        fit, over = split_by_context(task, tok, cand, max_new_tokens, max_positions)
        out += fit
        skipped += len(over)
        pos += len(cand)
        if skipped > 1000 + 100 * want and len(out) < want:
            raise ValueError(
                f"step {step}: {skipped} training questions skipped and too few fit: "
                f"{_too_long(max_new_tokens, max_positions)}"
            )
    return out, pos, skipped
