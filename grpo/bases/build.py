"""Base folders: build one (atomically, with a manifest), validate it, cache it, ensure it.

    from grpo.bases.build import ensure_base
    path = ensure_base("demo")             # shipped copy if valid, else .cache/, else build
    path = ensure_base("demo-countdown")   # .cache/demo-countdown-base/, built on first use

The checkpoint folder has Hugging Face layout (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json) plus
manifest.json: the build parameters, training stats and the sha256 of every
file. `ensure_demo_base` rebuilds a folder whose parameters differ from the
current `BuildConfig` (stale) or whose files are missing or do not match their
hashes (corrupt), and logs why. A build replaces only a folder that is new,
empty or a previous build (`not_replaceable`): never one holding anything
else, whoever asks for it. Nothing here ever writes into the shipped
assets/demo-base/: only `build_base` with that folder as `out` does, and the
CLI passes it only when asked with `--out assets/demo-base`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from grpo.bases.addition import DEFAULT_CONFIG, STUDENT_CONFIG, StudentBuildConfig
from grpo.bases.common import Log
from grpo.bases.countdown import COUNTDOWN_CONFIG
from grpo.bases.countdown_demo import (
    COUNTDOWN_STUDENT_CONFIG,
    DEMO_COUNTDOWN_CONFIG,
    CountdownDemoConfig,
    CountdownStudentConfig,
)
from grpo.bases.pretrain import AnyConfig, pretrain, resolve_device
from grpo.tasks import TINYZERO_COUNTDOWN
from model.checkpoint import fsync_dir, save_pretrained, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_ROOT / "assets" / "demo-base"
CACHE_DIR = REPO_ROOT / ".cache" / "demo-base"
COUNTDOWN_SHIPPED_DIR = REPO_ROOT / "assets" / "demo-countdown-base"
STUDENT_SHIPPED_DIR = REPO_ROOT / "assets" / "demo-student-base"
STUDENT_CACHE_DIR = REPO_ROOT / ".cache" / "demo-student-base"
COUNTDOWN_STUDENT_SHIPPED_DIR = REPO_ROOT / "assets" / "demo-countdown-student-base"
COUNTDOWN_STUDENT_CACHE_DIR = REPO_ROOT / ".cache" / "demo-countdown-student-base"
COUNTDOWN_CACHE_DIR = REPO_ROOT / ".cache" / "demo-countdown-base"
GPU_COUNTDOWN_CACHE_DIR = REPO_ROOT / ".cache" / "gpu-countdown-base"
CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "generation_config.json",
)  # fmt: skip
MANIFEST = "manifest.json"

# The names `ensure_base` (and the trainer's --model) take. "demo" and
# "demo-countdown" are the CPU demos' bases (shipped); "gpu-countdown" is the
# GPU preset's (built on first use); "demo-student" is the addition demo's
# recipe at a quarter of the size, the student of grpo/experiments/distill.py (shipped);
# "demo-countdown-student" is the same for the countdown demo (distill.py --task countdown).
# `--model demo` means the chosen task's demo base: DEMO_BASES[task].
BASES = ("demo", "demo-countdown", "gpu-countdown", "demo-student", "demo-countdown-student")
DEMO_BASES = {"addition": "demo", "countdown": "demo-countdown"}
BUILD_COMMANDS = {
    "demo": "python -m grpo.demo build",
    "demo-countdown": "python -m grpo.demo build --base demo-countdown",
    "gpu-countdown": "python -m grpo.demo build --base gpu-countdown",
    "demo-student": "python -m grpo.demo build --base demo-student",
    "demo-countdown-student": "python -m grpo.demo build --base demo-countdown-student",
}
SHIPPED_DIRS = {"demo": SHIPPED_DIR, "demo-countdown": COUNTDOWN_SHIPPED_DIR,
                "demo-student": STUDENT_SHIPPED_DIR,
                "demo-countdown-student": COUNTDOWN_STUDENT_SHIPPED_DIR}  # fmt: skip
CACHE_DIRS = {"demo": CACHE_DIR, "demo-countdown": COUNTDOWN_CACHE_DIR,
              "gpu-countdown": GPU_COUNTDOWN_CACHE_DIR,
              "demo-student": STUDENT_CACHE_DIR,
              "demo-countdown-student": COUNTDOWN_STUDENT_CACHE_DIR}  # fmt: skip


# The countdown bases built on the task's default variant (the others: TinyZero's ranges).
CPU_COUNTDOWN_BASES = ("demo-countdown", "demo-countdown-student")


def demo_base_name(model: str, task: str) -> str:
    """The base `--model MODEL` means for `--task TASK`: "demo" is the task's demo base."""
    return DEMO_BASES.get(task, "demo") if model == "demo" else model


