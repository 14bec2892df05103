"""FSDP2 (`--fsdp` under torchrun): gradients and AdamW state sharded over the ranks.

    sharding = Sharding.build(model, dist, on=cfg.fsdp)   # before the optimizer is built
    with sharding.gathered(model):   # rollout, log-probs, one mini-batch's backward
        ...
    gn = sharding.clip(model.parameters(), max_norm)      # the global norm, then the step
    weights = sharding.full_state(model)                  # every rank calls; plain tensors

Every decoder layer and the model itself are `fully_shard`-ed: each rank keeps
1/N of each parameter, of its gradient and of AdamW's two moments. The
whole parameters are gathered for a phase (a rollout needs them whole on every
rank anyway: each rank decodes its own prompts, for its own number of steps)
and freed after it, so per rank the memory is the full weights while a phase
runs, plus (gradients + 2 moments) / N always. DDP would keep all of it on
every rank.

Gradients are summed, not averaged: with sum reduction and a divide factor
of 1 on every FSDP module (neither setter is recursive: set on the root alone
they run and give wrong gradients), the reduce-scatter gives each rank its
slice of the summed gradient, as Dist.sum_grads does for the unsharded model.
The loss weights carry the global normaliser (grpo/trainer.py), so the sum is
the one-process gradient.

A gradient reduce-scatter is a collective, so every rank must run the same
number of backward passes, with the same structure: the trainer pads a rank
that has fewer micro-batches with zero-weight ones (`pad_to`), and unused
parameters join the reduce-scatter with zero gradients.

Checkpoints keep the one-process format (Hugging Face weights, AdamW state
keyed by parameter index): `full_state` and `full_optimizer_state` gather the
shards, `load_optimizer_state` cuts a full state into this rank's shards. So a
run saved with or without --fsdp, on any number of ranks, resumes on any other.
Without --fsdp every method here is the plain one.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grpo.parallel.distributed import Dist


@dataclass
class Sharding:
    on: bool = False

    @staticmethod
    def build(models: list[nn.Module | None], dist: Dist, on: bool,
              device: torch.device) -> Sharding:  # fmt: skip
        """Shard each of `models` (the policy; the frozen reference, if any) in place."""
        if not (on and dist.active):
            return Sharding(False)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        # Our callers never change the hidden states in place (the case that warning is for).
        warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view")
        mesh = init_device_mesh(device.type, (dist.world,))
        for model in models:
            if model is None:
                continue
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)
            # The trainer and model.generate run these instead of forward().
            for name in ("hidden_states", "prefix_states"):
                register_fsdp_forward_method(model, name)
            for m in _fsdp_modules(model):
                m.set_force_sum_reduction_for_comms(True)  # sum over ranks, on every module
                m.set_gradient_divide_factor(1.0)
                m.set_reduce_scatter_unused_params(True, recurse=False)
                # Gathered whole for a phase (gathered()), not per layer call.
                m.set_reshard_after_forward(False, recurse=False)
                m.set_reshard_after_backward(False, recurse=False)
        return Sharding(True)

    def gathered(self, model: nn.Module | None):
        """The whole parameters on every rank for the block, freed after it."""
        return _gathered(model) if self.on and model is not None else nullcontext()

    def clip(self, params, max_norm: float) -> torch.Tensor:
        """clip_grad_norm_ over the global gradient (every rank's shards)."""
        params = list(params)
        if not self.on:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        from torch.distributed.tensor import DTensor

        grads = [p.grad for p in params if p.grad is not None]
        total = torch.nn.utils.get_total_norm(grads)
        if isinstance(total, DTensor):
            total = total.full_tensor()
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        if torch.isfinite(total):
            for g in grads:
                g.mul_(coef.item())
        return total

    def full_state(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The whole state dict as plain tensors (a collective: every rank calls it);
        None without --fsdp (the model's own state_dict is whole)."""
        if not self.on:
            return None
        return {k: _full(v) for k, v in model.state_dict().items()}

    def full_optimizer_state(self, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """opt.state_dict() with every shard gathered (every rank calls it)."""
        sd = opt.state_dict()
        if not self.on:
            return sd
        state = {i: {k: _full(v) for k, v in sorted(s.items())}
                 for i, s in sorted(sd["state"].items())}  # fmt: skip
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_optimizer_state(self, opt: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
        """Load a one-process optimizer state: each rank keeps its shards of it."""
        if self.on:
            from torch.distributed.tensor import DTensor, distribute_tensor

            params = [p for g in opt.param_groups for p in g["params"]]
            state = {}
            for i, s in sd["state"].items():
                p = params[i]
                state[i] = {
                    k: distribute_tensor(v.to(p.device), p.device_mesh, p.placements,
                                         src_data_rank=None)  # every rank read the file
                    if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape
                    else v
                    for k, v in s.items()
                }  # fmt: skip
            sd = {"state": state, "param_groups": sd["param_groups"]}
        opt.load_state_dict(sd)


def _fsdp_modules(model: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _full(v: Any) -> Any:
    from torch.distributed.tensor import DTensor

    return v.full_tensor() if isinstance(v, DTensor) else v


@contextmanager
def _gathered(model: nn.Module):
    mods = _fsdp_modules(model)
    for m in mods:
        m.unshard()
    try:
        yield
    finally:
        for m in mods:
            m.reshard()
