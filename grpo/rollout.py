"""Rollouts: sample G completions per question, score them, and pack them for the loss.

    ro = rollout(policy, tok, task, examples, cfg, seed)      # sampling + rewards
    batch = pack(ro, tok.pad_id, device)                       # tensors for the update
    logp, ent = completion_logprobs(policy, batch, rows, T=1.0)  # (n, Tc) per token

Shape legend: B questions, G samples per question, N = B*G completions,
P padded prompt length, Tc longest completion, H hidden, V vocab.

Batch layout: each row is [left-padded prompt | completion | right padding],
so every completion starts at column P. When all prompts start with the same
tokens (the template's instructions), those come first in every row and the
rest of each prompt is left-padded after them (see pack). The logits that predict completion
token t come from the hidden state at column P + t - 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import kernels
from model import Tokenizer, Transformer, generate
from model.generate import left_pad, shared_prefix_len


@dataclass
class Rollout:
    examples: list[dict]  # (B) the questions
    prompt_ids: list[list[int]]  # (B) prompt token ids
    completion_ids: list[list[int]]  # (N) sampled ids, EOS / stop tokens included
    texts: list[str]  # (N) decoded completions
    finish_reasons: list[str]  # (N) "stop" or "length"
    scores: list[dict[str, float]]  # (N) task.score(...) of each completion
    rewards: Tensor  # (N,) fp32 rewards used for advantages (truncation policy applied)
    group_size: int

    @property
    def truncated(self) -> list[bool]:
        return [r == "length" for r in self.finish_reasons]

    @staticmethod
    def concat(parts: list[Rollout]) -> Rollout:
        """The rollouts of consecutive shares of one step's groups, as one rollout."""
        return Rollout(
            examples=[e for p in parts for e in p.examples],
            prompt_ids=[x for p in parts for x in p.prompt_ids],
            completion_ids=[x for p in parts for x in p.completion_ids],
            texts=[x for p in parts for x in p.texts],
            finish_reasons=[x for p in parts for x in p.finish_reasons],
            scores=[x for p in parts for x in p.scores],
            rewards=torch.cat([p.rewards for p in parts]), group_size=parts[0].group_size,
        )  # fmt: skip


@dataclass
class Batch:
    input_ids: Tensor  # (N, P + Tc) prompt | completion | padding
    attention_mask: Tensor  # (N, P + Tc) bool, real tokens
    completion_mask: Tensor  # (N, Tc) bool, completion tokens that enter the loss
    prompt_len: int  # P
    group: Tensor | None = None  # (N,) long: which prompt each row completes (row // G)
    shared_len: int = 0  # columns [0, shared_len) hold the same prompt tokens in every row

    @property
    def completion_ids(self) -> Tensor:
        return self.input_ids[:, self.prompt_len :]


