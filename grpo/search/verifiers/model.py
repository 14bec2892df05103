"""A verifier is our transformer with a scalar head (an ORM or a PRM).

    ORM  r(q, o) = P(the final answer is correct), read at the completion's last token.
    PRM  s_k = P(the solution can still be completed correctly | q, steps 1..k), read at
         the last token of step k.

Both share one model: a linear head on the final hidden state gives one logit
per token, and training puts a binary cross-entropy on the labelled tokens
only (the last token for an ORM, every step's last token for a PRM):

    loss = sum_{b,t} m_{b,t} w_{b,t} BCE(sigmoid(z_{b,t}), y_{b,t}) / sum_{b,t} m_{b,t} w_{b,t}
    w_{b,t} = pos_weight if y_{b,t} = 1 else 1     (a balanced loss when correct labels are rare)

Labels may be soft (the fraction of Monte Carlo rollouts that succeed, Math-Shepherd's
soft estimate). Shapes: B sequences, T tokens, H hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model import Tokenizer, Transformer

KINDS = ("orm", "prm")


class Verifier(nn.Module):
    def __init__(self, backbone: Transformer, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown verifier kind {kind!r}; valid: {', '.join(KINDS)}")
        self.kind = kind
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # starts at P = 0.5 everywhere
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy: Transformer, kind: str) -> Verifier:
        """A verifier initialised from a copy of the policy's weights."""
        backbone = Transformer(policy.config)
        backbone.load_state_dict(policy.state_dict())
        return cls(backbone.to(next(policy.parameters()).device), kind)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Logits (B, T) fp32: the verifier's score at every token (read where labelled)."""
        h = self.backbone.hidden_states(input_ids, attention_mask)
        return self.head(h).squeeze(-1).float()


def verifier_loss(
    logits: Tensor, labels: Tensor, label_mask: Tensor, pos_weight: float = 1.0
) -> Tensor:
    """Mean binary cross-entropy over the labelled tokens (see the module docstring)."""
    if logits.shape != labels.shape or logits.shape != label_mask.shape:
        raise ValueError(f"shapes differ: logits {tuple(logits.shape)}, labels "
                         f"{tuple(labels.shape)}, mask {tuple(label_mask.shape)}")  # fmt: skip
    m = label_mask.to(logits.dtype)
    w = m * torch.where(labels >= 0.5, pos_weight, 1.0)
    bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return (w * bce).sum() / w.sum().clamp(min=1e-12)


def label_positions(
    tok: Tokenizer, prompt: str, steps: Sequence[str]
) -> tuple[list[int], list[int]]:
    """(token ids of prompt + all steps, index of the token that holds each step's last
    character). The text is tokenised once, whole, as the verifier will read it; a
    token that straddles two steps (rare: steps end with a delimiter) is read for
    the earlier one."""
    enc = tok.tok.encode(prompt + "".join(steps), add_special_tokens=False)
    ends, t, last = [], 0, len(prompt) - 1
    for step in steps:
        if not step:
            raise ValueError("empty step")
        last += len(step)  # the character index of the step's last character
        while enc.offsets[t][1] <= last:  # the token holding `last` ends after it
            t += 1
        ends.append(t)
    return list(enc.ids), ends
