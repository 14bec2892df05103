"""Group-relative advantages: the "GR" in GRPO.

Each question gets G sampled completions, and the group's own reward statistics
serve as the baseline, so no value network is needed (Shao et al. 2024):

    A_i = (r_i - mean(r)) / (std(r) + eps)     std unbiased, eps ~ 1e-4     (GRPO)
    A_i =  r_i - mean(r)                                                  (Dr. GRPO)

One scalar per completion (outcome supervision); the loss broadcasts it over the
completion's tokens.

Shapes: N = num_groups * G sequences, G group size. Groups are contiguous: rows
[g*G, (g+1)*G) are one question's samples.

Tests: python -m pytest -q tests/test_advantages.py
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(
    rewards: Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-4
) -> tuple[Tensor, dict[str, float]]:
    """Advantages (N,) fp32 from rewards (N,), plus group statistics.

    scale_by_std=False is the Dr. GRPO variant (no division by the group std).
    Stats: zero_variance_frac (fraction of groups whose rewards are all equal: they
    carry no policy-gradient signal), reward_std_mean (mean within-group unbiased
    std), adv_abs_mean (mean |A| over all N sequences).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if group_size < 2:
        raise ValueError(
            f"group_size must be >= 2: the unbiased std of a group of {group_size} "
            "sample(s) is undefined"
        )
    n = rewards.shape[0]
    if n == 0 or n % group_size != 0:
        raise ValueError(
            f"N={n} rewards do not split into a positive number of groups of {group_size}"
        )
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards contain nan or inf")

    r = rewards.to(torch.float32).view(-1, group_size)  # (N/G, G)
    std = r.std(dim=1, correction=1, keepdim=True)  # (N/G, 1)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale_by_std:
        adv = adv / (std + eps)
    # The mean of G equal floats need not equal them (rounding in the sum: eight rewards
    # of 0.1 give r - mean = -7e-9 in fp32), so all-equal groups are set to exactly 0:
    # a group with no signal must push no gradient, not amplified rounding noise.
    zero_var = (r == r[:, :1]).all(dim=1, keepdim=True)  # (N/G, 1)
    adv = torch.where(zero_var, 0.0, adv)

    stats = {
        "zero_variance_frac": zero_var.float().mean().item(),
        "reward_std_mean": std.mean().item(),
        "adv_abs_mean": adv.abs().mean().item(),
    }
    return adv.view(-1), stats
