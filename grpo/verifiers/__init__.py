"""Learned verifiers for test-time search: outcome (ORM) and process (PRM) reward models.

    from grpo.verifiers import Verifier, verifier_loss, label_positions
    v = Verifier.from_policy(policy, kind="orm")     # the policy's weights + a scalar head
    logits = v(ids, mask)                            # (B, T): one logit of P(correct) per token
    loss = verifier_loss(logits, labels, label_mask) # BCE at the labelled tokens only

See grpo/verifiers/model.py.
"""

# `python -m grpo.verifiers train` imports this package, and torch with it, before its
# __main__ runs: the CPU settings must be made here, before torch loads.
from grpo.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/cpu_env.py

from grpo.verifiers.model import Verifier, label_positions, verifier_loss  # noqa: E402

__all__ = ["Verifier", "label_positions", "verifier_loss"]
