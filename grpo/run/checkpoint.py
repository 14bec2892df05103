"""Crash-safe training checkpoints.

    run/checkpoints/step_000050/   config.json, model.safetensors, tokenizer files
                                   (Hugging Face layout: load_pretrained and
                                   transformers load it), trainer_state.pt
                                   (optimizer, RNG states, step, data position)
    run/checkpoints/latest         the name of the newest complete checkpoint

A checkpoint is written into a temporary folder, flushed to disk, and renamed
into place; only then is `latest` replaced (itself atomically). A process
killed at any moment leaves `latest` naming a complete checkpoint; leftover
temporary folders are removed at the next start (`grpo.run.runfolder.remove_stale_tmp`)
and on the next save. A save that fails (a full disk) removes its temporary
folder and raises `CheckpointError` saying why. The run folder's lock and logs
are in `grpo.run.runfolder`.
"""

from __future__ import annotations

import difflib
import errno
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from model import (
    PRESETS,
    CheckpointWriteError,
    Tokenizer,
    Transformer,
    save_pretrained,
)
from model.checkpoint import atomic_path, fsync_dir

STATE_FILE = "trainer_state.pt"
LATEST = "latest"
# What `--model` accepts besides a folder: the demo bases, then the random-init presets.
BUILTIN_MODELS = ("demo", "demo-countdown", "gpu-countdown", "demo-student",
                  "demo-countdown-student", *(k for k in PRESETS if k != "demo"))  # fmt: skip


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
    state: dict[str, Any], keep: int = 2, weights: dict[str, torch.Tensor] | None = None,
) -> Path:  # fmt: skip
    """Write checkpoint `step` atomically, point `latest` at it, prune old ones.
    `weights`: the model's whole state dict, when model.state_dict() holds shards (FSDP2)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # debris of a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    final = root / name
    try:
        save_pretrained(model, tmp, tokenizer=tokenizer, state_dict=weights)
        # state["rng"], if given, is the RNG state of the step boundary the state belongs to.
        torch.save({"rng": rng_state(), **state, "step": step}, tmp / STATE_FILE)
        _fsync_tree(tmp)
        if final.exists():  # a complete copy from an attempt that died before updating `latest`
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        with atomic_path(root / LATEST) as t:
            t.write_text(name + "\n")
        fsync_dir(root)
    except BaseException as e:  # a full disk, or a second Ctrl-C: leave no half-written folder
        reason = _write_failure(e, root)
        shutil.rmtree(tmp, ignore_errors=True)
        if reason is None:
            raise
        try:
            last = latest_checkpoint(run_dir)
        except FileNotFoundError:
            last = None
        kept = f"; the last complete checkpoint is {last}" if last else ""
        raise CheckpointWriteError(f"could not write checkpoint {final}: {reason}{kept}") from e
    _prune(root, keep, protect=name)
    return final


def _write_failure(e: BaseException, root: Path) -> str | None:
    """Why a checkpoint write failed, if it is the file system's fault; None for anything else."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    # safetensors and torch.save report I/O errors in their own exception types.
    if isinstance(e, SafetensorError):
        m = re.search(r"os error (\d+)", str(e))
        if m:
            return os.strerror(int(m.group(1)))
    if isinstance(e, (SafetensorError, RuntimeError)):
        try:
            if shutil.disk_usage(root).free < 1 << 20:  # a write failed with < 1 MiB left
                return os.strerror(errno.ENOSPC)
        except OSError:
            pass
    return None


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


def resolve_model_path(path: str | Path, builtins: tuple[str, ...] = BUILTIN_MODELS) -> Path:
    """A run folder or a checkpoint folder -> the folder holding config.json.

    `builtins`: the names the caller handles itself, listed when `path` does not exist.
    """
    path = Path(path)
    if not path.exists():
        close = difflib.get_close_matches(str(path), builtins, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise FileNotFoundError(
            f"--model {path}: no such folder, and not a built-in model "
            f"({', '.join(builtins)}){hint}"
        )
    if not path.is_dir():
        raise FileNotFoundError(f"--model {path} is a file; it takes a checkpoint or run folder")
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
