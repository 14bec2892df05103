"""Labels for verifier training, from the policy's own samples.

    steps = split_steps(completion, delimiters=(", ",))     # the task's step boundaries
    steps = split_tries(completion)                         # countdown: a step is a try
    orm_label = float(task.score(completion, ex)["accuracy"] == 1.0)
    hard, soft = mc_step_labels(steps, continue_from, is_correct, n=8)

Math-Shepherd's labels without humans: from the prefix that ends at step k,
sample n continuations with the policy; the hard label is 1 if any of them
reaches the right answer, the soft label is the fraction that do. The last
step completes the solution, so its label is the solution's own correctness.
Under-sampling gives false "bad step" labels (a good prefix whose n rollouts
all fail); where steps are checkable by rule, compare the labels to the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence


def split_steps(completion: str, delimiters: Sequence[str] = (", ",)) -> list[str]:
    """The completion cut after every delimiter; the pieces concatenate back to it.

    "a, b, c" -> ["a, ", "b, ", "c"]. A trailing delimiter ends the last step.
    """
    if not delimiters or any(not d for d in delimiters):
        raise ValueError("split_steps needs at least one non-empty delimiter")
    steps, start, i = [], 0, 0
    while i < len(completion):
        hit = next((d for d in delimiters if completion.startswith(d, i)), None)
        if hit is None:
            i += 1
            continue
        i += len(hit)
        steps.append(completion[start:i])
        start = i
    if start < len(completion):
        steps.append(completion[start:])
    return steps


def mc_step_labels(
    steps: Sequence[str], continue_from: Callable[[str, int], list[str]],
    is_correct: Callable[[str], bool], n: int,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """(hard, soft) labels of each step prefix.

    continue_from(prefix_text, n) returns n continuations sampled from the
    policy after prefix_text (the joined steps so far); a continuation is
    graded on prefix_text + continuation. The last step's labels are
    is_correct(whole completion) for both.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    hard, soft = [], []
    for k in range(len(steps)):
        prefix = "".join(steps[: k + 1])
        if k == len(steps) - 1:
            ok = [is_correct(prefix)]
        else:
            ok = [is_correct(prefix + c) for c in continue_from(prefix, n)]
        hard.append(float(any(ok)))
        soft.append(sum(ok) / len(ok))
    return hard, soft


# ---------------------------------------------------------------------- exact step checks
_COLUMN = re.compile(r"\d+\+\d+\+\d+=\d+:\d+")


def addition_steps_correct(steps: Sequence[str], example: dict) -> list[bool]:
    """Exact correctness of each step prefix of an addition completion, by rule.

    The scratchpad grammar of the demo base (grpo/bases/addition.py): the
    operands aligned ("0597 + 0912: "), then one column per step,
    "x+y+c=s:partial", from the right. Step k (split at ", ") is right when it
    writes column k exactly (step 0 also the aligned operands). The last step
    is right when the columns it writes, if any, continue the sum in order and
    the answer is right; an answer without work (" <answer>1509</answer>") is
    judged by the answer alone. Any other step (no column, two columns, a wrong
    digit, carry or partial) is wrong. A prefix is right when all its steps
    are, so a wrong step makes every later prefix wrong, even if the answer
    comes out right: the exact version of "is this path still sound?".
    """
    from grpo.bases.addition import column_steps
    from grpo.tasks.rewards import extract_answer, normalize_number

    a, b = example["a"], example["b"]
    canon = column_steps(a, b)
    width = max(len(str(a)), len(str(b)))
    header = f"{a:0{width}d} + {b:0{width}d}:"
    out, ok, done = [], True, 0
    for k, step in enumerate(steps):
        cols = _COLUMN.findall(step)
        if k < len(steps) - 1:
            ok = ok and cols == canon[done : done + 1] and (k > 0 or header in step)
        else:
            answer = extract_answer("".join(steps))
            right = answer is not None and normalize_number(answer) == str(a + b)
            if cols:  # the last columns, if any, continue the sum in order
                ok = ok and cols == canon[done : done + len(cols)] and (k > 0 or header in step)
            ok = ok and right
        done += len(cols)
        out.append(ok)
    return out


# ---------------------------------------------------------------------- countdown: steps are tries
TRY_DELIMITERS = (" yes.", " no.")  # a countdown try ends with its verdict