def base_run_config(path: str | Path) -> dict[str, Any]:
    """The task settings a built-in base was built for: its task, and countdown's variant.

    The GPU preset's base ("gpu-countdown") was built on TinyZero's ranges; the
    CPU demo's ("demo-countdown") on the task's defaults.
    """
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        manifest = {}
    build = manifest.get("build") if isinstance(manifest, dict) else None
    build = build if isinstance(build, dict) else {}
    out: dict[str, Any] = {"task": build.get("task", "addition")}
    if out["task"] == "countdown" and build.get("base") not in CPU_COUNTDOWN_BASES:
        out.update(TINYZERO_COUNTDOWN)
    return out


def base_config(name: str) -> AnyConfig:
    """The default build config of a named base."""
    configs = {"demo": DEFAULT_CONFIG, "demo-countdown": DEMO_COUNTDOWN_CONFIG,
               "gpu-countdown": COUNTDOWN_CONFIG, "demo-student": STUDENT_CONFIG,
               "demo-countdown-student": COUNTDOWN_STUDENT_CONFIG}  # fmt: skip
    if name not in configs:
        raise ValueError(f"unknown base {name!r}; bases: {', '.join(BASES)}")
    return configs[name]


def base_name(config: AnyConfig) -> str:
    """The name of the base a build config is a variant of."""
    if isinstance(config, CountdownStudentConfig):
        return "demo-countdown-student"
    if isinstance(config, CountdownDemoConfig):
        return "demo-countdown"
    if isinstance(config, StudentBuildConfig):
        return "demo-student"
    return "gpu-countdown" if config.task == "countdown" else "demo"


