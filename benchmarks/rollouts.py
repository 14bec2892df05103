"""What the rollout-shaped benchmarks share: their flags, their model and prompts, and timing.

    p = rollout_parser(__doc__)                    # --base --task --prompts ... --repeats
    model, tok, prompts, kw = rollout_setup(p.parse_args(argv))
    best, outs = alternating(lambda flag: generate(model, prompts, fast=flag, **kw), repeats)

Used by compaction.py, decode_step.py, compile_decode.py, sampling_noise.py,
cpu_bf16.py and omp_wait.py; not a benchmark itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grpo.bases.common import TEMPLATE  # noqa: E402
from grpo.tasks import get_task  # noqa: E402
from model import Tokenizer, load_pretrained  # noqa: E402


def add_rollout_args(p: argparse.ArgumentParser, base: str, task: str, max_new: int) -> None:
    """The flags of a rollout-shaped benchmark."""
    p.add_argument("--base", default=base, help="checkpoint folder")
    p.add_argument("--task", default=task, help="addition or countdown")
    p.add_argument("--prompts", type=int, default=16, help="B prompts")
    p.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=max_new)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)


def rollout_parser(doc: str | None, base: str = "assets/demo-base", task: str = "addition",
                   max_new: int = 128) -> argparse.ArgumentParser:  # fmt: skip
    """A parser described by the first paragraph of `doc`, with the rollout flags."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    add_rollout_args(p, base, task, max_new)
    return p


def rollout_setup(a: argparse.Namespace):
    """(model, tokenizer, prompts, generate kwargs): the first B held-out prompts, G each."""
    model = load_pretrained(a.base, dtype=torch.float32)
    tok = Tokenizer.from_dir(a.base)
    task = get_task(a.task, template=TEMPLATE)
    prompts = [tok.encode(task.prompt(ex)) for ex in task.heldout(a.prompts)]
    kw = dict(max_new_tokens=a.max_new_tokens, num_samples=a.group_size,
              temperature=a.temperature, eos_ids=tok.eos_ids, stop_strings=["</answer>"],
              tokenizer=tok, pad_id=tok.pad_id, seed=a.seed)  # fmt: skip
    return model, tok, prompts, kw


def best_of(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Run each fn `repeats` times, in rotating order (A B, B A, ... for two).
    Returns ({name: best seconds}, {name: last result})."""
    names, best, outs = list(fns), {k: float("inf") for k in fns}, {}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            outs[name] = fns[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, outs


def alternating(run, repeats: int) -> tuple[dict, dict]:
    """best_of for run(True) and run(False), in alternating order."""
    return best_of({True: lambda: run(True), False: lambda: run(False)}, repeats)
