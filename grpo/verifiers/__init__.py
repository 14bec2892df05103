"""Learned verifiers for test-time search: outcome (ORM) and process (PRM) reward models.

    from grpo.verifiers import Verifier, verifier_loss, label_positions
    v = Verifier.from_policy(policy, kind="orm")     # the policy's weights + a scalar head
    logits = v(ids, mask)                            # (B, T): one logit of P(correct) per token
    loss = verifier_loss(logits, labels, label_mask) # BCE at the labelled tokens only

See grpo/verifiers/model.py (BEYOND_ZERO.md section 2).
"""

import os

# `python -m grpo.verifiers train` imports this package, and torch with it, before its
# __main__ runs: set what train_zero.py sets before torch loads (reproducible CPU
# numerics, sleeping idle OpenMP threads). No effect once torch is loaded.
os.environ.setdefault("MKL_CBWR", "AUTO")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from grpo.verifiers.model import Verifier, label_positions, verifier_loss  # noqa: E402

__all__ = ["Verifier", "label_positions", "verifier_loss"]
