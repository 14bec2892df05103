"""The sampler's Exp(1) noise on CPU: `exponential_` against `model.generate.exponential_noise`.

    python benchmarks/sampling_noise.py                                   # addition demo base
    python benchmarks/sampling_noise.py --base runs/demo/checkpoints/step_000050

Both give the same numbers (asserted here, and in tests/test_generate.py):
torch's CPU `exponential_` computes -log1p(-U) from a float64 uniform U one
value at a time; `exponential_noise` draws the uniforms with `uniform_` and
applies log1p to the whole tensor. Prints the best time of one draw of the
demo's N x V noise (128 x 414), and of a rollout (B x G samples, as a GRPO
step does) with each, in alternating order, `--repeats` times each; the
sampled tokens are asserted identical first. Timings on a shared machine are
only meaningful as these ratios, measured in one run on idle cores.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo.run.cpu_env import set_cpu_env  # noqa: E402

set_cpu_env()

import torch  # noqa: E402
from rollouts import alternating, rollout_parser, rollout_setup  # noqa: E402

mg = importlib.import_module("model.generate")  # (model.generate is also the function)


def torch_exponential(shape, device, generator):
    return torch.empty(shape, device=device).exponential_(1.0, generator=generator)


def main(argv: list[str] | None = None) -> None:
    a = rollout_parser(__doc__).parse_args(argv)
    ours, cpu = mg.exponential_noise, torch.device("cpu")
    shape = (a.prompts * a.group_size, 414)
    g = torch.Generator()
    draws = {True: lambda: ours(shape, cpu, g), False: lambda: torch_exponential(shape, cpu, g)}
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(ours(shape, cpu, g1), torch_exponential(shape, cpu, g2)), "draws differ"
    best_draw, _ = alternating(lambda f: draws[f](), 20 * a.repeats)

    model, _tok, prompts, kw = rollout_setup(a)

    def rollout(fast_noise: bool):
        mg.exponential_noise = ours if fast_noise else torch_exponential
        try:
            return mg.generate(model, prompts, **kw)
        finally:
            mg.exponential_noise = ours

    best, outs = alternating(rollout, a.repeats)
    assert torch.equal(outs[True].tokens, outs[False].tokens), "the noise changed the tokens"
    n = int(outs[True].lengths.sum())
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}; draws identical")
    print(f"one draw of {shape[0]} x {shape[1]}: exponential_ {best_draw[False] * 1e3:.3f} ms, "
          f"exponential_noise {best_draw[True] * 1e3:.3f} ms "
          f"(ratio {best_draw[False] / best_draw[True]:.2f}x, best of "
          f"{20 * a.repeats})")  # fmt: skip
    print(f"rollout, {a.base}, {a.prompts} x {a.group_size} samples up to {a.max_new_tokens} "
          f"tokens ({n} tokens, {outs[True].steps} steps; tokens identical), best of {a.repeats}:")
    for f, name in ((False, "exponential_"), (True, "exponential_noise")):
        print(f"  {name:18s} {best[f]:.3f} s  {n / best[f]:8.0f} tokens/s")
    print(f"ratio: {best[False] / best[True]:.2f}x")


if __name__ == "__main__":
    main()
