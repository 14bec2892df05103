"""How the rows of an update's mini-batch are cut into micro-batches.

A micro-batch runs as one padded tensor: its cost grows with its row count
times its longest completion, plus (with the prefix-shared update) one
prompt per distinct group among its rows, plus a fixed overhead per forward
and backward. Early in a run completion lengths vary widely (5 to 90 tokens
in a group is common), so cutting a length-sorted list into equal chunks pads
short rows up to long ones.

    cuts = plan_micro_batches(lengths, groups, max_rows=64, prompt_len=97)
    for pos in cuts:            # positions into `lengths`, together a permutation
        rows = mb[pos]

`plan_micro_batches` sorts the rows by completion length (then group, so a
group's equal-length rows sit together) and splits that order into
contiguous micro-batches of at most `max_rows` rows, choosing the cuts by
dynamic programming to minimise the estimated cost in tokens:

    cost(micro-batch) = rows x longest completion + prompt_len x distinct groups
                        + OVERHEAD_TOKENS

The cut changes only which rows are summed together, so the gradient equals
any other cut up to float round-off (the loss weights come from the whole
mini-batch: grpo.loss.token_weights). Test: tests/test_microbatch.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

# A micro-batch's fixed cost (one more forward and backward: kernel launches,
# Python), in tokens of work. Measured on the CPU demo, where anything between
# 64 and 512 tokens picks nearly the same cuts.
OVERHEAD_TOKENS = 256


def plan_micro_batches(
    lengths: Tensor, groups: Tensor | None, max_rows: int, prompt_len: int = 0,
    overhead: int = OVERHEAD_TOKENS,
) -> list[Tensor]:  # fmt: skip
    """Positions (into `lengths`) of each micro-batch, in order; together a permutation.

    lengths (n,): completion tokens per row; groups (n,): which prompt each row
    completes (None: every row has its own prompt, or prompts are not shared,
    then give prompt_len=0); max_rows: the most rows in one micro-batch.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    n = lengths.shape[0]
    L = lengths.tolist()
    g = groups.tolist() if groups is not None else list(range(n))
    order = sorted(range(n), key=lambda i: (L[i], g[i]))
    # best[j]: least cost of the first j rows of `order`; cut[j]: where its last micro-batch starts.
    best = [0] + [None] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = L[order[j - 1]]  # sorted: the last row of a segment is its longest
        seen: set[int] = set()
        for i in range(j - 1, max(-1, j - 1 - max_rows), -1):
            seen.add(g[order[i]])
            c = best[i] + (j - i) * longest + prompt_len * len(seen) + overhead
            if best[j] is None or c < best[j]:
                best[j], cut[j] = c, i
    segments = []
    j = n
    while j > 0:
        segments.append(torch.tensor(order[cut[j] : j], dtype=torch.long))
        j = cut[j]
    return segments[::-1]


def plan_cost(
    lengths: Tensor, groups: Tensor | None, cuts: list[Tensor], prompt_len: int = 0,
    overhead: int = OVERHEAD_TOKENS,
) -> int:  # fmt: skip
    """The estimated cost (tokens) of a given cut, as plan_micro_batches counts it."""
    total = 0
    for pos in cuts:
        distinct = len(set(groups[pos].tolist())) if groups is not None else len(pos)
        total += len(pos) * int(lengths[pos].max()) + prompt_len * distinct + overhead
    return total


def micro_batches(mb: torch.Tensor, lengths: torch.Tensor, batch, micro_batch_size: int,
                  share_prompt: bool) -> list[torch.Tensor]:  # fmt: skip
    """Positions into `mb` (row indices of a grpo.rollout.Batch) of each micro-batch.

    With share_prompt, cuts are planned against padding, prompts and overhead;
    the unshared oracle cuts the length-sorted rows into equal chunks.
    """
    if share_prompt and batch.group is not None:
        # Each distinct prompt costs its own columns; the common prefix is once per cut.
        k = batch.shared_len
        cuts = plan_micro_batches(lengths[mb].cpu(), batch.group[mb].cpu(), micro_batch_size,
                                  batch.prompt_len - k, OVERHEAD_TOKENS + k)  # fmt: skip
        return [c.to(mb.device) for c in cuts]
    return list(torch.argsort(lengths[mb], stable=True).split(micro_batch_size))
