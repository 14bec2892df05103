"""The SFT losses: the completion tokens' negative log-likelihood, or their divergence from a
teacher's next-token distributions (token-level distillation); prompt tokens masked.

    nll_sum, n = completion_nll(model, batch)     # summed over the batch's completion tokens
    (nll_sum / tokens_in_step).backward()         # a token mean over the whole optimizer step

Position t - 1's hidden state predicts token t; only the tokens of
`batch.target_mask` (each completion and its end-of-sequence token) are
predicted. The prompt is context: its tokens are never targets, so its
log-likelihood contributes nothing, though the gradient flows into the
prompt's hidden states through attention. The head is the fused log-prob
kernel (kernels/), so no (tokens x vocabulary) logits tensor is built.

The trainer divides each micro-batch's sum by the completion tokens of the
whole optimizer step, so the gradient is the token mean of the step however
it is cut (tests/test_sft.py checks it against a hand computation).

    d_sum, n = completion_divergence(student, teacher, batch, beta, temperature)

is the same with the per-token divergence of grpo/experiments/distill_loss.py in place of
-log p: both models read the same tokens, and the fused kernel (kernels.fused_linear_divergence)
compares their distributions from their hidden states and heads. The teacher runs without
gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

import kernels
from grpo.experiments.sft.data import SFTBatch


def completion_nll(model, batch: SFTBatch, backend: str = "auto") -> tuple[Tensor, int]:
    """(sum of -log p over the completion tokens, their count)."""
    hidden = model.hidden_states(batch.input_ids, batch.attention_mask)  # (B, T, H)
    m = batch.target_mask[:, 1:]  # targets: tokens 1..T-1, predicted from positions 0..T-2
    n = int(m.sum())
    if n == 0:
        return hidden.sum() * 0.0, 0
    h = hidden[:, :-1][m]
    targets = batch.input_ids[:, 1:][m]
    w = model.head_weight
    logp, _ = kernels.logprobs_and_entropy(h, w.to(h.dtype), targets, backend=backend)
    return -logp.sum(), n



def completion_divergence(student, teacher, batch: SFTBatch, beta: float = 0.0,
                          temperature: float = 1.0,
                          backend: str = "auto") -> tuple[Tensor, int]:  # fmt: skip
    """(sum of the per-token divergence over the completion tokens, their count)."""
    hidden = student.hidden_states(batch.input_ids, batch.attention_mask)  # (B, T, H)
    m = batch.target_mask[:, 1:]
    n = int(m.sum())
    if n == 0:
        return hidden.sum() * 0.0, 0
    with torch.no_grad():
        h_t = teacher.hidden_states(batch.input_ids, batch.attention_mask)[:, :-1][m]
    h_s = hidden[:, :-1][m]
    w_s, w_t = student.head_weight, teacher.head_weight
    ones = torch.ones(n, device=h_s.device)
    loss = kernels.fused_linear_divergence(h_s, w_s.to(h_s.dtype), h_t, w_t.to(h_t.dtype), ones,
                                           beta, temperature, backend=backend)  # fmt: skip
    return loss, n
