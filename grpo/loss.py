"""GRPO policy loss: clipped surrogate, k3 KL penalty, and loss aggregation.

Per completion token (GRPO, Shao et al. 2024), with A_i the group advantage of completion i:

    ratio_{i,t} = exp(logp_theta - logp_old)
    pg_{i,t}    = -min(ratio * A_i, clip(ratio, 1 - eps_low, 1 + eps_high) * A_i)
    kl_{i,t}    = exp(d) - d - 1,   d = logp_ref - logp_theta            (k3 estimator)
    l_{i,t}     = pg_{i,t} + beta * kl_{i,t} - entropy_coef * entropy_{i,t}

The batch loss is sum_{i,t} w_{i,t} * l_{i,t}, and the aggregation chooses w
(m = completion mask, N = sequences in the optimizer-step batch,
L_i = sum_t m_{i,t} the length of completion i):

    aggregation        w_{i,t}                   known bias
    grpo (seq-mean)    m / (N * L_i)             a token weighs 1/L_i: long wrong answers are
                                                 punished less per token, short right ones are
                                                 rewarded more, so the policy drifts short
    dapo (token-mean)  m / sum_{j,s} m_{j,s}     every token of a batch weighs the same; the
                                                 normaliser still moves with the batch's total
                                                 length from step to step
    dr_grpo            m / (N * max_new_tokens)  constant normaliser, no length bias; pair with
                                                 scale_by_std=False; the gradient shrinks when
                                                 completions are far shorter than the budget

Shapes: N sequences in the whole optimizer-step batch, n rows of one micro-batch,
T completion time steps.

Typical step (the caller owns the model):

    w = token_weights(mask, cfg.aggregation, cfg.max_new_tokens)    # (N, T), whole batch
    all_sums = []
    for rows in micro_batches:
        logp = policy_logprobs(rows)                                # (n, T), with grad
        loss, sums = grpo_loss(logp, old_logp[rows], ref_logp[rows], adv[rows],
                               w[rows], mask[rows], cfg)
        loss.backward()                                             # no division
        all_sums.append(sums)
    metrics = finalize_metrics({k: sum(s[k] for s in all_sums) for k in all_sums[0]})

Tests: python -m pytest -q tests/test_loss.py
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

AGGREGATIONS = ("grpo", "dapo", "dr_grpo")

# |d| = 20 is already a factor e^20 between policy and reference probabilities.
_KL_D_MAX = 20.0
# Below this |d| the k3 KL uses its Taylor series (see k3_kl).
_KL_SERIES_BELOW = 0.1


@dataclass
class LossConfig:
    aggregation: str = "dapo"  # one of AGGREGATIONS, see the table above
    eps_low: float = 0.2  # clip ratio from below at 1 - eps_low
    eps_high: float = 0.2  # clip ratio from above at 1 + eps_high (DAPO clip-higher: 0.28)
    beta: float = 0.0  # k3 KL coefficient; 0 means no reference model at all
    entropy_coef: float = 0.0  # entropy bonus: l -= entropy_coef * entropy per token
    max_new_tokens: int | None = None  # generation budget; dr_grpo's constant normaliser

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"unknown aggregation {self.aggregation!r}; valid: {', '.join(AGGREGATIONS)}"
            )
        if self.eps_low < 0 or self.eps_high < 0:
            raise ValueError(
                f"clip eps must be >= 0, got eps_low={self.eps_low}, eps_high={self.eps_high}"
            )
        if self.beta < 0:
            raise ValueError(f"beta (KL coefficient) must be >= 0, got {self.beta}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.aggregation == "dr_grpo" and self.max_new_tokens is None:
            raise ValueError("aggregation 'dr_grpo' needs max_new_tokens (its normaliser)")


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Elementwise k3 estimate of KL(pi_theta || pi_ref): exp(d) - d - 1 >= 0, d = ref - logp."""
    # exp overflows fp32 above d ~ 88, and a backward through inf gives nan even where the
    # value is later discarded. A healthy run never comes near |d| = 20, so clamping there
    # only keeps garbage tokens finite (the KL gradient is zero beyond the clamp).
    d = (ref_logp - logp).clamp(-_KL_D_MAX, _KL_D_MAX)
    # exp(d) - 1 - d cancels for small d: in fp32 exp(1e-4) - 1 is off by ~6e-8 against a
    # KL of 5e-9. expm1 removes the first cancellation, but expm1(d) - d still loses all
    # digits below |d| ~ 1e-4, so small |d| uses the series d^2/2 + d^3/6 + ... + d^6/720
    # (truncation error < 1e-8 relative at |d| = 0.1; both branches are finite).
    series = d * d * (1 / 2 + d * (1 / 6 + d * (1 / 24 + d * (1 / 120 + d / 720))))
    return torch.where(d.abs() < _KL_SERIES_BELOW, series, torch.expm1(d) - d)


