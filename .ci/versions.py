"""Print the versions this CI run resolved, and whether a newer one of each pin exists.

    python .ci/versions.py            # after `pip install -e ".[dev,plot]"`

The first table is what was tested: the runtime dependencies, each pinned test and bench
dependency (from pyproject.toml), and Hugging Face's `kernels`. The second asks the package
index for the newest release of each pin, so that the log of any run shows when the pins
have fallen behind (docs/configuration.md, "Dependencies"). It never fails the run: an
index that does not answer within 20 s is reported as such.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("torch", "tokenizers", "safetensors", "numpy", "triton")


def installed(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def newest(name: str) -> str:
    try:
        p = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name],
                           capture_output=True, text=True, timeout=20)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "(no answer in 20 s)"
    m = re.search(rf"^{re.escape(name)} \(([^)]+)\)", p.stdout, re.IGNORECASE | re.MULTILINE)
    return m.group(1) if m else "(not found)"


def main() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        print("versions.py: needs Python 3.11 or later (tomllib)")
        return
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pins: dict[str, str] = {}
    for extra in ("dev", "bench"):
        for req in extras[extra]:
            name, _, version = req.partition("==")
            pins[name] = version
    print(f"resolved versions (python {platform.python_version()}):")
    for name in (*RUNTIME, *pins):
        pinned = f"  (pinned {pins[name]})" if name in pins else ""
        print(f"  {name:<16} {installed(name)}{pinned}")
    print("newest release of each pin:")
    for name, version in pins.items():
        latest = newest(name)
        flag = "" if latest == version else "  <- newer than the pin" if latest[0].isdigit() else ""
        print(f"  {name:<16} {latest}{flag}")


if __name__ == "__main__":
    doc = __doc__.split("\n")[0]
    argparse.ArgumentParser(prog="python .ci/versions.py", description=doc).parse_args()
    main()
