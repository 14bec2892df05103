"""CPU settings every entry point makes before torch loads (they are read once, at load).

- Bitwise-reproducible runs: MKL's default code paths may depend on memory
  alignment and pick thread counts dynamically (`MKL_CBWR`, `MKL_DYNAMIC`).
- How idle OpenMP threads wait between parallel ops. A decode step runs a few
  hundred small ops, so a worker that sleeps (`OMP_WAIT_POLICY=PASSIVE`) pays
  a wake-up per op, while one that spins for long (GNU OpenMP's default,
  300,000 spins) fights any other busy process for its core. On Linux, where
  torch ships GNU OpenMP, a short spin (`GOMP_SPINCOUNT=1000`) keeps most of
  the speed on idle cores and stays robust on a busy machine (BENCHMARKS.md,
  "OpenMP waiting"); elsewhere PASSIVE. Settings already in the environment win.
"""

from __future__ import annotations

import os
import sys


def set_cpu_env() -> None:
    os.environ.setdefault("MKL_CBWR", "AUTO")
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    if sys.platform.startswith("linux"):
        os.environ["GOMP_SPINCOUNT"] = "1000"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
