"""The sampler with and without dropping finished rows (`generate(..., compact=...)`).

    python benchmarks/compaction.py                                  # countdown base, 16 x 8
    python benchmarks/compaction.py --base assets/demo-base --task addition --max-new-tokens 128

Samples G completions for each of the first B held-out prompts of the base's
task, as a GRPO rollout does, once with compaction and once without, in
alternating order, `--repeats` times each. The outputs are asserted identical
(the noise is drawn for every row either way) before any time is reported.
Prints the best time of each and the ratio. Timings on a shared machine are
only meaningful as this ratio, measured in one run on idle cores.
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
from model import Tokenizer, generate, load_pretrained  # noqa: E402


def add_rollout_args(p: argparse.ArgumentParser, base: str, task: str, max_new: int) -> None:
    """The flags of a rollout-shaped benchmark (also used by compile_decode.py)."""
    p.add_argument("--base", default=base, help="checkpoint folder")
    p.add_argument("--task", default=task, help="addition or countdown")
    p.add_argument("--prompts", type=int, default=16, help="B prompts")
    p.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=max_new)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)


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


def alternating(run, repeats: int) -> tuple[dict, dict]:
    """Time run(True) and run(False) `repeats` times each, in alternating order (also
    used by decode_step.py). Returns ({flag: best seconds}, {flag: last result})."""
    best, outs = {True: float("inf"), False: float("inf")}, {}
    for r in range(repeats):
        for flag in (True, False) if r % 2 == 0 else (False, True):
            t0 = time.perf_counter()
            outs[flag] = run(flag)
            best[flag] = min(best[flag], time.perf_counter() - t0)
    return best, outs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rollout_args(p, "assets/demo-countdown-base", "countdown", 480)
    a = p.parse_args(argv)
    model, tok, prompts, kw = rollout_setup(a)
    best, outs = alternating(lambda c: generate(model, prompts, compact=c, **kw), a.repeats)
    on, off = outs[True], outs[False]
    assert torch.equal(on.tokens, off.tokens), "compaction changed the sampled tokens"
    lengths = on.lengths.float()
    print(f"{a.base}, {a.prompts} x {a.group_size} samples, T={a.temperature}, "
          f"{torch.get_num_threads()} threads: lengths mean {lengths.mean():.1f}, "
          f"max {int(lengths.max())}, {on.steps} decode steps; outputs identical")  # fmt: skip
    print(f"without compaction: {best[False]:.2f} s (best of {a.repeats})")
    print(f"with compaction:    {best[True]:.2f} s (best of {a.repeats})")
    print(f"ratio without / with: {best[False] / best[True]:.2f}x")


if __name__ == "__main__":
    main()
