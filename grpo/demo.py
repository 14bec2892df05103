"""`python -m grpo.demo build | inspect`: build and inspect the demos' base models.

The code lives in grpo/bases/ (its package docstring explains the design):

    python -m grpo.demo build                          # the "demo" base into .cache/demo-base/
    python -m grpo.demo build --out assets/demo-base   # THE command that produced assets/demo-base/
    python -m grpo.demo inspect                        # modes, per-mode accuracy, format rate

The trainer and eval.py ask `grpo.bases.ensure_base(name)` for a base.
"""

from __future__ import annotations

import sys

from grpo.bases.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
