"""Model configuration: one typed dataclass for every supported architecture.

Architecture differences between the families users run R1-Zero on are config
fields, not subclasses:

    family   model_type  qkv bias  q/k RMSNorm  rope scaling   tied embeddings
    Qwen2/2.5  qwen2       yes       no           none           0.5B-3B yes, 7B no
    Qwen3      qwen3       no*       yes          none           small ones yes
    Llama 3.x  llama       no*       no           llama3         3.2 yes, 3.1 no
    SmolLM2    llama       no        no           none           yes
    (* `attention_bias` in config.json can switch it on)

`ModelConfig.from_hf_config(path_or_dict)` reads a Hugging Face `config.json`;
`to_hf_config()` writes one that `transformers` loads. `PRESETS` holds tiny
configs for our own from-scratch models.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3", "llama")


class UnsupportedModelError(ValueError):
    """A checkpoint uses an architecture or feature this implementation lacks."""


@dataclass
class RopeScaling:
    """Llama 3.x frequency-dependent RoPE scaling ("llama3" rope_type)."""

    factor: float  # how much longer the target context is than the original
    low_freq_factor: float  # wavelengths above original/low_freq_factor are fully scaled
    high_freq_factor: float  # wavelengths below original/high_freq_factor are kept
    original_max_position_embeddings: int  # context length of pretraining


@dataclass
class ModelConfig:
    """Hyperparameters of a decoder-only transformer (HF names in comments)."""

    model_type: str = "qwen2"  # "qwen2" | "qwen3" | "llama": decides the config.json we write
    vocab_size: int = 512  # V: rows of the embedding and the LM head
    hidden_size: int = 128  # H: residual stream width
    intermediate_size: int = 384  # SwiGLU inner width
    num_layers: int = 4  # num_hidden_layers
    num_heads: int = 4  # num_attention_heads (query heads)
    num_kv_heads: int = 2  # num_key_value_heads (grouped-query attention when < num_heads)
    head_dim: int = 32  # per-head width; Qwen3 decouples it from hidden_size / num_heads
    rms_norm_eps: float = 1e-6  # epsilon inside every RMSNorm
    rope_theta: float = 10000.0  # RoPE base frequency
    rope_scaling: RopeScaling | None = None  # llama3-style scaling, or None
    max_position_embeddings: int = 2048  # longest sequence the positions are meant for
    tie_word_embeddings: bool = True  # LM head shares the embedding matrix
    attention_bias: bool = False  # bias on q/k/v projections (Qwen2: True); o_proj never has one
    qk_norm: bool = False  # RMSNorm on each head's q and k before RoPE (Qwen3)
    bos_token_id: int | None = None  # recorded for config.json; generation does not need it
    eos_token_id: int | list[int] | None = None  # end-of-sequence id(s) from config.json
    pad_token_id: int | None = None  # padding id, if the checkpoint names one
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # unused HF keys, kept

    def __post_init__(self) -> None:
        if isinstance(self.rope_scaling, dict):
            self.rope_scaling = RopeScaling(**self.rope_scaling)
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedModelError(
                f"model_type {self.model_type!r} is not supported; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")

    @property
    def num_params(self) -> int:
        """Parameter count (embedding counted once when tied)."""
        H, V, I, D = self.hidden_size, self.vocab_size, self.intermediate_size, self.head_dim
        q, kv = self.num_heads * D, self.num_kv_heads * D
        attn = H * q + 2 * H * kv + q * H
        if self.attention_bias:
            attn += q + 2 * kv
        norms = 2 * H + (2 * D if self.qk_norm else 0)
        per_layer = attn + 3 * H * I + norms
        head = 0 if self.tie_word_embeddings else V * H
        return V * H + self.num_layers * per_layer + H + head

    # ------------------------------------------------------------------ HF I/O
    @classmethod
    def from_hf_config(cls, config: str | Path | dict[str, Any]) -> ModelConfig:
        """Build from a Hugging Face `config.json` (a path, a directory holding it, or a dict)."""
        source = "config dict"
        if not isinstance(config, dict):
            path = Path(config)
            if path.is_dir():
                path = path / "config.json"
            source = str(path)
            if not path.is_file():
                raise FileNotFoundError(f"missing model config: {path} does not exist")
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON: {e}") from e
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not UTF-8 text: {e.reason} at byte {e.start}") from e
            except OSError as e:
                raise ValueError(f"{path} cannot be read: {e.strerror or e}") from e
        if not isinstance(config, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(config).__name__}")
        c = dict(config)
        model_type = c.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            arch = c.get("architectures")
            raise UnsupportedModelError(
                f"{source}: model_type {model_type!r} (architectures {arch}) is not supported; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )

        _check_types(c, source)

        def unsupported(feature: str) -> UnsupportedModelError:
            return UnsupportedModelError(f"{source}: {model_type} with {feature} is not supported")

        if c.get("hidden_act", "silu") != "silu":
            raise unsupported(f"hidden_act={c['hidden_act']!r} (only silu/SwiGLU)")
        if c.get("mlp_bias"):
            raise unsupported("mlp_bias=true")
        if c.get("use_sliding_window"):
            raise unsupported("use_sliding_window=true")
        layer_types = c.get("layer_types")
        if layer_types and any(t != "full_attention" for t in layer_types):
            raise unsupported(f"layer_types other than full_attention ({set(layer_types)})")
        if c.get("pretraining_tp", 1) != 1:
            raise unsupported(f"pretraining_tp={c['pretraining_tp']}")

        # transformers >= 5 nests rope settings in `rope_parameters`; older files
        # have top-level `rope_theta` and `rope_scaling`. Accept both.
        rope = dict(c.get("rope_parameters") or {})
        legacy = c.get("rope_scaling") or {}
        rope = {**legacy, **rope}
        theta = rope.get("rope_theta", c.get("rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        scaling = None
        if rope_type == "llama3":
            for key in ("factor", "low_freq_factor", "high_freq_factor",
                        "original_max_position_embeddings"):  # fmt: skip
                if key not in rope:
                    raise ValueError(f"{source}: llama3 rope scaling lacks {key!r}")
                if not _is_number(rope[key]) or not rope[key] > 0:
                    raise ValueError(f"{source}: rope scaling {key!r} must be a positive number, "
                                     f"got {rope[key]!r}")  # fmt: skip
            scaling = RopeScaling(
                factor=float(rope["factor"]),
                low_freq_factor=float(rope["low_freq_factor"]),
                high_freq_factor=float(rope["high_freq_factor"]),
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
            )
        elif rope_type != "default":
            raise unsupported(f"rope_type={rope_type!r} (supported: default, llama3)")

        required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads")  # fmt: skip
        for key in required:
            if c.get(key) is None:
                raise ValueError(f"{source}: required key {key!r} is missing")
        n_heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or c["hidden_size"] // n_heads
        if model_type == "qwen2":
            bias = True  # Qwen2 always has q/k/v biases; its config has no switch
        else:
            bias = bool(c.get("attention_bias", False))
        known = {
            "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
            "rope_theta", "rope_scaling", "rope_parameters", "max_position_embeddings",
            "tie_word_embeddings", "attention_bias", "bos_token_id", "eos_token_id",
            "pad_token_id",
        }  # fmt: skip
        return cls(
            model_type=model_type,
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            num_layers=c["num_hidden_layers"],
            num_heads=n_heads,
            num_kv_heads=c.get("num_key_value_heads") or n_heads,
            head_dim=head_dim,
            rms_norm_eps=c.get("rms_norm_eps") or 1e-6,
            rope_theta=float(theta),
            rope_scaling=scaling,
            max_position_embeddings=c.get("max_position_embeddings") or 2048,
            # Absent means untied for all three families (their HF defaults).
            tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
            attention_bias=bias,
            qk_norm=model_type == "qwen3",
            bos_token_id=c.get("bos_token_id"),
            eos_token_id=c.get("eos_token_id"),
            pad_token_id=c.get("pad_token_id"),
            extra={k: v for k, v in c.items() if k not in known},
        )

    def to_hf_config(self) -> dict[str, Any]:
        """A `config.json` dict that `transformers` (4.x and 5.x) loads as this model."""
        if self.model_type == "qwen2" and not self.attention_bias:
            raise UnsupportedModelError(
                "qwen2 always has qkv bias; use llama for a bias-free model"
            )
        if self.model_type == "llama" and self.qk_norm:
            raise UnsupportedModelError("llama has no q/k norm; use qwen3")
        if self.model_type == "qwen3" and not self.qk_norm:
            raise UnsupportedModelError("qwen3 always has q/k norm")
        arch = {
            "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM",
            "llama": "LlamaForCausalLM",
        }
        out: dict[str, Any] = {
            k: v
            for k, v in self.extra.items()
            if k not in ("transformers_version", "architectures")
        }
        out.update(
            architectures=[arch[self.model_type]],
            model_type=self.model_type,
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            hidden_act="silu",
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            rope_scaling=None,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=self.tie_word_embeddings,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )
        out.pop("rope_parameters", None)
        if self.rope_scaling is not None:
            out["rope_scaling"] = {"rope_type": "llama3", **asdict(self.rope_scaling)}
        if self.model_type != "qwen2":
            out["attention_bias"] = self.attention_bias
        if self.model_type in ("qwen2", "qwen3"):
            out.setdefault("use_sliding_window", False)
            out.setdefault("max_window_layers", self.num_layers)
            out.pop("layer_types", None)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"} | {
            "rope_scaling": asdict(self.rope_scaling) if self.rope_scaling else None
        }

    def with_(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


# Types of the config.json keys we read; a wrong one is named before it can fail
# deep inside the model ("hidden_size": "128" would be a TypeError in nn.Linear).
_POSITIVE_INT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "num_key_value_heads", "head_dim",
                      "max_position_embeddings")  # fmt: skip
_POSITIVE_FLOAT_KEYS = ("rms_norm_eps", "rope_theta")
_BOOL_KEYS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window")
_TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_types(c: dict[str, Any], source: str) -> None:
    """ValueError naming the file and the key for a value of the wrong type (null = absent)."""

    def bad(key: str, want: str) -> ValueError:
        return ValueError(f"{source}: {key!r} must be {want}, got {c[key]!r}")

    for key in _POSITIVE_INT_KEYS:
        v = c.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise bad(key, "a positive integer")
    for key in _POSITIVE_FLOAT_KEYS:
        v = c.get(key)
        if v is not None and not (_is_number(v) and v > 0):
            raise bad(key, "a positive number")
    for key in _BOOL_KEYS:
        v = c.get(key)
        if v is not None and not (isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))):
            raise bad(key, "true or false")
    for key in _TOKEN_ID_KEYS:
        v = c.get(key)
        ids = v if isinstance(v, list) and key == "eos_token_id" else [v]
        if v is not None and not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
        ):
            raise bad(key, "a token id (an integer >= 0)" + (" or a list of them"
                           if key == "eos_token_id" else ""))  # fmt: skip
    for key in ("rope_parameters", "rope_scaling"):
        if c.get(key) is not None and not isinstance(c[key], dict):
            raise bad(key, "an object")
    for key in ("hidden_act", "model_type"):
        if c.get(key) is not None and not isinstance(c[key], str):
            raise bad(key, "a string")
    layer_types = c.get("layer_types")
    if layer_types is not None and not (
        isinstance(layer_types, list) and all(isinstance(t, str) for t in layer_types)
    ):
        raise bad("layer_types", "a list of strings")


# Tiny configs for our own from-scratch models (vocab_size is set from the tokenizer).
PRESETS: dict[str, ModelConfig] = {
    # ~0.5M parameters: unit tests and smoke runs.
    "tiny": ModelConfig(
        model_type="llama", vocab_size=512, hidden_size=64, intermediate_size=192,
        num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, max_position_embeddings=1024,
    ),
    # ~2M parameters: the built-in CPU demo's base model.
    "demo": ModelConfig(
        model_type="llama", vocab_size=512, hidden_size=192, intermediate_size=512,
        num_layers=4, num_heads=6, num_kv_heads=2, head_dim=32, max_position_embeddings=1024,
    ),
    # ~30M parameters: the GPU preset (countdown from scratch).
    "small": ModelConfig(
        model_type="llama", vocab_size=2048, hidden_size=512, intermediate_size=1536,
        num_layers=8, num_heads=8, num_kv_heads=4, head_dim=64, max_position_embeddings=2048,
    ),
}  # fmt: skip
