"""train_zero.py with the first update's gradients saved: a helper of tests/test_torchrun.py.

    torchrun --standalone --nproc_per_node=2 tests/dp_train.py GRADS_FILE [train_zero flags]
    python tests/dp_train.py GRADS_FILE [train_zero flags]

Rank 0 saves every parameter's gradient as the first optimizer step sees it
(summed over ranks and clipped; with --fsdp gathered) to GRADS_FILE, then training goes on as usual.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import train_zero  # noqa: E402

_step = torch.optim.AdamW.step
_saved = []


def _full(t):  # with --fsdp a gradient is this rank's shard: gather it (every rank calls)
    return t.full_tensor() if hasattr(t, "full_tensor") else t.detach().clone()


def _step_saving_grads(self, *args, **kwargs):
    if not _saved:
        grads = [_full(p.grad) for g in self.param_groups for p in g["params"]]
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save(grads, sys.argv[1])
        _saved.append(True)
    return _step(self, *args, **kwargs)


torch.optim.AdamW.step = _step_saving_grads

if __name__ == "__main__":
    sys.exit(train_zero.main(sys.argv[2:]))
