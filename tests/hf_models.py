"""Tiny random Hugging Face checkpoints for parity tests (no downloads).

Each builder returns a `transformers` model in fp32 with weights drawn at a
scale large enough that logits differ visibly between positions (HF's default
init at std 0.02 gives near-constant logits, which would hide bugs). Norm
weights and biases are randomised too, so a missing bias or a norm applied in
the wrong place changes the result.
"""

from __future__ import annotations

import torch

VOCAB = 211  # deliberately not a power of two


def _randomise(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def hf_model(kind: str, seed: int = 0):
    """kind: qwen2_tied, qwen2_untied, qwen3, llama3 (llama with llama3 rope scaling)."""
    from grpo.run.imports import import_transformers

    tf = import_transformers()  # beside our kernels/: see grpo/run/imports.py

    common = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, eos_token_id=VOCAB - 1, bos_token_id=VOCAB - 2,
    )  # fmt: skip
    if kind == "qwen2_tied":
        cfg = tf.Qwen2Config(**common, tie_word_embeddings=True, rope_theta=10000.0)
        cls = tf.Qwen2ForCausalLM
    elif kind == "qwen2_untied":
        cfg = tf.Qwen2Config(**common, tie_word_embeddings=False, rope_theta=1e6)
        cls = tf.Qwen2ForCausalLM
    elif kind == "qwen3":
        cfg = tf.Qwen3Config(**common, head_dim=24, tie_word_embeddings=True, rope_theta=1e6)
        cls = tf.Qwen3ForCausalLM
    elif kind == "llama3":
        cfg = tf.LlamaConfig(
            **common, tie_word_embeddings=False, rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
            },
        )  # fmt: skip
        cls = tf.LlamaForCausalLM
    else:
        raise ValueError(kind)
    torch.manual_seed(seed)
    model = cls(cfg).float().eval()
    _randomise(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model


KINDS = ["qwen2_tied", "qwen2_untied", "qwen3", "llama3"]
