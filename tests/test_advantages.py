"""Tests for grpo/advantages.py: expected values come from the statistics module."""

import statistics

import pytest
import torch

from grpo.advantages import group_advantages


def _expected(rewards: list[float], g: int, scale_by_std: bool = True, eps: float = 1e-4):
    out = []
    for k in range(0, len(rewards), g):
        group = rewards[k : k + g]
        mu, sd = statistics.mean(group), statistics.stdev(group)  # stdev is unbiased (n - 1)
        out += [(r - mu) / (sd + eps) if scale_by_std else r - mu for r in group]
    return torch.tensor(out, dtype=torch.float32)


def test_matches_statistics_module():
    rewards = [1.0, 0.0, 0.0, 1.0, 1.1, 0.1, 0.0, 0.0]
    adv, stats = group_advantages(torch.tensor(rewards), group_size=4)
    torch.testing.assert_close(adv, _expected(rewards, 4), rtol=1e-5, atol=1e-6)
    assert adv.dtype == torch.float32 and adv.shape == (8,), f"{adv.dtype} {adv.shape}"
    # Group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3) -> A = +-0.5 * sqrt(3) / (1 + ...).
    assert abs(adv[0].item() - 0.5 / (3**-0.5 + 1e-4)) < 1e-5, f"A_0 = {adv[0].item()}"
    sds = [statistics.stdev(rewards[:4]), statistics.stdev(rewards[4:])]
    assert abs(stats["reward_std_mean"] - sum(sds) / 2) < 1e-6, stats
    assert abs(stats["adv_abs_mean"] - _expected(rewards, 4).abs().mean().item()) < 1e-6, stats
    assert stats["zero_variance_frac"] == 0.0, stats


def test_zero_variance_groups_are_exactly_zero_and_counted():
    # Eight rewards of 0.1 (format bonus only): in fp32 r - mean(r) is -7e-9, not 0, and
    # dividing by (std + eps) would turn it into noise. The guard must give exact zeros.
    naive = torch.full((8,), 0.1) - torch.full((8,), 0.1).mean()
    assert (naive != 0).any(), "precondition: fp32 mean of 8 x 0.1 should not be exact"
    rewards = torch.tensor([0.1] * 8 + [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0] + [0.0] * 8)
    adv, stats = group_advantages(rewards, group_size=8)
    assert torch.equal(adv[:8], torch.zeros(8)), f"all-0.1 group not exactly 0: {adv[:8]}"
    assert torch.equal(adv[16:], torch.zeros(8)), f"all-0 group not exactly 0: {adv[16:]}"
    assert (adv[8:16] != 0).all(), "the mixed group must keep its signal"
    assert abs(stats["zero_variance_frac"] - 2 / 3) < 1e-7, stats
    sd_mixed = statistics.stdev([1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert abs(stats["reward_std_mean"] - sd_mixed / 3) < 1e-6, stats
    # The Dr. GRPO variant needs the same guard.
    adv_dr, _ = group_advantages(rewards, group_size=8, scale_by_std=False)
    assert torch.equal(adv_dr[:8], torch.zeros(8)), f"Dr. GRPO all-0.1 group: {adv_dr[:8]}"


def test_dr_grpo_variant_does_not_divide_by_std():
    rewards = [1.0, 0.0, 0.0, 0.0, 0.5, 1.0]
    adv, _ = group_advantages(torch.tensor(rewards), group_size=3, scale_by_std=False)
    torch.testing.assert_close(adv, _expected(rewards, 3, scale_by_std=False))
    # By hand: group [1, 0, 0] has mean 1/3.
    assert abs(adv[0].item() - 2 / 3) < 1e-6 and abs(adv[1].item() + 1 / 3) < 1e-6, adv


def test_eps_enters_the_denominator():
    # Group [0, 1]: unbiased std = sqrt(0.5), so A = +-0.5 / (sqrt(0.5) + eps).
    rewards = torch.tensor([0.0, 1.0])
    for eps in (1e-4, 1.0):
        adv, _ = group_advantages(rewards, group_size=2, eps=eps)
        want = 0.5 / (0.5**0.5 + eps)
        assert abs(adv[1].item() - want) < 1e-6, f"eps={eps}: {adv[1].item()} vs {want}"
        assert abs(adv[0].item() + want) < 1e-6, f"eps={eps}: {adv[0].item()} vs {-want}"


def test_integer_rewards_give_fp32():
    adv, _ = group_advantages(torch.tensor([1, 0, 0, 1]), group_size=2)
    assert adv.dtype == torch.float32, adv.dtype
    assert adv[0].item() > 0 > adv[1].item(), adv


@pytest.mark.parametrize(
    "rewards, group_size, match",
    [
        (torch.zeros(4), 1, "group_size must be >= 2"),
        (torch.zeros(4), 0, "group_size must be >= 2"),
        (torch.zeros(6), 4, "do not split"),
        (torch.zeros(0), 2, "do not split"),
        (torch.zeros(2, 4), 4, "must be 1-D"),
        (torch.tensor([0.0, float("nan")]), 2, "nan or inf"),
    ],
)
def test_bad_inputs_raise(rewards, group_size, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size)
