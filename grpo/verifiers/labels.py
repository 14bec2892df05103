"""Labels for verifier training, from the policy's own samples (BEYOND_ZERO.md section 2).

    steps = split_steps(completion, delimiters=(", ",))     # the task's step boundaries
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
