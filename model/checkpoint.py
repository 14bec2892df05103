"""Checkpoint I/O in Hugging Face layout: `config.json` + safetensors (+ tokenizer files).

    model = load_pretrained("path/to/Qwen2.5-0.5B", device="cuda", dtype=torch.bfloat16)
    save_pretrained(model, "out/", tokenizer=tok)      # transformers can load "out/"

Loading builds the module on the meta device (no memory, no random init), reads
each tensor from its safetensors file straight into the requested dtype and
device, checks names and shapes, then assigns. Every problem raises
`CheckpointError` naming the file and the tensor. Writes are atomic: each file
goes to a temporary name in the same folder and is renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from model.config import ModelConfig
from model.transformer import Transformer, rope_inv_freq

if TYPE_CHECKING:
    from model.tokenizer import Tokenizer

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# Keys some checkpoints carry that are derived, not learned: skipped on load.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed, or does not match the model config."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (a full disk, a lost permission): the
    machine's failure, not the input's, so the entry points exit 1 for it and 2
    for a bad checkpoint they were given."""


# ----------------------------------------------------------------------------- atomic writes
@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`.

    The file gets the mode a plain `open()` would give it (0666 minus the
    umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # After the write: some writers (safetensors) replace the file with a 0600 one.
        tmp.chmod(0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_json_atomic(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- loading
def _tensor_files(path: Path) -> dict[str, Path]:
    """Map every tensor name to the safetensors file holding it."""
    index = path / INDEX_FILE
    single = path / SINGLE_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index ({e})") from e
        files = {name: path / fname for name, fname in weight_map.items()}
        for f in set(files.values()):
            if not f.is_file():
                raise CheckpointError(f"{index} lists shard {f.name}, which does not exist")
        # The index may be stale: trust the shards' own headers for what they hold.
        names: dict[str, Path] = {}
        for f in sorted(set(files.values())):
            for name in _keys(f):
                names[name] = f
        return names
    if single.is_file():
        return {name: single for name in _keys(single)}
    raise CheckpointError(f"no weights in {path}: expected {SINGLE_FILE} or {INDEX_FILE}")


def _keys(file: Path) -> list[str]:
    try:
        with safe_open(file, framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: corrupt or truncated safetensors file ({e})") from e


def load_state_dict(
    model: Transformer, path: str | Path, device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Read the tensors `model` expects from a checkpoint folder, checked and converted."""
    path = Path(path)
    files = _tensor_files(path)
    expected = model.state_dict()
    tied = model.config.tie_word_embeddings
    if tied:
        expected.pop("lm_head.weight", None)  # shares the embedding; files usually omit it
    for name, file in files.items():
        if name in expected or name.endswith(IGNORED_SUFFIXES):
            continue
        if tied and name == "lm_head.weight":
            continue
        raise CheckpointError(f"{file}: unexpected tensor {name!r} for a {model.config.model_type} "
                              f"config with {model.config.num_layers} layers")
    missing = [n for n in expected if n not in files]
    if missing:
        where = path / (INDEX_FILE if (path / INDEX_FILE).is_file() else SINGLE_FILE)
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{where}: missing tensor {missing[0]!r}{more}")
    out: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for name in expected:
        by_file.setdefault(files[name], []).append(name)
    for file, names in by_file.items():
        try:
            with safe_open(file, framework="pt", device=str(device)) as f:
                for name in names:
                    want = tuple(expected[name].shape)
                    got = tuple(f.get_slice(name).get_shape())
                    if got != want:
                        raise CheckpointError(
                            f"{file}: tensor {name!r} has shape {got}, the config implies {want}"
                        )
                    t = f.get_tensor(name)
                    target = dtype or (t.dtype if t.is_floating_point() else torch.float32)
                    out[name] = t.to(target)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{file}: corrupt or truncated safetensors file ({e})") from e
    return out


def load_pretrained(
    path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> Transformer:
    """Load a Hugging Face-layout checkpoint folder (config.json + safetensors).

    `dtype=None` keeps the dtype the weights were stored in. The module is
    returned in eval mode; call `.train()` to train it.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    cfg = ModelConfig.from_hf_config(path)
    with torch.device("meta"):
        model = Transformer(cfg)
    sd = load_state_dict(model, path, device, dtype)
    model.load_state_dict(sd, strict=not cfg.tie_word_embeddings, assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight  # assign=True broke the tie
    # Non-persistent buffers are not in the file: rebuild them on the real device.
    model.inv_freq = rope_inv_freq(cfg).to(device)
    return model.eval()


# ----------------------------------------------------------------------------- saving
def save_pretrained(
    model: Transformer, path: str | Path, tokenizer: Tokenizer | None = None,
    max_shard_bytes: int | None = None, dtype: torch.dtype | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:  # fmt: skip
    """Write `model` (and `tokenizer`) to `path` in Hugging Face layout.

    `state_dict`: the tensors to write instead of model.state_dict() (a sharded model's,
    gathered whole).

    With `max_shard_bytes`, weights are split into `model-0000i-of-0000n.safetensors`
    shards plus an index, as `transformers` does for large models.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    sd = {
        k: v.detach().to(dtype or v.dtype).contiguous().cpu()
        for k, v in (model.state_dict() if state_dict is None else state_dict).items()
        if not (cfg.tie_word_embeddings and k == "lm_head.weight")
    }
    stored = next(iter(sd.values())).dtype
    hf = cfg.to_hf_config()
    hf["torch_dtype"] = str(stored).removeprefix("torch.")
    shards = _shard(sd, max_shard_bytes)
    if len(shards) == 1:
        with atomic_path(path / SINGLE_FILE) as tmp:
            save_file(shards[0], tmp, metadata={"format": "pt"})
        (path / INDEX_FILE).unlink(missing_ok=True)
    else:
        n = len(shards)
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            with atomic_path(path / name) as tmp:
                save_file(shard, tmp, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in sd.values())
        write_json_atomic(
            path / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map}
        )
        (path / SINGLE_FILE).unlink(missing_ok=True)
    write_json_atomic(path / "config.json", hf)
    if tokenizer is not None:
        tokenizer.save(path)
    fsync_dir(path)


def _shard(sd: dict[str, torch.Tensor], max_bytes: int | None) -> list[dict[str, torch.Tensor]]:
    if not max_bytes:
        return [sd]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, t in sd.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = t
        size += nbytes
    return shards


def dtype_from_name(name: str | None) -> torch.dtype | None:
    """'bfloat16' -> torch.bfloat16 (None, 'auto' -> None)."""
    if name in (None, "auto"):
        return None
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose from {', '.join(_DTYPES)} or auto")
    return _DTYPES[name]
