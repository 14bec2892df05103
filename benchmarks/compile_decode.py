"""Does `torch.compile` pay for the sampler? Eager against compiled, compile time counted.

    python benchmarks/compile_decode.py                     # addition demo base, 16 x 8, CPU
    python benchmarks/compile_decode.py --base assets/demo-countdown-base --task countdown

Samples G completions for each of the first B held-out prompts of the base's
task, as a GRPO rollout does: `--repeats` times with the eager model, then
with `model.forward` wrapped in `torch.compile(dynamic=True)` (the batch
shrinks as rows finish and the KV cache grows every step, so shapes are
dynamic). The first compiled call includes compilation and is reported on its
own. The outputs are asserted identical. Prints the best eager time, the first
compiled time, the best later compiled time, and the ratios.
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="assets/demo-base", help="checkpoint folder")
    p.add_argument("--task", default="addition", help="addition or countdown")
    p.add_argument("--prompts", type=int, default=16, help="B prompts")
    p.add_argument("--group-size", type=int, default=8, help="G samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    model = load_pretrained(a.base, dtype=torch.float32)
    tok = Tokenizer.from_dir(a.base)
    task = get_task(a.task, template=TEMPLATE)
    prompts = [tok.encode(task.prompt(ex)) for ex in task.heldout(a.prompts)]
    kw = dict(max_new_tokens=a.max_new_tokens, num_samples=a.group_size, temperature=1.0,
              eos_ids=tok.eos_ids, stop_strings=["</answer>"], tokenizer=tok,
              pad_id=tok.pad_id, seed=0)  # fmt: skip

    def timed() -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        out = generate(model, prompts, **kw)
        return time.perf_counter() - t0, out.tokens

    eager = [timed() for _ in range(a.repeats)]
    model.forward = torch.compile(model.forward, dynamic=True)
    first = timed()
    later = [timed() for _ in range(a.repeats)]
    for _, tokens in [first, *later]:
        assert torch.equal(tokens, eager[0][1]), "the compiled model sampled other tokens"
    e, c = min(t for t, _ in eager), min(t for t, _ in later)
    print(f"{a.base}, {a.prompts} x {a.group_size} samples, up to {a.max_new_tokens} "
          f"tokens, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          "outputs identical")  # fmt: skip
    print(f"eager:                        {e:.2f} s (best of {a.repeats})")
    print(f"compiled, first call:         {first[0]:.2f} s (compilation included)")
    print(f"compiled, later calls:        {c:.2f} s (best of {a.repeats})")
    print(f"ratio eager / compiled (later calls): {e / c:.2f}x")
    print("rollouts before compiling pays off: "
          + (f"{(first[0] - c) / (e - c):.0f}" if e > c else "never (compiled is slower)"))


if __name__ == "__main__":
    main()
