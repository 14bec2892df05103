"""How idle OpenMP threads should wait: speed on idle cores and with one busy core.

    python benchmarks/omp_wait.py                 # addition demo base, 2 threads
    python benchmarks/omp_wait.py --base runs/demo/checkpoints/step_000050

Each setting runs in a fresh child process (OpenMP reads these variables once,
when torch loads), first with the machine idle, then while one busy process
(`while True: pass`) competes for a core, as on a laptop doing other work:

- `OMP_WAIT_POLICY=PASSIVE`: a worker sleeps as soon as it is idle;
- `GOMP_SPINCOUNT=1000`: it spins briefly, then sleeps (what grpo/run/cpu_env.py
  sets on Linux);
- neither: GNU OpenMP's default, 300,000 spins.

The child times a rollout (`generate`, B x G samples up to 128 tokens, as a
GRPO step does) and an update-shaped forward + backward (64 rows of 180
tokens), best of `--repeats` each. Both are the work of one demo step; compare
the columns of one run (timings on a shared machine vary between runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = [
    ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("GOMP_SPINCOUNT=1000", {"GOMP_SPINCOUNT": "1000"}),
    ("GNU default (300,000 spins)", {}),
]


def child(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from rollouts import rollout_setup

    from model import generate

    torch.set_num_threads(a.threads)
    model, _tok, prompts, kw = rollout_setup(a)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (64, 180), generator=g)
    rollout, update = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        generate(model, prompts, **kw)
        rollout.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.hidden_states(ids).square().mean().backward()
        update.append(time.perf_counter() - t0)
    print(json.dumps({"rollout": min(rollout), "update": min(update)}))


def run(a: argparse.Namespace, env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    cmd = [sys.executable, __file__, "--child", "--base", a.base, "--task", a.task,
           "--repeats", str(a.repeats), "--threads", str(a.threads)]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rollouts import rollout_parser

    p = rollout_parser(__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a)
    rows = []
    for load in ("idle", "one busy core"):
        busy = None
        if load != "idle":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name, env in SETTINGS:
                rows.append((name, load, run(a, env)))
                print(f"  {load}: {name} done", file=sys.stderr, flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print(f"{a.base}, {a.prompts} x {a.group_size} samples up to {a.max_new_tokens} tokens; "
          "update: forward + backward of 64 x 180 tokens; "
          f"{a.threads} threads; best of {a.repeats}")  # fmt: skip
    print(f"{'setting':30s} {'load':14s} {'rollout s':>10s} {'update s':>10s}")
    for name, load, r in rows:
        print(f"{name:30s} {load:14s} {r['rollout']:10.3f} {r['update']:10.3f}")


if __name__ == "__main__":
    main()
