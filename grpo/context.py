"""Prompt length against the model's context: checked before anything is allocated.

    fits, over = split_by_context(task, tok, examples, max_new_tokens, max_positions)

A question of 2,800 tokens on a 1,024-position model, or a 1.6 MB question,
must be skipped or refused with a count, not discovered by an out-of-memory
error minutes later. `split_by_context` tokenizes each prompt once and keeps
the examples whose prompt plus the completion budget fit in the model's
context; the trainer and `eval.py` report how many were dropped.
"""

from __future__ import annotations

from typing import Any

# A prompt longer than this many characters per position cannot fit even if
# every token covered a long word; such prompts are rejected without
# tokenizing them (a multi-megabyte question costs nothing).
_MAX_CHARS_PER_POSITION = 64


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