def cache_dir(name: str) -> Path:
    """Where a named base is built when no folder is given (never the shipped copy)."""
    base_config(name)  # unknown names fail here
    return CACHE_DIRS[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shown(name: str) -> str:
    return name if name.isprintable() else repr(name)


def not_replaceable(out: str | Path) -> str | None:
    """Why a build must not replace `out`, or None: it is new, empty, or a previous build.

    A build replaces its folder whole, so it may only replace one that holds
    nothing of anyone else's: a folder whose manifest.json lists the
    checkpoint files with their sha256 (what `build_base` writes) and which
    holds nothing but those files. A build whose files no longer match their
    hashes (corrupt, or cut short) is still a build and may be replaced;
    anything else (a file, a folder of other files, a training run, a build
    with files added to it) is refused.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return None
    if not out.is_dir():
        return "exists and is not a folder"
    try:
        entries = sorted(out.iterdir())
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not entries:
        return None
    ours = {*CHECKPOINT_FILES, MANIFEST}
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries
               if p.name not in ours or not p.is_file()]  # fmt: skip
    refuse = "refusing to replace it (choose a new or empty folder)"
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        listed = ", ".join(_shown(name) for name in foreign[:3]) + more
        return f"is not empty and holds files that are not a base build's ({listed}): {refuse}"
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    manifest = manifest if isinstance(manifest, dict) else {}
    files = manifest.get("files")
    hashed = (
        isinstance(files, dict) and set(files) == set(CHECKPOINT_FILES)
        and all(isinstance(h, str) and len(h) == 64 for h in files.values())
    )  # fmt: skip
    if not (hashed and isinstance(manifest.get("build"), dict)):
        return (f"is not empty and is not a base build (it has no {MANIFEST} listing the "
                f"checkpoint files with their sha256): {refuse}")  # fmt: skip
    return None


def build_base(
    out: str | Path, config: AnyConfig = DEFAULT_CONFIG, log: Log = print, log_every: int = 50,
    device: str | torch.device = "cpu",
) -> Path:  # fmt: skip
    """Pretrain and write a checkpoint folder with a manifest; atomic (temp folder, rename).

    `out` must be new, empty or a previous build (`not_replaceable`), else
    ValueError before any work; it is checked again just before it is replaced.
    """
    out = Path(out)
    problem = not_replaceable(out)
    if problem:
        raise ValueError(f"{out} {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model, tok, stats = pretrain(config, log, log_every, device)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        save_pretrained(model, tmp, tokenizer=tok)
        name = base_name(config)
        if name == "gpu-countdown":
            what = "R1-Zero GPU-preset base model (grpo/bases/); rebuild: "
        elif name == "demo-student":
            what = ("distillation student base model (grpo/bases/, grpo/experiments/distill.py); "
                    "rebuild: ")
        elif name == "demo-countdown-student":
            what = ("countdown distillation student base model (grpo/bases/, "
                    "grpo/experiments/distill.py --task countdown); rebuild: ")
        elif name == "demo-countdown":
            what = "R1-Zero countdown demo base model (grpo/bases/); rebuild: "
        else:
            what = "R1-Zero demo base model (grpo/bases/); rebuild: "
        what += BUILD_COMMANDS[name]
        manifest = {
            "what": what + " --out <this folder>",
            "build": config.to_dict(),
            "stats": stats,
            "files": {name: sha256_file(tmp / name) for name in CHECKPOINT_FILES},
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        # mkdtemp/mkstemp create private modes; a cache or an asset is shared reading.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        problem = not_replaceable(out)  # again: files may have landed there meanwhile
        if problem:
            raise ValueError(f"{out} {problem}")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out} ({stats['total_seconds']:.0f}s)")
    return out


def validate_base(path: str | Path, config: AnyConfig = DEFAULT_CONFIG) -> str | None:
    """None if `path` holds a complete build of `config`; otherwise the reason it does not."""
    path = Path(path)
    if not path.is_dir():
        return f"{path} does not exist"
    mf = path / MANIFEST
    if not mf.is_file():
        return f"{mf} is missing"
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"{mf} is not valid JSON ({e})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"{mf} has no file list"
    built = manifest.get("build")
    want = config.to_dict()
    if built != want:
        changed = sorted(
            k for k in set(want) | set(built or {}) if (built or {}).get(k) != want.get(k)
        )
        detail = ", ".join(f"{k}: {(built or {}).get(k)!r} -> {want.get(k)!r}" for k in changed)
        return f"stale: build parameters changed ({detail})"
    for name in CHECKPOINT_FILES:
        f = path / name
        if not f.is_file():
            return f"corrupt: {name} is missing"
        want_hash = manifest["files"].get(name)
        if want_hash is None:
            return f"corrupt: {name} is not in the manifest"
        if sha256_file(f) != want_hash:
            return f"corrupt: {name} does not match its sha256 in the manifest"
    return None


def base_task(path: str | Path) -> str:
    """The task a base folder was built for, from its manifest ("addition" if it says none)."""
    return base_run_config(path)["task"]


def ensure_demo_base(
    path: str | Path | None = None, rebuild: bool = False, log: Log = print,
    config: AnyConfig = DEFAULT_CONFIG, log_every: int = 50, name: str = "demo",
) -> Path:  # fmt: skip
    """A folder holding a valid build of a shipped CPU demo base, building it if needed.

    `name`: "demo" (addition) or "demo-countdown". With `path=None`: the
    shipped assets/<name>-base/ if it validates, else the cache
    .cache/<name>-base/ under the repository root (built or rebuilt there).
    With a path: that folder, rebuilt if missing, stale or corrupt.
    `rebuild=True` always builds (never over the shipped copy when path is None).
    """
    if path is None:
        if not rebuild:
            reason = validate_base(SHIPPED_DIRS[name], config)
            if reason is None:
                return SHIPPED_DIRS[name]
            log(f"{name} base: shipped copy not used: {reason}")
        path = CACHE_DIRS[name]
    path = Path(path)
    if _usable(path, config, rebuild, name, log):
        return path
    return build_base(path, config, log, log_every)


def _usable(path: Path, config: AnyConfig, rebuild: bool, name: str, log: Log) -> bool:
    """Whether `path` holds a valid build of `config`; if not, log why it will be built."""
    if rebuild:
        log(f"{name} base: rebuilding {path} (asked to)")
        return False
    reason = validate_base(path, config)
    if reason is not None:
        log(f"{name} base: building {path}: {reason}")
    return reason is None


def ensure_base(
    name: str = "demo", log: Log = print, *, path: str | Path | None = None,
    rebuild: bool = False, device: str | torch.device = "auto",
    config: AnyConfig | None = None,
) -> Path:  # fmt: skip
    """A folder holding a valid build of the named base, building it if needed.

    "demo" and "demo-countdown": the CPU demos' bases, exactly
    `ensure_demo_base` (the shipped assets/<name>-base/ if valid, else
    .cache/<name>-base/, built on CPU; `device` is not used).
    "gpu-countdown": the GPU preset's countdown base, never shipped (~130 MB):
    .cache/gpu-countdown-base/ (or `path`), built on first use on `device`
    ("auto": CUDA if available) and rebuilt when stale or corrupt. Building the
    default config on a CPU is refused (it would take many hours); build it
    there on purpose with `python -m grpo.demo build --base gpu-countdown --device cpu`.
    """
    want = config if config is not None else base_config(name)
    if name in SHIPPED_DIRS:
        return ensure_demo_base(path, rebuild=rebuild, log=log, config=want, name=name)
    base_config(name)  # unknown names fail here
    path = Path(path) if path is not None else cache_dir(name)
    if _usable(path, want, rebuild, name, log):
        return path
    dev = resolve_device(device)
    if dev.type == "cpu" and want == COUNTDOWN_CONFIG:
        raise ValueError(
            f"the {name} base is built on a GPU (~10 min on one H100, hours on a CPU) and "
            f"there is no CUDA device here; on a CPU build it explicitly with "
            f"`{BUILD_COMMANDS[name]} --device cpu`, or a weaker one with --steps/--docs/--out DIR "
            f"and train from DIR; or build it on a GPU machine and copy {path}"
        )
    return build_base(path, want, log, device=dev)
