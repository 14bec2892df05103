"""Measure a base: which mode its completions are in, how often each mode is right.

    python -m grpo.demo inspect                            # the "demo" base, 500 problems
    python -m grpo.demo inspect --base demo-countdown      # countdown modes and searches

    from grpo.bases.inspect import format_report, inspect_base
    print(format_report(inspect_base("assets/demo-base", n=100)))

A completion (the text after "Assistant:") is read back into the corpus's
modes: a direct <answer>, an empty <think></think>, a <think> block with work
in it (a scratchpad), a bare answer, or "other" (`classify_completion`,
`classify_countdown`). `inspect_base` samples the base on held-out problems
greedy, at temperature 1, and greedy after forcing " <think> " (for countdown
also with giving up banned, `never_give_up`), and reports
mode shares, per-mode accuracy, format rate and length; for countdown also how
its written searches go (`search_stats`). The measured "demo" base is in
assets/README.md: greedy it answers directly (format rate 0, accuracy ~0),
sampled it writes right work in ~16% of completions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from grpo.bases.addition import TRANSCRIPT_MODES, corpus_task
from grpo.bases.build import DEMO_BASES, base_run_config
from grpo.bases.common import EOS, TEMPLATE
from grpo.bases.countdown import COUNTDOWN_MODES
from grpo.tasks import TINYZERO_COUNTDOWN, get_task
from grpo.tasks.rewards import check_format, countdown_wellformed
from grpo.tasks.search_metrics import behaviour_means
from model.checkpoint import load_pretrained
from model.config import ModelConfig
from model.generate import generate
from model.tokenizer import Tokenizer

FORCED = " <think> "  # forced after the prompt: the scratchpad's own start
MODES = (*TRANSCRIPT_MODES, "other")  # what `classify_completion` can return
COUNTDOWN_ALL_MODES = (*COUNTDOWN_MODES, "other")  # what `classify_countdown` can return

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


def never_give_up(tok: Tokenizer) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A logit filter for `generate`: " so" is banned right after " no." (a failed try).

    In the countdown corpus " so" after a failed try is how a search gives up;
    with it banned the search must go on, so the decoding measures how right
    the base's searches are when they are not cut short.
    """
    no, dot, so = (tok.encode(s) for s in (" no", ".", " so"))
    if not (len(no) == len(dot) == len(so) == 1):
        raise ValueError("never_give_up needs ' no', '.' and ' so' to be single tokens")
    no, dot, so = no[0], dot[0], so[0]

    def ban(logits: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        if generated.shape[1] < 2:
            return logits
        after_no = (generated[:, -2] == no) & (generated[:, -1] == dot)
        if not bool(after_no.any()):
            return logits
        logits = logits.clone()
        logits[after_no, so] = float("-inf")
        return logits

    return ban


def _complete(model, tok, prompts, max_new_tokens, samples, temperature, seed, batch_size,
              logit_filter=None):  # fmt: skip
    """Completions (text, token count) for each prompt x sample, in row order."""
    out: list[tuple[str, int]] = []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        res = generate(
            model, chunk, max_new_tokens=max_new_tokens, num_samples=samples,
            temperature=temperature, eos_ids=tok.eos_ids, stop_strings=["</answer>"],
            tokenizer=tok, pad_id=tok.pad_id, generator=gen, logit_filter=logit_filter,
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
    scores = []
    for j, (text, n) in enumerate(completions):
        example = examples[j // samples]
        full = prefix + text
        score = task.score(full, example)
        scores.append(score)
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
        exs = [examples[j // samples] for j in range(len(completions))]
        out["search"] = search_stats(texts, [ex["target"] for ex in exs])
        # The trainer's behaviour metrics (tries_mean, gave_up_frac, ...), over all completions.
        rows = [task.behaviour(t, ex, bool(score["accuracy"]))
                for t, ex, score in zip(texts, exs, scores)]  # fmt: skip
        out["behaviour"] = behaviour_means(rows)
    return out


def _prepare(path: str | Path, n: int, task: str | None) -> tuple[Any, Tokenizer, list, list, list]:
    """(task, tokenizer, held-out examples, prompt ids, forced prompt ids); no weights loaded."""
    tok = Tokenizer.from_dir(path)
    built_for = base_run_config(path)  # the task, and countdown's variant, of the build
    task_name = task or built_for.pop("task")
    if task_name == "countdown":
        # The base's own variant; a base of another task is measured on the default one.
        variant = {k: built_for[k] for k in TINYZERO_COUNTDOWN if k in built_for}
        the_task = get_task("countdown", template=TEMPLATE, **variant)
    else:
        the_task = corpus_task()
    examples = the_task.heldout(n)
    prompts = [tok.encode(the_task.prompt(ex)) for ex in examples]
    forced_prompts = [tok.encode(the_task.prompt(ex) + FORCED) for ex in examples]
    return the_task, tok, examples, prompts, forced_prompts


def _problem(path: str | Path, task, tok: Tokenizer, prompts: Sequence[Sequence[int]],
             max_new_tokens: int) -> str | None:  # fmt: skip
    """Why these decodings cannot run on this base (in the command's words), or None."""
    if task.name == "countdown":
        try:
            never_give_up(tok)
        except ValueError:
            built = base_run_config(path)["task"]
            return (
                f"the tokenizer of the base {path} (built for {built}) does not fit the "
                f"countdown task (' no', '.' and ' so' are not single tokens): measure a "
                f"countdown base, --base {DEMO_BASES['countdown']} or --base gpu-countdown, "
                f"or leave out --task"
            )
    context = ModelConfig.from_hf_config(path).max_position_embeddings
    longest = max((len(ids) for ids in prompts), default=0)
    if longest + max_new_tokens > context:
        room = context - longest
        fit = f"at most {room} fit" if room >= 1 else "none fit"
        return (
            f"--max-new-tokens {max_new_tokens}: the longest prompt ({longest} tokens) plus "
            f"{max_new_tokens} new tokens exceeds the context of the base {path}, {context} "
            f"positions ({fit})"
        )
    return None


def inspect_problem(
    path: str | Path, n: int = 500, max_new_tokens: int = 128, task: str | None = None
) -> str | None:
    """Why `inspect_base` with these arguments would fail, or None; loads no weights.

    A completion budget the base's context cannot hold, or a task whose
    decodings the base's tokenizer cannot express (countdown's `never_give_up`
    on an addition base). Cheap: the tokenizer and the held-out prompts only.
    """
    measured, tok, _, prompts, forced_prompts = _prepare(path, n, task)
    return _problem(path, measured, tok, [*prompts, *forced_prompts], max_new_tokens)


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
    forced_search (countdown only): the same, with " so" banned after a failed
    try (`never_give_up`): how right the search is when it is never cut short.
    Lengths are generated tokens, the EOS or the "</answer>" that ended a
    completion included. ValueError (`inspect_problem`'s reason) before the
    weights are loaded if the decodings cannot run on this base.
    """
    task, tok, examples, prompts, forced_prompts = _prepare(path, n, task)
    problem = _problem(path, task, tok, [*prompts, *forced_prompts], max_new_tokens)
    if problem:
        raise ValueError(problem)
    model = load_pretrained(path, dtype=torch.float32)
    classify, modes = _modes_of(task)
    forced = FORCED
    t0 = time.time()
    greedy = _complete(model, tok, prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    sampled = _complete(model, tok, prompts, max_new_tokens, samples, 1.0, seed, batch_size)
    scratch = _complete(model, tok, forced_prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    persistent = None
    if task.name == "countdown":
        persistent = _complete(model, tok, forced_prompts, max_new_tokens, 1, 0.0, seed,
                               batch_size, never_give_up(tok))  # fmt: skip
    first: dict[str, str] = {}  # the first sampled completion in each mode
    for text, _ in sampled:
        first.setdefault(classify(text), text)
    report = {
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
    }
    if persistent is not None:
        report["forced_search"] = measure(task, examples, persistent, 1, prefix=forced)
        report["examples"]["forced_search"] = forced + persistent[0][0]
    return report | {"seconds": round(time.time() - t0, 1)}


def format_report(report: dict[str, Any]) -> str:
    """The `inspect` report as a table: one column per decoding, one row per measure."""
    runs = ("greedy", "sampled", "forced_scratchpad", "forced_search")
    heads = ("greedy (T=0)", "sampled (T=1)", 'forced " <think> "', 'and never " so"')
    runs, heads = zip(*[(r, h) for r, h in zip(runs, heads) if r in report])

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
        behaviour = [report[r].get("behaviour") or {} for r in runs]
        if all(behaviour):
            lines.append("behaviour (the trainer's metrics, over all completions)")
            for key in behaviour[0]:
                lines.append(row(f"  {key}", [num(b[key]) for b in behaviour]))
    for key, value in report["examples"].items():
        lines.append(f"example {key}: {value!r}")
    lines.append(f"({report['seconds']}s)")
    return "\n".join(lines)
