"""The policy's samples that a verifier learns from and is judged on.

    rows = sample(policy, tok, task, examples, n, max_new, seed, log, "train")
    rows, held = sampled_rows(a, key, policy, tok, task, log)   # or read from --samples-file
    rows, kinds = training_rows(rows, task, "hard", seed)       # balanced, hard negatives in

A row is (example, prompt, completion, correct). A --samples-file holds the rows of one
policy and settings as {"settings": ..., "train": [[question index, completion, correct],
...], "heldout": [...]}: the ORM and the PRM of one policy then learn from one set of
samples (sampling is seeded, so this changes no result, only the time).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any


def sample(policy, tok, task, examples, n, max_new, seed, log, what) -> list[tuple]:
    """(example, prompt, completion, correct) for n completions of each example."""
    from grpo.rollout import rollout

    rows, chunk = [], max(1, 256 // n)
    for c0 in range(0, len(examples), chunk):
        exs = examples[c0 : c0 + chunk]
        ro = rollout(policy, tok, task, exs, group_size=n, max_new_tokens=max_new,
                     temperature=1.0, stop_strings=["</answer>"], seed=seed + c0)  # fmt: skip
        for i, (text, s) in enumerate(zip(ro.texts, ro.scores)):
            rows.append((exs[i // n], task.prompt(exs[i // n]), text, s["accuracy"] == 1.0))
        log(f"{what}: sampled {min(c0 + chunk, len(examples))}/{len(examples)} questions")
    return rows


# The settings that decide the samples; a --samples-file of other settings is refused.
SAMPLE_SETTINGS = ("task", "task_path", "template", "questions", "heldout", "samples",
                   "max_new_tokens", "seed")  # fmt: skip


def sample_settings(a: argparse.Namespace, policy: str) -> dict[str, Any]:
    return {"policy": policy} | {k: getattr(a, k) for k in SAMPLE_SETTINGS}


def read_samples(a: argparse.Namespace, policy: str) -> dict[str, list] | None:
    """The --samples-file's contents (see the module docstring); None when the file does
    not exist yet. ValueError (one line) when it is not such a file or holds the samples
    of another policy (`policy`: its path, or a built-in base's name) or settings."""
    path = Path(a.samples_file)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        ok = (isinstance(data, dict) and isinstance(data.get("settings"), dict)
              and all(isinstance(data.get(s), list) for s in ("train", "heldout")))  # fmt: skip
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--samples-file {path}: not readable as JSON ({e})") from None
    if not ok:
        raise ValueError(f"--samples-file {path}: not a samples file written by this command")
    want = sample_settings(a, policy)
    diff = [f"{k} {data['settings'].get(k)!r} here {v!r}" for k, v in want.items()
            if data["settings"].get(k) != v]  # fmt: skip
    if diff:
        raise ValueError(f"--samples-file {path} holds samples of other settings ("
                         f"{'; '.join(diff)}): give another path or delete it")  # fmt: skip
    return data


def write_samples(a, policy: str, train_rows, train_ex, held_rows, held_ex) -> None:
    """Write the --samples-file atomically (model.checkpoint.write_json_atomic)."""
    from model.checkpoint import write_json_atomic

    def encode(rows, examples):
        index = {id(ex): i for i, ex in enumerate(examples)}
        return [[index[id(ex)], text, bool(ok)] for ex, _prompt, text, ok in rows]

    write_json_atomic(a.samples_file, {"settings": sample_settings(a, policy),
                                       "train": encode(train_rows, train_ex),
                                       "heldout": encode(held_rows, held_ex)})  # fmt: skip


def sampled_rows(a, key: str, policy, tok, task, log) -> tuple[list[tuple], list[tuple]]:
    """(train rows, held-out rows) of `policy` (`key`: its path, or a built-in base's name):
    sampled, or read from --samples-file."""
    train_ex = [task.train_example(i) for i in range(a.questions)]
    held_ex = task.heldout(a.heldout)
    data = read_samples(a, key) if a.samples_file else None
    if data is not None:
        def decode(items, examples):
            return [(examples[i], task.prompt(examples[i]), text, ok) for i, text, ok in items]

        log(f"samples read from {a.samples_file}")
        return decode(data["train"], train_ex), decode(data["heldout"], held_ex)
    rows = sample(policy, tok, task, train_ex, a.samples, a.max_new_tokens, a.seed, log, "train")
    held = sample(policy, tok, task, held_ex, a.samples, a.max_new_tokens, a.seed + 1, log,
                  "held-out")  # fmt: skip
    if a.samples_file:
        write_samples(a, key, rows, train_ex, held, held_ex)
    return rows, held


def training_rows(rows: list[tuple], task, balance: str, seed: int) -> tuple[list[tuple], dict]:
    """The sampled rows a verifier is trained on, and the count of each kind among them.

    balance "hard": each question's distinct completions, then balanced_sample (as many
    wrong as right, hard negatives in); "none": every row."""
    from collections import Counter

    from grpo.search.verifiers.data import balanced_sample, completion_kind

    rows = [r for r in rows if r[2]]  # an empty completion has nothing to label
    if balance == "hard":
        seen: set[tuple[str, str]] = set()
        distinct = []
        for r in rows:
            if (r[1], r[2]) not in seen:
                seen.add((r[1], r[2]))
                distinct.append(r)
        kinds = [completion_kind(task, text, ex, ok) for ex, _p, text, ok in distinct]
        chosen = balanced_sample(kinds, random.Random(seed))
        rows, kinds = [distinct[i] for i in chosen], [kinds[i] for i in chosen]
    else:
        kinds = [completion_kind(task, text, ex, ok) for ex, _p, text, ok in rows]
    return rows, dict(sorted(Counter(kinds).items()))
