"""Fused kernels for GRPO training, each with a pure-PyTorch twin used on CPU and as test oracle.

    from kernels import logprobs_and_entropy, logprobs_and_entropy_from_logits

Importing this package never imports Triton; the Triton kernels load on first use.
"""

from kernels.logprobs import logprobs_and_entropy, logprobs_and_entropy_from_logits

__all__ = ["logprobs_and_entropy", "logprobs_and_entropy_from_logits"]
