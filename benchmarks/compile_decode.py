"""Does `torch.compile` pay for the sampler? Eager against compiled, compile time counted.

    python benchmarks/compile_decode.py                     # addition demo base, 16 x 8, CPU
    python benchmarks/compile_decode.py --base assets/demo-countdown-base --task countdown

Samples G completions for each of the first B held-out prompts of the base's
task, as a GRPO rollout does: `--repeats` times with the eager sampler (its
decode step, `model.decode.Decoder`, the default), `--repeats` times with the
general forward (`fast=False`) eager, then with `model.forward` wrapped in
`torch.compile(dynamic=True)` and the general forward (the batch shrinks as
rows finish and the KV cache grows every step, so shapes are dynamic). The
first compiled call includes compilation and is reported on its own. The
outputs are asserted identical. Prints the best time of each, and the ratios
against the eager decode step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollouts import rollout_parser, rollout_setup  # noqa: E402

from model import generate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    a = rollout_parser(__doc__).parse_args(argv)
    model, _tok, prompts, kw = rollout_setup(a)

    def timed(fast: bool) -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        out = generate(model, prompts, fast=fast, **kw)
        return time.perf_counter() - t0, out.tokens

    eager = [timed(True) for _ in range(a.repeats)]
    general = [timed(False) for _ in range(a.repeats)]
    model.forward = torch.compile(model.forward, dynamic=True)
    first = timed(False)
    later = [timed(False) for _ in range(a.repeats)]
    for _, tokens in [*general, first, *later]:
        assert torch.equal(tokens, eager[0][1]), "another path sampled other tokens"
    e, g, c = (min(t for t, _ in runs) for runs in (eager, general, later))
    print(f"{a.base}, {a.prompts} x {a.group_size} samples, up to {a.max_new_tokens} "
          f"tokens, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          "outputs identical")  # fmt: skip
    print(f"eager, decode step (default):        {e:.2f} s (best of {a.repeats})")
    print(f"eager, general forward:              {g:.2f} s (best of {a.repeats})")
    print(f"compiled general forward, first call: {first[0]:.2f} s (compilation included)")
    print(f"compiled general forward, later:     {c:.2f} s (best of {a.repeats})")
    print(f"ratio eager decode step / compiled (later calls): {e / c:.2f}x")
    print("rollouts before compiling pays off: "
          + (f"{(first[0] - c) / (e - c):.0f}" if e > c else "never (compiled is slower)"))


if __name__ == "__main__":
    main()
