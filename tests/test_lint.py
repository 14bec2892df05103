"""ruff is part of the test suite, so `python -m pytest -q` is the one command CI runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    try:
        p = subprocess.run([*cmd, "check", "."], cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    if p.returncode != 0 and "No module named ruff" in p.stderr:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    assert p.returncode == 0, p.stdout + p.stderr
