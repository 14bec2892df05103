"""The model package: config, transformer, checkpoint I/O, tokenizer, sampler.

    from model import load_pretrained
    m = load_pretrained("path/to/checkpoint", device="cpu", dtype=torch.float32)
    logits = m(input_ids)                       # (B, T) -> (B, T, V)
"""

from model.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    load_pretrained,
    save_pretrained,
)
from model.config import PRESETS, ModelConfig, UnsupportedModelError
from model.generate import GenerationOutput, generate
from model.tokenizer import Tokenizer, train_bpe_tokenizer
from model.transformer import KVCache, Transformer

__all__ = [
    "PRESETS",
    "CheckpointError",
    "CheckpointWriteError",
    "GenerationOutput",
    "KVCache",
    "ModelConfig",
    "Tokenizer",
    "Transformer",
    "UnsupportedModelError",
    "generate",
    "load_pretrained",
    "save_pretrained",
    "train_bpe_tokenizer",
]
