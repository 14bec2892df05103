"""Fused kernels for GRPO training, each with a pure-PyTorch twin used on CPU and as test oracle.

    from kernels import logprobs_and_entropy, logprobs_and_entropy_from_logits
    from kernels import fused_linear_divergence    # distillation: teacher vs. student

Each has a Triton kernel (kernels/logprob_triton.py, kernels/distill_triton.py) and a
PyTorch twin (kernels/logprob_torch.py, kernels/distill_torch.py); backend="auto" picks.

Importing this package never imports Triton; the Triton kernels load on first use.
"""

from kernels.distill import fused_linear_divergence
from kernels.logprobs import logprobs_and_entropy, logprobs_and_entropy_from_logits

__all__ = ["fused_linear_divergence", "logprobs_and_entropy", "logprobs_and_entropy_from_logits"]