def clipped_surrogate(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token PPO clipped surrogate loss pg (N, T) and the masks where clipping acts.

    advantages is (N,) (one per completion, broadcast over T) or (N, T).
    clipped_low = (ratio < 1 - eps_low) & (A < 0), clipped_high = (ratio > 1 + eps_high) & (A > 0):
    there min() picks the clipped, constant term and the token's gradient is exactly zero.
    """
    if logp.dim() != 2 or old_logp.shape != logp.shape:
        raise ValueError(
            f"logp and old_logp must both be (N, T), got {tuple(logp.shape)} "
            f"and {tuple(old_logp.shape)}"
        )
    if advantages.shape == logp.shape[:1]:
        advantages = advantages.unsqueeze(-1)  # (N, 1), broadcast over T
    elif advantages.shape != logp.shape:
        raise ValueError(
            f"advantages must be (N,) or (N, T) = {tuple(logp.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    # With one optimizer step per rollout batch (mu = 1, one mini-batch), pi_theta == pi_old
    # when the loss is taken, so ratio == 1 and clipping never acts: the update is REINFORCE
    # with a group baseline. Clipping only matters with mu > 1 inner updates or several
    # mini-batches, where later steps see a policy that has already moved.
    ratio = torch.exp(logp - old_logp)
    clipped_ratio = ratio.clamp(1 - eps_low, 1 + eps_high)
    pg = -torch.minimum(ratio * advantages, clipped_ratio * advantages)
    clipped_low = (ratio < 1 - eps_low) & (advantages < 0)
    clipped_high = (ratio > 1 + eps_high) & (advantages > 0)
    return pg, clipped_low, clipped_high


def token_weights(mask: Tensor, aggregation: str, max_new_tokens: int | None = None) -> Tensor:
    """Per-token loss weights w (N, T) fp32 for the WHOLE optimizer-step batch.

    mask (N, T) is the completion mask (bool or 0/1). A row with no completion tokens
    gets weight 0 but still counts in N for grpo and dr_grpo (as in TRL), so masking
    a completion out (e.g. a truncated one) does not enlarge the others' weights.
    """
    # THE loss normalisation of this project: loss = sum_{i,t} w_{i,t} * l_{i,t}, with w
    # computed once, here, from the mask of the whole optimizer-step batch, and no further
    # division anywhere. A micro-batch takes its rows of w, so summing each micro-batch's
    # sum(w * l) during gradient accumulation (no division by the number of micro-batches)
    # gives exactly the full-batch loss and gradient, whatever the micro-batch sizes and
    # lengths. Normalising inside each micro-batch instead would weight a token by the
    # micro-batch it happened to land in. tests/test_loss.py checks both.
    if mask.dim() != 2:
        raise ValueError(f"mask must be (N, T), got shape {tuple(mask.shape)}")
    m = mask.bool().float()  # (N, T)
    n = m.shape[0]
    if aggregation == "grpo":
        lengths = m.sum(dim=1, keepdim=True).clamp(min=1.0)  # (N, 1); empty rows: w = 0
        return m / (lengths * n)
    if aggregation == "dapo":
        return m / m.sum().clamp(min=1.0)
    if aggregation == "dr_grpo":
        if max_new_tokens is None or max_new_tokens < 1:
            raise ValueError(f"dr_grpo needs max_new_tokens >= 1, got {max_new_tokens}")
        longest = int(m.sum(dim=1).max()) if n else 0
        if longest > max_new_tokens:
            raise ValueError(
                f"a completion has {longest} tokens > max_new_tokens={max_new_tokens}; "
                "dr_grpo's normaliser would be wrong"
            )
        return m / (n * max_new_tokens)
    raise ValueError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    advantages: Tensor,
    weights: Tensor,
    mask: Tensor,
    cfg: LossConfig,
    entropy: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Loss of one micro-batch, sum(w * l), and detached metric sums over its masked tokens.

    logp (n, T): current per-token log-probs of the completion tokens (requires grad).
    old_logp (n, T) or None: pi_old log-probs; None means on-policy (ratio == 1 exactly).
    ref_logp (n, T) or None: reference log-probs, required iff cfg.beta > 0.
    advantages (n,) or (n, T); weights (n, T): this micro-batch's rows of token_weights();
    mask (n, T); entropy (n, T) or None, required iff cfg.entropy_coef != 0 (may carry grad).

    Metric sums (add them over micro-batches, then call finalize_metrics): tokens,
    clipped_low, clipped_high, kl (sum of k3; 0 without ref_logp), ratio, pg_loss
    (sum(w * pg), already normalised), and entropy when given.
    """
    if logp.dim() != 2:
        raise ValueError(f"logp must be (n, T), got shape {tuple(logp.shape)}")
    for name, t in (
        ("old_logp", old_logp),
        ("ref_logp", ref_logp),
        ("weights", weights),
        ("mask", mask),
        ("entropy", entropy),
    ):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"{name} must match logp {tuple(logp.shape)}, got {tuple(t.shape)}")
    if advantages.shape not in (logp.shape[:1], logp.shape):
        raise ValueError(
            f"advantages must be (n,) or (n, T) for logp {tuple(logp.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    if cfg.beta > 0 and ref_logp is None:
        raise ValueError(f"beta={cfg.beta} > 0 needs ref_logp (the reference model's log-probs)")
    if cfg.entropy_coef != 0 and entropy is None:
        raise ValueError(f"entropy_coef={cfg.entropy_coef} needs the per-token entropy")

    m = mask.bool()
    # Padding may hold garbage (inf/nan log-probs). Replace it before any arithmetic:
    # masking only the result is not enough, since backward through exp(inf) computes
    # 0 * inf = nan even for a value the forward pass discarded.
    logp = torch.where(m, logp, 0.0)
    # pi_old and pi_ref are constants of the update; detach so no gradient can leak in.
    old = logp.detach() if old_logp is None else torch.where(m, old_logp.detach(), 0.0)
    pg, clipped_low, clipped_high = clipped_surrogate(
        logp, old, advantages, cfg.eps_low, cfg.eps_high
    )
    per_token = pg
    kl = torch.zeros_like(pg)
    if ref_logp is not None:
        # Without beta the KL is only a metric, so keep it off the graph.
        kl = k3_kl(logp if cfg.beta > 0 else logp.detach(), torch.where(m, ref_logp.detach(), 0.0))
        if cfg.beta > 0:
            per_token = per_token + cfg.beta * kl
    if entropy is not None:
        entropy = torch.where(m, entropy, 0.0)
        if cfg.entropy_coef != 0:
            per_token = per_token - cfg.entropy_coef * entropy
    weighted = torch.where(m, weights * per_token, 0.0)  # masked tokens contribute exactly 0
    loss = weighted.sum()

    with torch.no_grad():
        ratio = torch.exp(logp - old)
        sums = {
            "tokens": m.sum(),
            "clipped_low": (clipped_low & m).sum(),
            "clipped_high": (clipped_high & m).sum(),
            "kl": torch.where(m, kl, 0.0).sum(),
            "ratio": torch.where(m, ratio, 0.0).sum(),
            "pg_loss": torch.where(m, weights * pg, 0.0).sum(),
        }
        if entropy is not None:
            sums["entropy"] = entropy.sum()
    return loss, sums


def finalize_metrics(sums: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Turn metric sums (added over all micro-batches of a step) into per-token means.

    pg_loss is already normalised by the token weights, so it is passed through as is.
    kl, entropy and ratio_mean are token means whatever the loss aggregation.
    """
    tokens = float(sums["tokens"])
    denom = max(tokens, 1.0)
    low, high = float(sums["clipped_low"]), float(sums["clipped_high"])
    out = {
        "tokens": tokens,
        "clip_frac_low": low / denom,
        "clip_frac_high": high / denom,
        "clip_frac": (low + high) / denom,  # disjoint: A < 0 vs A > 0
        "kl": float(sums["kl"]) / denom,
        "ratio_mean": float(sums["ratio"]) / denom,
        "pg_loss": float(sums["pg_loss"]),
    }
    if "entropy" in sums:
        out["entropy"] = float(sums["entropy"]) / denom
    return out
