"""How a countdown completion searches: its tries, the failed ones, whether its checks are honest.

    from grpo.tasks.search_metrics import search_behaviour, behaviour_means
    search_behaviour(completion, numbers=[67, 65, 79], target=780, correct=True)
    # {"tries": 2.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 1.0}

A written search is a run of tries inside <think>, each ending with a
verdict: " yes." (it reached the target) or " no." (it did not). Two shapes
of try are read. The CPU demo's (grpo/bases/countdown_demo.py): a first step,
a colon, then the ways to finish it, the last of which is the claimed hit:

    6 2 12 to 96: 6+2=8: 12+8=20, 12-8=4, 12*8=96 yes. so 12*8 = 12*(6+2)

and the GPU preset's (grpo/bases/countdown.py), a path of steps to one number:

    67 65 79 to 780: 67+65=132 [79 132], 132+79=211 no. 79-67=12 [65 12],
    65*12=780 yes. so 65*12 = 65*(79-67)

A "yes" is checked on its path: the steps before the try's last colon, then
its last step (with no colon after a step: all its steps).

Per completion (each 0 or 1, except `tries`):
- tries: tries with a verdict; 0 for a direct answer;
- gave_up: its last try failed ("no.") and it closed its thinking or answered
  anyway (a completion cut off by the token budget mid-search did not give up);
- false_yes: some try says "yes." but does not reach the target: a step's
  arithmetic is wrong, it uses a number it does not have, it leaves numbers
  unused, or its last value is not the target;
- recovered: at least one failed try, and the final answer is correct.

The trainer logs their means as tries_mean, gave_up_frac, false_yes_frac and
recovered_frac (eval_ prefixed on held-out rows). Model output is untrusted:
only regexes and integer arithmetic on bounded literals, never eval.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

_STEP = re.compile(r"(\d{1,6})\s*([-+*/])\s*(\d{1,6})\s*=\s*(\d{1,7})")
_Step = tuple[str, str, str, str]
_VERDICT = re.compile(r"\b(yes|no)\.")
_MAX_CHARS = 20_000  # a completion longer than this is not searched (its metrics are 0)

# metric name -> per-completion key
METRICS = {"tries_mean": "tries", "gave_up_frac": "gave_up", "false_yes_frac": "false_yes",
           "recovered_frac": "recovered"}  # fmt: skip


def _value(a: int, op: str, b: int) -> int | None:
    """a op b when it is an integer (division only when exact), else None."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a // b if b and a % b == 0 else None


def reaches(
    steps: Sequence[tuple[str, str, str, str]], numbers: Sequence[int], target: int
) -> bool:
    """Whether these written steps, applied to `numbers`, use each once and end at `target`."""
    pool = Counter(numbers)
    for a, op, b, c in steps:
        a, b, c = int(a), int(b), int(c)
        need = Counter([a, b])
        if any(pool[x] < k for x, k in need.items()) or _value(a, op, b) != c:
            return False
        pool -= need
        pool[c] += 1
    return sum(pool.values()) == 1 and pool[target] == 1


def claimed_path(text: str) -> list[_Step]:
    """The steps a try's verdict is about (see the module docstring): a path to one number."""
    found = list(_STEP.finditer(text))
    if not found:
        return []
    colon = text.rfind(":", found[0].end())
    if colon < 0:
        return [m.groups() for m in found]
    head = [m.groups() for m in found if m.end() <= colon]
    return [*head, found[-1].groups()]


def search_behaviour(
    completion: str, numbers: Sequence[int], target: int, correct: bool
) -> dict[str, float]:
    """The four per-completion quantities above (`correct`: the task's accuracy verdict)."""
    out = {"tries": 0.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 0.0}
    if len(completion) > _MAX_CHARS:
        return out
    start = completion.find("<think>")
    end = completion.find("</think>", start + 1) if start >= 0 else -1
    if start < 0:
        return out
    inner = completion[start + len("<think>") : end if end >= 0 else len(completion)]
    verdicts, last = [], 0
    for m in _VERDICT.finditer(inner):
        steps = claimed_path(inner[last : m.start()])
        last = m.end()
        if steps or verdicts:  # a "yes." before any step is prose, not a verdict
            verdicts.append((m.group(1) == "yes", steps))
    if not verdicts:
        return out
    closed = end >= 0 or "<answer>" in completion
    failed = sum(not yes for yes, _ in verdicts)
    out["tries"] = float(len(verdicts))
    out["gave_up"] = float(closed and not verdicts[-1][0])
    out["false_yes"] = float(any(yes and not reaches(s, numbers, target) for yes, s in verdicts))
    out["recovered"] = float(failed > 0 and correct)
    return out


def behaviour_means(rows: Sequence[dict[str, float]], prefix: str = "") -> dict[str, float]:
    """The logged means (tries_mean, ...) of per-completion behaviours; {} if there are none."""
    rows = [r for r in rows if r]
    if not rows:
        return {}
    return {prefix + name: sum(r[key] for r in rows) / len(rows) for name, key in METRICS.items()}
