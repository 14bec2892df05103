"""benchmarks/grpo_step.py without TRL: its argument checks and its missing-TRL message.

The benchmark itself needs TRL (`pip install -e ".[bench]"`) and minutes of CPU;
these tests only run the script's start, in a subprocess, in well under a second each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "grpo_step.py"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip


@pytest.mark.parametrize(
    "args, words",
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
        (["--threads", "-2"], "--threads must be >= 0"),
        (["--rows", "long"], "--rows must name one or both of short, r1zero"),
        (["--rows", ","], "--rows must name one or both"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--steps", "two"], "invalid int value: 'two'"),
    ],
)
def test_bad_arguments_give_one_line(args, words):
    p = run(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def test_missing_trl_is_one_line_and_status_2(tmp_path):
    # A `trl` that fails to import, first on the path: as if TRL were not installed,
    # whether or not this environment has it.
    fake = tmp_path / "trl"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named trl')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    p = run("--steps", "1", env=env)
    assert p.returncode == 2
    out = (p.stdout + p.stderr).strip()
    assert out == 'TRL is not installed: pip install -e ".[bench]"'
