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

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollouts import alternating, rollout_parser, rollout_setup  # noqa: E402

from model import generate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    a = rollout_parser(__doc__, "assets/demo-countdown-base", "countdown", 480).parse_args(argv)
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
