"""The run folder: its lock, its checks, its append-only logs. No torch.

    check_run_dir(run)                    # before any work: refuse an unusable --out
    lock = RunLock(run)                   # one writer at a time; RunInUse otherwise
    remove_stale_tmp(run)                 # holding the lock: debris of killed saves
    metrics = JsonlWriter(run / "metrics.jsonl")
    metrics.write({"step": 1, ...})       # flushed and fsynced per line
    metrics.truncate_after(step)          # on resume: drop rows after the checkpoint
    lock.release()                        # or let the process end

One process writes a run folder at a time: `RunLock` holds an exclusive
`flock` on `run/.lock` (which names the holder's PID) until the process ends.
The checkpoints inside the folder are written by `grpo.run.checkpoint`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a run folder is not protected there
    fcntl = None

LOCK_FILE = ".lock"


class RunInUse(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """An exclusive lock on a run folder, held until `release()` or the process ends.

    `flock` locks die with their process, so the file left by a killed run
    (naming a dead PID) never blocks the next one.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._file = None
        if fcntl is None:
            return
        f = open(self.path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the file)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise RunInUse(
                f"{run_dir} is in use by another training process (PID {pid}); wait for it "
                "to finish or stop it, or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def check_run_dir(path: str | Path) -> None:
    """Refuse, before any work, a run folder that could not be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a folder")
    problem = nearest_folder_problem(path / "metrics.jsonl")  # probes `path` itself if it exists
    if problem:
        raise ValueError(f"--out {path}: cannot write there ({problem})")


def nearest_folder_problem(path: str | Path) -> str | None:
    """Why nothing could be written at `path` (a file or folder to be created), or None:
    "F is a file, not a folder" or "F: <the OS's reason>", F the folder it stopped at.

    The nearest folder on its way that exists (the missing ones would be created) is
    probed with a temporary file, made and removed at once: permission bits alone miss
    read-only mounts and /proc, and root ignores them.
    """
    existing = Path(path).parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"{existing}: {e.strerror or e}"
    return None


def remove_stale_tmp(run_dir: str | Path) -> list[Path]:
    """Remove what interrupted saves left behind (call it holding the run's `RunLock`)."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    stale = [*root.glob(".tmp-*"), *root.glob(".*.tmp"), *run_dir.glob("*.tmp")]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


class JsonlWriter:
    """Append-only JSON lines, flushed and fsynced per line: a crash loses nothing.

    enabled=False (a data-parallel rank other than 0) writes nothing.
    """

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after `step` (written after the checkpoint we resume from)."""
        if not self.enabled or not self.path.is_file():
            return
        from model.checkpoint import atomic_path  # (torch loads with it: only when resuming)

        keep = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by the kill: it is after the checkpoint
                continue
            if row.get("step", 0) <= step:
                keep.append(line)
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))