def split_tries(completion: str) -> list[str]:
    """A countdown completion cut into its tries; the pieces concatenate back to it.

    Each try ends with its verdict (" yes." or " no."); the first carries the header
    ("<think> 20 7 8 to 21:"), and what follows the last verdict (" so ... </answer>",
    or a try cut off by the budget) is the last piece. A direct answer is one piece.
    """
    return split_steps(completion, TRY_DELIMITERS)


def try_correct(text: str, numbers: Sequence[int], target: int) -> bool:
    """Whether one try (its text up to and including its verdict) is exactly right: it
    writes at least one step, every step's arithmetic is right (division only when exact),
    and its verdict is true: " yes." when its claimed path reaches the target using each
    number once, " no." when none of the finishes it wrote does.

    The CPU demo's try is a first step, a colon, then the ways to finish it
    ("20+7=27: 27+8=35 vs 21, 27-8=19 vs 21 no."): "no" is true when no finish, after
    the steps before the colon, reaches the target. Without a colon (the GPU preset's
    path of steps) the path is all its steps. Regexes and integer arithmetic only.
    """
    from grpo.tasks.search_metrics import _STEP, _value, claimed_path, reaches

    verdict = text.rstrip()
    if not verdict.endswith(TRY_DELIMITERS):
        return False
    found = list(_STEP.finditer(text))
    if not found or any(_value(int(a), op, int(b)) != int(c) for a, op, b, c in
                        (m.groups() for m in found)):  # fmt: skip
        return False
    if verdict.endswith(" yes."):
        return reaches(claimed_path(text), numbers, target)
    colon = text.rfind(":", found[0].end())
    if colon < 0:
        return not reaches([m.groups() for m in found], numbers, target)
    head = [m.groups() for m in found if m.end() <= colon]
    finishes = [m.groups() for m in found if m.start() > colon]
    return not any(reaches([*head, f], numbers, target) for f in finishes)


def countdown_steps_correct(steps: Sequence[str], example: dict) -> list[bool]:
    """Exact correctness of each step prefix of a countdown completion (steps: split_tries).

    A try (a step ending in a verdict) is right when try_correct says so. The last step
    is right when the final answer is (the task's rule), and, if it is a try, also the
    try; so a try cut off by the budget, or a search that ends without an answer, is
    wrong. A prefix is right when all its steps are: a try with a wrong sum or a false
    verdict makes every later prefix wrong, even if the answer comes out right.
    """
    from grpo.tasks.rewards import countdown_correct, extract_answer

    numbers, target = example["numbers"], example["target"]
    out, ok = [], True
    for k, step in enumerate(steps):
        is_try = step.rstrip().endswith(TRY_DELIMITERS)
        if is_try:
            ok = ok and try_correct(step, numbers, target)
        if k == len(steps) - 1:
            answer = extract_answer("".join(steps))
            ok = ok and answer is not None and countdown_correct(answer, numbers, target)
        out.append(ok)
    return out


EXACT_STEP_CHECKS = {"addition": addition_steps_correct,  # tasks whose steps a rule can check
                     "countdown": countdown_steps_correct}  # fmt: skip


def agreement(predicted: Sequence[bool], exact: Sequence[bool]) -> dict[str, float]:
    """How a set of step labels (MC labels, or a PRM's P > 0.5) matches exact correctness.

    agreement: fraction equal; false_good: labelled good where the prefix is
    wrong (a lucky continuation, or a PRM fooled); false_bad: labelled bad
    where the prefix is right (MC under-sampling, or a PRM too strict), each as
    a fraction of the prefixes that are wrong, resp. right.
    """
    if len(predicted) != len(exact):
        raise ValueError(f"{len(predicted)} labels but {len(exact)} exact values")
    n = len(exact)
    right = sum(1 for e in exact if e)
    same = sum(1 for p, e in zip(predicted, exact) if bool(p) == bool(e))
    false_good = sum(1 for p, e in zip(predicted, exact) if p and not e)
    false_bad = sum(1 for p, e in zip(predicted, exact) if e and not p)
    return {"steps": n, "exact_right": right, "agreement": same / n if n else float("nan"),
            "false_good": false_good / (n - right) if n > right else 0.0,
            "false_bad": false_bad / right if right else 0.0}  # fmt: skip
