"""The sampler's decode step: `model.decode.Decoder` against the general forward.

    python benchmarks/decode_step.py                                   # addition demo base
    python benchmarks/decode_step.py --base runs/demo/checkpoints/step_000050   # after RL

Samples G completions for each of the first B held-out prompts of the base's
task, as a GRPO rollout does, with `generate(..., fast=True)` (the default:
fused weights, the template prefix attended once for all rows) and with
`fast=False` (each step runs `model(tok, None, cache)`, the general forward
over the same cache), in alternating order, `--repeats` times each. The
sampled tokens are asserted identical before any time is reported. Prints the
best time and generated tokens/s of each, and the ratio. Timings on a shared
machine are only meaningful as this ratio, measured in one run on idle cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollouts import alternating, rollout_parser, rollout_setup  # noqa: E402

from model import generate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    a = rollout_parser(__doc__).parse_args(argv)
    model, _tok, prompts, kw = rollout_setup(a)
    best, outs = alternating(lambda f: generate(model, prompts, fast=f, **kw), a.repeats)
    assert torch.equal(outs[True].tokens, outs[False].tokens), "the fast step sampled other tokens"
    n = int(outs[True].lengths.sum())
    print(f"{a.base}, {a.prompts} x {a.group_size} samples, T={a.temperature}, up to "
          f"{a.max_new_tokens} tokens, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}: {n} tokens, {outs[True].steps} decode steps; "
          "tokens identical")  # fmt: skip
    for fast, name in ((False, "general forward (fast=False)"), (True, "decode step (fast=True)")):
        t = best[fast]
        print(f"{name:30s} {t:.3f} s  {n / t:8.0f} tokens/s  (best of {a.repeats})")
    print(f"ratio general / fast: {best[False] / best[True]:.2f}x")


if __name__ == "__main__":
    main()