def rollout(
    policy: Transformer, tok: Tokenizer, task, examples: list[dict], *, group_size: int,
    max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
    stop_strings: list[str] = (), truncated: str = "zero", seed: int = 0,
    progress: Callable[[int, int], None] | None = None, first_group: int = 0,
    total_groups: int | None = None,
) -> Rollout:  # fmt: skip
    """Sample `group_size` completions per example and score them with the task's rules.

    `progress(tokens_decoded, max_new_tokens)` is passed to `generate` (every decode step).
    `first_group`, `total_groups`: these examples are groups first_group .. of a step
    of `total_groups` (a data-parallel rank's share); each completion is then the one
    the whole step's rollout would sample (generate's `noise_rows`).
    """
    prompt_ids = tok.encode_batch([task.prompt(ex) for ex in examples])
    out = generate(
        policy, prompt_ids, max_new_tokens=max_new_tokens, num_samples=group_size,
        temperature=temperature, top_p=top_p if top_p < 1 else None, top_k=top_k or None,
        eos_ids=tok.eos_ids, stop_strings=stop_strings, tokenizer=tok, pad_id=tok.pad_id,
        seed=seed, progress=progress,
        noise_rows=None if total_groups is None else (first_group * group_size,
                                                      total_groups * group_size),
    )  # fmt: skip
    completion_ids = out.completions()
    texts = tok.decode_batch(completion_ids)
    scores, rewards = [], []
    for i, text in enumerate(texts):
        s = task.score(text, examples[i // group_size])
        scores.append(s)
        cut = out.finish_reasons[i] == "length"
        rewards.append(0.0 if (cut and truncated == "zero") else s["reward"])
    return Rollout(
        examples=examples, prompt_ids=prompt_ids, completion_ids=completion_ids, texts=texts,
        finish_reasons=out.finish_reasons, scores=scores,
        rewards=torch.tensor(rewards, dtype=torch.float32), group_size=group_size,
    )  # fmt: skip


def pack(ro: Rollout, pad_id: int, device: torch.device | str, truncated: str = "zero") -> Batch:
    """Tensors for the update. With truncated == "mask", cut-off completions get no loss.

    When the prompts start with the same tokens (the template's instructions),
    those k tokens fill columns [0, k) of every row and the rest of each prompt
    is left-padded after them: [common prefix | padding | rest | completion].
    """
    G = ro.group_size
    k = shared_prefix_len(ro.prompt_ids)
    prompts = [ro.prompt_ids[i // G][k:] for i in range(len(ro.completion_ids))]
    p_ids, p_mask = left_pad(prompts, pad_id, "cpu")
    if k:
        N = len(prompts)
        common = torch.as_tensor(ro.prompt_ids[0][:k], dtype=torch.long)
        p_ids = torch.cat([common.expand(N, k), p_ids], 1)
        p_mask = torch.cat([torch.ones(N, k, dtype=torch.bool), p_mask], 1)
    Tc = max(1, max(len(c) for c in ro.completion_ids))
    N = len(ro.completion_ids)
    c_ids = torch.full((N, Tc), pad_id, dtype=torch.long)
    c_mask = torch.zeros(N, Tc, dtype=torch.bool)
    for i, c in enumerate(ro.completion_ids):
        c_ids[i, : len(c)] = torch.as_tensor(c, dtype=torch.long)
        c_mask[i, : len(c)] = True
    loss_mask = c_mask.clone()
    if truncated == "mask":
        loss_mask[torch.tensor(ro.truncated, dtype=torch.bool)] = False
    return Batch(
        input_ids=torch.cat([p_ids, c_ids], 1).to(device),
        attention_mask=torch.cat([p_mask, c_mask], 1).to(device),
        completion_mask=loss_mask.to(device),
        prompt_len=p_ids.shape[1],
        group=(torch.arange(N) // G).to(device),
        shared_len=k,
    )


def completion_logprobs(
    model: Transformer, batch: Batch, rows: Tensor | slice, temperature: float = 1.0,
    backend: str = "auto", share_prompt: bool = True,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Per-token log-probs and entropies (n, Tc) fp32 of the completion tokens of `rows`.

    Uses the fused kernel on hidden states and the LM head weight, so the
    (tokens x V) logits are never materialised. Positions outside the
    completion mask are 0. Log-probs are of softmax(logits / temperature),
    the distribution the tokens were sampled from.

    share_prompt: run each distinct prompt among `rows` once and the
    completions on top of its keys and values (model.Prefix), instead of
    running every row's prompt again; the gradient of a shared prompt is the
    sum over its rows. The prompts' common prefix (batch.shared_len columns,
    see pack) runs once for all of them. Equal to the unshared path up to float round-off
    (tests/test_prefix_share.py); False is the unshared oracle.
    """
    P = batch.prompt_len
    attn = batch.attention_mask[rows]
    Tc = attn.shape[1] - P
    # Trim the columns past this micro-batch's longest completion.
    Tm = max(1, int(attn[:, P:].sum(1).max()))
    ids, attn = batch.input_ids[rows][:, : P + Tm], attn[:, : P + Tm]
    m = batch.completion_mask[rows][:, :Tm]
    if share_prompt and batch.group is not None:
        groups, inverse = torch.unique(batch.group[rows], return_inverse=True)
        # One row per distinct prompt: the first row of `rows` that has it.
        n = ids.shape[0]
        order = torch.arange(n, device=inverse.device)
        first = torch.full((len(groups),), n, dtype=torch.long, device=inverse.device)
        first = first.scatter_reduce(0, inverse, order, reduce="amin")
        k = batch.shared_len
        if k:  # the prompts' common prefix once, each distinct prompt's rest on top of it
            common = model.prefix_states(ids[:1, :k], attn[:1, :k])
            common = common.select(torch.zeros(len(groups), dtype=torch.long, device=ids.device))
            prefix = model.prefix_states(ids[first, k:P], attn[first, k:P], prefix=common)
        else:
            prefix = model.prefix_states(ids[first, :P], attn[first, :P])
        prefix = prefix.select(inverse)
        comp = model.hidden_states(ids[:, P:], attn[:, P:], prefix=prefix)  # (n, Tm, H)
        h = torch.cat([prefix.last[:, None], comp[:, :-1]], 1)  # (n, Tm, H)
    else:
        hidden = model.hidden_states(ids, attn)  # (n, P + Tm, H)
        h = hidden[:, P - 1 : -1]  # (n, Tm, H): the state before each completion token
    logp = torch.zeros(m.shape, dtype=torch.float32, device=h.device)
    ent = torch.zeros(m.shape, dtype=torch.float32, device=h.device)
    if m.any():
        w = model.head_weight
        lp, en = kernels.logprobs_and_entropy(
            h[m], w.to(h.dtype), ids[:, P:][m], temperature=temperature, backend=backend
        )
        logp = logp.masked_scatter(m, lp)
        ent = ent.masked_scatter(m, en)
    pad = (0, Tc - Tm)
    return torch.nn.functional.pad(logp, pad), torch.nn.functional.pad(ent, pad)
