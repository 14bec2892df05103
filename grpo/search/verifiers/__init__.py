"""Learned verifiers for test-time search: outcome (ORM) and process (PRM) reward models.

    from grpo.search.verifiers import Verifier, verifier_loss, label_positions
    v = Verifier.from_policy(policy, kind="orm")     # the policy's weights + a scalar head
    logits = v(ids, mask)                            # (B, T): one logit of P(correct) per token
    loss = verifier_loss(logits, labels, label_mask) # BCE at the labelled tokens only

See grpo/search/verifiers/model.py.
"""

# `python -m grpo.search.verifiers train` imports this package, and torch with it, before its
# __main__ runs: the CPU settings must be made here, before torch loads.
from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

from grpo.search.verifiers.model import Verifier, label_positions, verifier_loss  # noqa: E402

__all__ = ["Verifier", "label_positions", "verifier_loss"]
