"""Fused kernels for GRPO training, each with a pure-PyTorch twin used on CPU and as test oracle.

    from kernels import logprobs_and_entropy, logprobs_and_entropy_from_logits
    from kernels import fused_linear_divergence    # distillation: teacher vs. student

The distillation loss has its PyTorch twin only (kernels/distill_torch.py); its Triton
kernel is not written yet.

Importing this package never imports Triton; the Triton kernels load on first use.
"""

from kernels.distill_torch import fused_linear_divergence
from kernels.logprobs import logprobs_and_entropy, logprobs_and_entropy_from_logits

__all__ = ["fused_linear_divergence", "logprobs_and_entropy", "logprobs_and_entropy_from_logits"]
