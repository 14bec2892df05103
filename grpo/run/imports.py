"""Which `kernels` and which `transformers` this project imports.

Two packages share the top-level name `kernels`: this project's fused log-prob
kernels (`kernels/` in the checkout) and Hugging Face's kernel hub on PyPI
(`pip install kernels`), which `transformers` 5.25 and later depend on. One
Python process can hold only one module of a name, so:

- `check_kernels()` (run by `import grpo`) makes sure that `import kernels`
  finds this project's package. If it would find another one (for example the
  PyPI package, ahead of our checkout on `sys.path` when a command runs outside
  the repository root), it stops with one line that says which package was
  found and what to do, instead of failing later on a missing name.
- `import_transformers()` is the one way the tests and benchmarks import
  `transformers` (the reference implementation and TRL's base). transformers
  imports the kernel hub at import time whenever the `kernels` distribution is
  installed (`if is_kernels_available(): from kernels import ...` in
  `transformers.integrations.hub_kernels`), and in this process that name is
  ours, so the import fails. Its documented switch `USE_HUB_KERNELS=0` turns
  off the use of hub kernels but not that import, so while transformers loads,
  the name `kernels` is blocked (`sys.modules["kernels"] = None`, Python's
  documented way to make an import fail). transformers then records the kernel
  hub as unavailable (the answer is cached), our package is put back, and the
  result is checked. It also refuses, in one line, a transformers version
  outside the range the parity tests were run on.

Nothing here imports torch unless `import_transformers` is called.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
OUR_KERNELS = ROOT / "kernels"

# transformers versions the model-parity tests have passed on, both ends included.
# pyproject.toml's `dev` extra pins the version CI tests (tests/test_imports.py checks
# that the pin lies in this range).
TRANSFORMERS_RANGE = ("4.57.6", "5.25.0")


class ForeignKernelsError(ImportError):
    """`import kernels` would find a package other than this project's kernels/."""


class UnsupportedTransformersError(ImportError):
    """The installed transformers is outside TRANSFORMERS_RANGE, or imports the kernel hub."""


def _is_ours(package_dir: Path) -> bool:
    init = package_dir / "__init__.py"
    try:
        text = init.read_text(encoding="utf-8")
    except OSError:
        return False
    # Our __init__ exports the fused log-prob function; a PyPI `kernels` installed into the
    # same folder (a non-editable install of both) overwrites that file.
    return package_dir.resolve() == OUR_KERNELS.resolve() and "logprobs_and_entropy" in text


def kernels_problem() -> str | None:
    """One line saying why `import kernels` would not give this project's package, or None."""
    loaded = sys.modules.get("kernels")
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
    else:
        try:
            spec = importlib.util.find_spec("kernels")
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    if origin is None:
        return (
            f"no package named `kernels` can be imported; this project's is {OUR_KERNELS}: "
            "run from the repository root, or reinstall with `pip install -e .` there"
        )
    found = Path(origin).resolve().parent
    if _is_ours(found):
        return None
    return (
        f"`import kernels` finds {found}, not this project's kernels/ ({OUR_KERNELS}); "
        "PyPI's `kernels` (Hugging Face's kernel hub) has the same name: run from the "
        "repository root, or `pip uninstall kernels` if nothing else needs it"
    )


def _one_line_hook(previous):
    def hook(kind, value, tb):
        if issubclass(kind, (ForeignKernelsError, UnsupportedTransformersError)):
            print(f"error: {value}", file=sys.stderr)
        else:
            previous(kind, value, tb)

    return hook


def _raise(error: ImportError) -> None:
    # Uncaught in a command, the error is its one line (exit status 1), not a traceback.
    if not getattr(sys.excepthook, "_r1zero_one_line", False):
        sys.excepthook = _one_line_hook(sys.excepthook)
        sys.excepthook._r1zero_one_line = True
    raise error


def check_kernels() -> None:
    problem = kernels_problem()
    if problem is not None:
        _raise(ForeignKernelsError(problem))


def transformers_problem(version: str) -> str | None:
    """One line if `version` is outside TRANSFORMERS_RANGE, else None."""
    from packaging.version import Version  # a dependency of transformers

    low, high = TRANSFORMERS_RANGE
    if Version(low) <= Version(version) <= Version(high):
        return None
    return (
        f"transformers {version} is not a version this project is tested with "
        f"({low} .. {high}): `pip install -e \".[dev]\"` installs the pinned one"
    )


def import_transformers() -> ModuleType:
    """`import transformers`, with Hugging Face's kernel hub kept out of this process."""
    check_kernels()
    os.environ.setdefault("USE_HUB_KERNELS", "0")
    fresh = "transformers" not in sys.modules
    ours = sys.modules.get("kernels")
    if fresh:
        sys.modules["kernels"] = None  # type: ignore[assignment]  # `import kernels` now fails
    try:
        transformers = importlib.import_module("transformers")  # not installed: ImportError
        problem = transformers_problem(transformers.__version__)
        if problem is not None:
            _raise(UnsupportedTransformersError(problem))
        probe = getattr(transformers.utils.import_utils, "is_kernels_available", None)
        if fresh:  # the kernel hub is probed now, while `kernels` is blocked; the answer is cached
            if probe is not None:
                probe()
            importlib.import_module("transformers.integrations.hub_kernels")
    finally:
        if fresh and ours is not None:
            sys.modules["kernels"] = ours
        elif fresh:
            del sys.modules["kernels"]
    if probe is not None and probe():
        _raise(UnsupportedTransformersError(
            f"transformers {transformers.__version__} imports Hugging Face's `kernels` package, "
            "whose name this project's kernels/ takes: `pip install -e \".[dev]\"` installs the "
            "pinned transformers"
        ))
    return transformers
