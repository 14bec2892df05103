"""Token-level distillation: the student learns the teacher's next-token distribution.

Per completion token, with s and t the student's and the teacher's logits over the same
vocabulary, divided by the temperature T, and p_S = softmax(s), p_T = softmax(t):

    beta = 0      forward KL   KL(p_T || p_S) = sum_v p_T (log p_T - log p_S)
                  on teacher-generated sequences: the reference's distillation, and
                  Hinton et al.'s with a temperature
    beta = 1      reverse KL   KL(p_S || p_T) = sum_v p_S (log p_S - log p_T)
                  on the student's own samples: on-policy distillation (GKD, the Qwen3
                  report's strong-to-weak distillation); mode-seeking
    0 < beta < 1  generalized Jensen-Shannon, with the mixture M = beta p_T + (1-beta) p_S:
                  JSD_beta = beta KL(p_T || M) + (1 - beta) KL(p_S || M)

The loss is the mean of the per-token divergence over the completion tokens of a batch
(`distill_loss`; the weights of `grpo.loss.token_weights(mask, "dapo")`).

The names are those of TRL's GKDTrainer (GKDConfig): `beta`, `temperature`, `lmbda` (the
fraction of a batch's sequences the student samples itself; the rest come from the data,
or from the teacher with `seq_kd`), `seq_kd`. Where the definitions differ:
- TRL draws one coin per batch, on-policy with probability lmbda; `on_policy_rows` makes
  round(lmbda * n) of the n sequences of every batch on-policy, so every batch mixes the
  two in the same proportion and a run is reproducible from its seed alone.
- Like TRL, no T^2 factor multiplies the divergence (Hinton et al. use one to keep the
  gradient's scale as T changes): set the learning rate for the temperature you use.
- JSD_beta tends to 0, not to a KL, as beta tends to 0 or 1: near the ends it is about
  beta KL(p_T || p_S) and (1 - beta) KL(p_S || p_T). beta = 0 and beta = 1 are therefore
  special cases, the two KLs exactly, as in TRL.

kernels/distill_torch.py computes the same divergences from the two models' hidden states
and LM heads, chunk by chunk, with the gradient in closed form, so that the (N, V) logits of
neither model exist; these functions, on materialised logits, are its reference.

Tests: python -m pytest -q tests/test_distill_loss.py
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kernels.distill_torch import check_settings, divergence_and_grad


class VocabularyMismatch(ValueError):
    """Teacher and student do not score the same tokens: no divergence between them exists."""


def check_vocabularies(student_vocab: int, teacher_vocab: int, student_tok=None,
                       teacher_tok=None) -> None:  # fmt: skip
    """Refuse, in one line, a teacher and a student that do not share their vocabulary.

    The sizes of the two LM heads must be equal, and, given the tokenizers, every token must
    have the same id in both (a same-size vocabulary of different tokens is a mismatch too).
    The tokenizers are model.Tokenizer objects.
    """
    if student_vocab != teacher_vocab:
        raise VocabularyMismatch(
            f"the student's vocabulary has {student_vocab} tokens and the teacher's "
            f"{teacher_vocab}: token-level distillation needs one vocabulary for both"
        )
    if student_tok is not None and teacher_tok is not None:
        s = student_tok.tok.get_vocab(with_added_tokens=True)  # model.Tokenizer's
        t = teacher_tok.tok.get_vocab(with_added_tokens=True)
        if s != t:
            differ = sorted(set(s.items()) ^ set(t.items()), key=lambda kv: kv[1])
            token, idx = differ[0]
            raise VocabularyMismatch(
                f"the student's and the teacher's tokenizers differ ({len(differ)} "
                f"token-id pairs, e.g. {token!r} -> {idx} in one only): token-level "
                "distillation needs one vocabulary for both"
            )


def divergence(student_logits: Tensor, teacher_logits: Tensor, beta: float = 0.0,
               temperature: float = 1.0) -> Tensor:  # fmt: skip
    """The per-token divergence (..., V) x (..., V) -> (...), computed in fp32 or wider
    (fp64 stays fp64: the tests' oracle), differentiable by autograd.

    beta = 0 forward KL, beta = 1 reverse KL, between them JSD_beta (module docstring).
    The formula is the fused kernel's (kernels.distill_torch.divergence_and_grad), here
    on logits that exist.
    """
    check_settings(beta, temperature)
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise VocabularyMismatch(
            f"student logits over {student_logits.shape[-1]} tokens, teacher logits over "
            f"{teacher_logits.shape[-1]}: token-level distillation needs one vocabulary"
        )
    dtype = torch.promote_types(torch.promote_types(student_logits.dtype, teacher_logits.dtype),
                                torch.float32)  # fmt: skip
    d, _ = divergence_and_grad(student_logits.to(dtype) / temperature,
                               teacher_logits.to(dtype) / temperature, beta, need_grad=False)
    return d


def forward_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(p_T || p_S) per token: distillation on the teacher's sequences."""
    return divergence(student_logits, teacher_logits, 0.0, temperature)


def reverse_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(p_S || p_T) per token: on-policy distillation on the student's own samples."""
    return divergence(student_logits, teacher_logits, 1.0, temperature)


def distill_loss(student_logits: Tensor, teacher_logits: Tensor, mask: Tensor,
                 beta: float = 0.0, temperature: float = 1.0) -> Tensor:  # fmt: skip
    """Mean per-token divergence over the completion tokens: logits (N, T, V), mask (N, T).

    A batch without completion tokens gives 0 (with a gradient of zeros).
    """
    per_token = divergence(student_logits, teacher_logits, beta, temperature)
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1.0)


def on_policy_rows(n: int, lmbda: float, generator: torch.Generator | None = None) -> Tensor:
    """Which of a batch's n sequences the student samples itself: round(lmbda * n) of them,
    chosen at random (bool (n,)). lmbda = 0: none (off-policy, from data or teacher);
    lmbda = 1: all (on-policy distillation)."""
    if not 0.0 <= lmbda <= 1.0:
        raise ValueError(f"lmbda must be in [0, 1], got {lmbda}")
    k = int(math.floor(lmbda * n + 0.5))
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[torch.randperm(n, generator=generator)[:k]] = True
    return chosen
