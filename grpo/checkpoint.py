"""Crash-safe training checkpoints.

    run/checkpoints/step_000050/   config.json, model.safetensors, tokenizer files
                                   (Hugging Face layout: load_pretrained and
                                   transformers load it), trainer_state.pt
                                   (optimizer, RNG states, step, data position)
    run/checkpoints/latest         the name of the newest complete checkpoint

A checkpoint is written into a temporary folder, flushed to disk, and renamed
into place; only then is `latest` replaced (itself atomically). A process
killed at any moment leaves `latest` naming a complete checkpoint; leftover
temporary folders are removed on the next save.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import Tokenizer, Transformer, save_pretrained
from model.checkpoint import atomic_path, fsync_dir

STATE_FILE = "trainer_state.pt"
LATEST = "latest"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(path)


def save_checkpoint(
    run_dir: str | Path, step: int, model: Transformer, tokenizer: Tokenizer,
    state: dict[str, Any], keep: int = 2,
) -> Path:  # fmt: skip
    """Write checkpoint `step` atomically, point `latest` at it, prune old ones."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # debris of a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    save_pretrained(model, tmp, tokenizer=tokenizer)
    torch.save({**state, "step": step, "rng": rng_state()}, tmp / STATE_FILE)
    _fsync_tree(tmp)
    final = root / name
    if final.exists():  # a complete copy from an attempt that died before updating `latest`
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    with atomic_path(root / LATEST) as t:
        t.write_text(name + "\n")
    fsync_dir(root)
    _prune(root, keep, protect=name)
    return final


def _prune(root: Path, keep: int, protect: str) -> None:
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for p in done[:-keep]:
        if p.name != protect:
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{pointer} names {path.name}, which is incomplete or missing")
    return path


def resolve_model_path(path: str | Path) -> Path:
    """A run folder or a checkpoint folder -> the folder holding config.json."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(
            f"{path} is neither a checkpoint (no config.json) nor a run folder with checkpoints"
        )
    return ckpt


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    return torch.load(Path(ckpt) / STATE_FILE, map_location="cpu", weights_only=False)
