"""Data parallelism with torch.distributed, launched by torchrun (docs/multi_gpu.md).

    dist = init_from_env()          # torchrun's RANK, WORLD_SIZE, LOCAL_RANK; else one process
    rows = dist.share(n)            # this rank's contiguous block of n items
    parts = dist.gather(obj)        # every rank's obj, in rank order, on every rank
    dist.sum_grads(model.parameters())   # gradients summed over ranks (before clipping)
    dist.any(flag)                  # True on every rank if it is True on one
    dist.most(n)                    # the largest n over the ranks
    dist.close()                    # clean teardown: no rank aborts at exit

Exactness is the design, not a tolerance: every rank sees the whole step (the
prompts, then every rank's rollouts, gathered), so the advantages, the loss
weights of each mini-batch (the global normaliser: tokens for dapo,
sequences for grpo and dr_grpo) and the logged metrics are those of one
process. A rank only samples, and back-propagates, its share of the groups;
its sampling noise is the one-process batch's (model.generate's `noise_rows`),
and the shares' gradients sum to the one-process gradient
(Trainer._backward). With one process every call here is a no-op.

gloo on CPU; on CUDA nccl for CUDA tensors and gloo for the small CPU ones
(one device per rank: cuda:LOCAL_RANK). The process group has a timeout, so a
rank that fails ends the others with an error instead of a hang.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

TIMEOUT = timedelta(minutes=10)  # a collective that waits this long fails on every rank


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, n: int) -> range:
        """This rank's contiguous block of range(n); blocks differ in size by at most one."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (self.rank < extra))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def sum_grads(self, params) -> None:
        """Sum the gradients over ranks, in place; a parameter without one counts as 0."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        i = 0
        for p in params:
            p.grad.copy_(flat[i : i + p.numel()].view_as(p.grad))
            i += p.numel()

    def sum(self, values: dict[str, Any]) -> dict[str, Any]:
        """Each value (a number or a 0-d tensor) summed over ranks; the keys must match."""
        if not self.active:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def most(self, n: int) -> int:
        """The largest of the ranks' `n`."""
        if not self.active:
            return n
        t = torch.tensor([int(n)])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def any(self, flag: bool) -> bool:
        return bool(self.most(int(bool(flag))))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def close(self) -> None:
        """Tear down so that no rank aborts at exit: collect what holds the group, wait for
        every rank, then destroy the process group."""
        if not self.active or not torch.distributed.is_initialized():
            return
        gc.collect()
        try:
            torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()


def init_from_env() -> Dist:
    """The process group torchrun describes in the environment, or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    # On CUDA the gradients go through nccl; the small CPU tensors of sum/most and the
    # pickled objects of gather through gloo (nccl takes CUDA tensors only).
    torch.distributed.init_process_group("cuda:nccl,cpu:gloo" if cuda else "gloo",
                                         timeout=TIMEOUT)  # fmt: skip
    return Dist(rank, world, local)
