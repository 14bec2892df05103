"""What a verifier learns from, and how it is judged: balanced samples with hard negatives,
the ROC area, and the shortcut check.

    kind = completion_kind(task, text, example, correct)  # "right", "cut_off", "wrong_<format>"
    chosen = balanced_sample(kinds, rng)                  # as many wrong as right, hard ones in
    auc = roc_auc(scores, labels)                         # P(a right one outscores a wrong one)
    check = shortcut_check(scores, labels, formats)       # mean score, right vs wrong, per format

A verifier trained on a policy's own samples learns whatever separates its right samples
from its wrong ones. If every right sample has a scratchpad and most wrong ones do not, "a
scratchpad means right" is enough to fit the labels, and a model that always writes one (an
R1-Zero model) fools it. So the wrong samples it learns from must include the hard ones:
completions of the same format as the right ones whose answer is wrong (on countdown: a
well-formed search that ends in a false "yes", or that gives up), and completions cut off by
the budget. And it is judged on held-out samples of the model it will search, by its ROC
area and by its mean score on right and on wrong completions of the same format.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

_COLUMN = re.compile(r"\d+\+\d+\+\d+=\d+:\d+")  # one column of the addition scratchpad
ANSWER_END = "</answer>"


def completion_format(task_name: str, text: str) -> str:
    """The completion's format, whatever its answer: "cut_off" (no closed answer: the budget
    ran out), else by task. Countdown: "search" (it writes at least one try, with a verdict)
    or "direct". Addition: "scratchpad" (at least one column) or "direct". Other tasks:
    "answered"."""
    if ANSWER_END not in text:
        return "cut_off"
    if task_name == "countdown":
        from grpo.search.verifiers.labels import TRY_DELIMITERS

        return "search" if any(d in text for d in TRY_DELIMITERS) else "direct"
    if task_name == "addition":
        return "scratchpad" if _COLUMN.search(text) else "direct"
    return "answered"


def completion_kind(task, text: str, example: dict, correct: bool) -> str:
    """"right"; or, for a wrong one, "cut_off", "false_yes" (countdown: a search with a "yes"
    that does not reach the target), or "wrong_<format>" (a wrong answer in that format)."""
    if correct:
        return "right"
    fmt = completion_format(task.name, text)
    if fmt == "search" and task.behaviour(text, example, False).get("false_yes"):
        return "false_yes"
    return "cut_off" if fmt == "cut_off" else f"wrong_{fmt}"


# The wrong kinds that look right: they share the right ones' format (or ran out of budget).
HARD_KINDS = ("false_yes", "wrong_search", "wrong_scratchpad", "cut_off")


def balanced_sample(kinds: Sequence[str], rng: random.Random,
                    hard_share: float = 0.5) -> list[int]:  # fmt: skip
    """Indices of an equal number of right and wrong completions, n = min(#right, #wrong).

    The n wrong ones take min(#hard, ceil(hard_share * n)) hard negatives (HARD_KINDS),
    the rest from the other wrong ones, and hard ones again if those run short; the n
    right ones are drawn uniformly. Returned sorted (the input's order), so a shuffle
    at training time is the only reordering.
    """
    if not 0.0 <= hard_share <= 1.0:
        raise ValueError(f"hard_share must be in [0, 1], got {hard_share}")
    right = [i for i, k in enumerate(kinds) if k == "right"]
    hard = [i for i, k in enumerate(kinds) if k in HARD_KINDS]
    easy = [i for i, k in enumerate(kinds) if k != "right" and k not in HARD_KINDS]
    n = min(len(right), len(hard) + len(easy))
    rng.shuffle(hard)
    rng.shuffle(easy)
    n_hard = min(len(hard), math.ceil(hard_share * n))
    n_easy = min(len(easy), n - n_hard)
    n_hard = n - n_easy  # the easy ones ran short: more hard ones
    chosen = rng.sample(right, n) + hard[:n_hard] + easy[:n_easy]
    return sorted(chosen)


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The area under the ROC curve: the probability that a random right completion scores
    above a random wrong one, ties counting one half (the Mann-Whitney U over P * N).
    NaN when either class is empty."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    pos = sorted(s for s, y in zip(scores, labels) if y)
    neg = sorted(s for s, y in zip(scores, labels) if not y)
    if not pos or not neg:
        return float("nan")
    # For each right score, the wrong ones below it (and half of those equal to it).
    from bisect import bisect_left, bisect_right

    u = sum(bisect_left(neg, s) + 0.5 * (bisect_right(neg, s) - bisect_left(neg, s))
            for s in pos)  # fmt: skip
    return u / (len(pos) * len(neg))


def shortcut_check(scores: Sequence[float], labels: Sequence[bool],
                   formats: Sequence[str]) -> dict[str, dict]:  # fmt: skip
    """Per format: how many right and wrong completions, their mean scores, and the ROC
    area within the format. A verifier that judges style, not correctness, scores the
    right and the wrong of one format alike (within-format area near 0.5)."""
    out: dict[str, dict] = {}
    for fmt in sorted(set(formats)):
        s = [x for x, f in zip(scores, formats) if f == fmt]
        y = [bool(v) for v, f in zip(labels, formats) if f == fmt]
        right = [x for x, v in zip(s, y) if v]
        wrong = [x for x, v in zip(s, y) if not v]
        out[fmt] = {"right": len(right), "wrong": len(wrong),
                    "right_mean": sum(right) / len(right) if right else None,
                    "wrong_mean": sum(wrong) / len(wrong) if wrong else None,
                    "roc_auc": roc_auc(s, y) if right and wrong else None}  # fmt: skip
    return out
