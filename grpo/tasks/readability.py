"""Readability of a reasoning trace: DeepSeek-R1's language-consistency reward, in miniature.

    readable(task, completion, example)  -> bool     # addition only
    add_readability_reward(rollout, task, weight)    # R1's consistency reward, in place

R1-Zero's chains of thought were hard to read (languages mixed, no
structure), so R1 added a reward for the share of target-language words in
the chain of thought. Our toy equivalent for addition: the think block is
exactly the careful work the base was pretrained on, for THIS question (the
operands copied and aligned, then every column, grpo.bases.addition.scratchpad),
and the completion is nothing but the think block and an answer block. A
right answer can come with an unreadable trace: the R1-Zero demo model, sampled
at temperature 1, sometimes copies an operand wrongly ("426 + 383" for
436 + 383) and still adds the columns right.
"""

from __future__ import annotations

import re

_SHAPE = re.compile(r" ?<think> (?P<work>.*?) </think> <answer>[^<]*</answer>")


def has_readability(task) -> bool:
    return getattr(task, "name", None) == "addition"


def readable(task, completion: str, example: dict) -> bool:
    """Whether the completion is the question's canonical scratchpad and an answer."""
    if not has_readability(task):
        raise ValueError(f"no readability measure for task {getattr(task, 'name', task)!r} "
                         "(addition only)")  # fmt: skip
    from grpo.bases.addition import scratchpad

    m = _SHAPE.fullmatch(completion.rstrip())
    return m is not None and m["work"] == scratchpad(example["a"], example["b"])


def add_readability_reward(ro, task, weight: float) -> None:
    """Add weight x readable to each completion's reward (in place), and record it in its
    scores as "readable"."""
    for i, text in enumerate(ro.texts):
        r = float(readable(task, text, ro.examples[i // ro.group_size]))
        ro.scores[i]["readable"] = r
        ro.scores[i]["reward"] += weight * r
        ro.rewards[i] += weight * r

