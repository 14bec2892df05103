"""grpo.microbatch: the planned cuts are a permutation, respect max_rows, and are optimal."""

import itertools
import random

import pytest
import torch

from grpo.microbatch import plan_cost, plan_micro_batches


def sorted_order(lengths, groups):
    L, g = lengths.tolist(), groups.tolist()
    return sorted(range(len(L)), key=lambda i: (L[i], g[i]))


def brute_force_best(lengths, groups, max_rows, P, overhead):
    """Least cost over every split of the sorted order into contiguous pieces."""
    order = sorted_order(lengths, groups)
    n = len(order)
    best = None
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = [0, *cuts, n]
            pieces = [order[a:b] for a, b in zip(bounds, bounds[1:])]
            if any(len(p) > max_rows for p in pieces):
                continue
            c = plan_cost(lengths, groups, [torch.tensor(p) for p in pieces], P, overhead)
            best = c if best is None else min(best, c)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_plan_is_a_permutation_within_max_rows_and_optimal(seed):
    rng = random.Random(seed)
    n, G = rng.randint(1, 9), rng.choice([1, 2, 3])
    lengths = torch.tensor([rng.randint(1, 60) for _ in range(n)])
    groups = torch.arange(n) // G
    max_rows, P, overhead = rng.randint(1, 5), rng.choice([0, 7, 40]), rng.choice([0, 16, 100])
    cuts = plan_micro_batches(lengths, groups, max_rows, P, overhead)
    flat = torch.cat(cuts).tolist()
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(c) <= max_rows for c in cuts)
    assert flat == sorted_order(lengths, groups)  # contiguous pieces of the sorted order
    assert plan_cost(lengths, groups, cuts, P, overhead) == brute_force_best(
        lengths, groups, max_rows, P, overhead
    )


def test_hand_example():
    # Six rows, lengths 2,2,2,2 (group 0 and 1) and 50,50 (group 2); P = 10, overhead 20.
    lengths = torch.tensor([2, 50, 2, 2, 50, 2])
    groups = torch.tensor([0, 2, 0, 1, 2, 1])
    # One piece: 6 x 50 + 3 x 10 + 20 = 350. Short | long: (4 x 2 + 2 x 10 + 20) +
    # (2 x 50 + 10 + 20) = 48 + 130 = 178, the best.
    cuts = plan_micro_batches(lengths, groups, max_rows=6, prompt_len=10, overhead=20)
    assert [c.tolist() for c in cuts] == [[0, 2, 3, 5], [1, 4]]
    assert plan_cost(lengths, groups, cuts, 10, 20) == 178
    # A large overhead makes one piece cheaper: 6 x 50 + 30 + 500 = 830 < 48 + 130 + 960.
    one = plan_micro_batches(lengths, groups, max_rows=6, prompt_len=10, overhead=500)
    assert [c.tolist() for c in one] == [[0, 2, 3, 5, 1, 4]]
    # max_rows 3 forbids the 4-row piece.
    assert all(len(c) <= 3 for c in plan_micro_batches(lengths, groups, 3, 10, 20))


def test_bad_max_rows():
    with pytest.raises(ValueError, match="max_rows"):
        plan_micro_batches(torch.tensor([1, 2]), None, 0)
