"""SFT data: JSONL of {"prompt": ..., "completion": ...}, tokenised and cut into batches.

    rows = read_sft_jsonl("sft.jsonl")            # ValueError naming the file and line
    examples, dropped = tokenize(rows, tok, max_len)
    for rows_of_step in step_rows(len(examples), batch_size, seed, epoch): ...
    for part in by_length(rows_of_step, lengths, micro_batch_size): ...
    batch = collate([examples[i] for i in part], tok.pad_id, device)

A line may carry other keys (the question, the answer, where it came from):
they are kept in the file and ignored here. The prompt is used as written (it
already holds the template); the completion is followed by the end-of-sequence
token, so the model also learns where to stop.

Batches: each epoch visits every example once in an order drawn from (seed,
epoch), so a resumed run sees what a straight run would. An optimizer step's
rows are sorted by length and cut into micro-batches, so short rows are not
padded up to long ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def read_sft_jsonl(path: str | Path, prompts_only: bool = False) -> list[dict[str, Any]]:
    """The lines of an SFT file; a ValueError names the file and line of the first bad one.
    `prompts_only` (on-policy distillation, where the student writes every completion):
    a line needs a prompt only."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"--data {path}: {what}")
    from grpo.tasks import jsonl_objects

    rows = []
    for where, row in jsonl_objects(path):
        if prompts_only:
            row = {**row, "completion": row.get("completion") or ""}
        for key in ("prompt", "completion"):
            if key not in row:
                raise ValueError(f"{where}: missing {key!r}")
            if not isinstance(row[key], str):
                raise ValueError(f"{where}: {key!r} must be a string, got "
                                 f"{type(row[key]).__name__}")  # fmt: skip
        if not row["completion"].strip() and not prompts_only:
            raise ValueError(f"{where}: 'completion' is empty")
        if not row["prompt"]:
            raise ValueError(f"{where}: 'prompt' is empty (the completion's first token must "
                             "follow something)")  # fmt: skip
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


@dataclass
class SFTExample:
    prompt_ids: list[int]
    completion_ids: list[int]  # the completion's tokens, then end-of-sequence

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def tokenize(rows: list[dict[str, Any]], tok, max_len: int) -> tuple[list[SFTExample], int]:
    """(the examples of at most max_len tokens, how many longer ones were dropped)."""
    prompts = tok.encode_batch([r["prompt"] for r in rows])
    completions = tok.encode_batch([r["completion"] for r in rows])
    out, dropped = [], 0
    for p, c in zip(prompts, completions):
        ex = SFTExample(list(p), list(c) + [tok.eos_id])
        if len(ex) > max_len:
            dropped += 1
        else:
            out.append(ex)
    return out, dropped


@dataclass
class SFTBatch:
    input_ids: Tensor  # (B, T) long, right-padded
    attention_mask: Tensor  # (B, T) bool: real tokens
    target_mask: Tensor  # (B, T) bool: completion tokens (the ones the loss predicts)


def collate(examples: list[SFTExample], pad_id: int, device: torch.device | str) -> SFTBatch:
    T = max(len(ex) for ex in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    attn = torch.zeros(len(examples), T, dtype=torch.bool)
    target = torch.zeros(len(examples), T, dtype=torch.bool)
    for i, ex in enumerate(examples):
        P, n = len(ex.prompt_ids), len(ex)
        ids[i, :n] = torch.tensor(ex.prompt_ids + ex.completion_ids)
        attn[i, :n] = True
        target[i, P:n] = True
    return SFTBatch(ids.to(device), attn.to(device), target.to(device))


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def step_rows(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Epoch `epoch`'s optimizer batches: a seeded permutation of range(n), cut in order
    (the last batch may be smaller)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def by_length(rows: list[int], lengths, micro_batch_size: int) -> list[list[int]]:
    """`rows` sorted by lengths[row] (ties by row) and cut into micro-batches."""
    order = sorted(rows, key=lambda r: (lengths[r], r))
    return [order[i : i + micro_batch_size] for i in range(0, len(order), micro_batch_size)]
