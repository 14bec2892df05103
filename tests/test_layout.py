"""`import kernels` must resolve to this repository's package, not PyPI's `kernels`.

PyPI has an unrelated top-level package named `kernels` (Hugging Face's kernel
hub). Scripts run from the repository root put the checkout first on sys.path,
ahead of site-packages and PYTHONPATH; this test plants an impostor on
PYTHONPATH and checks that ours still wins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_resolves_to_ours_even_with_an_impostor(tmp_path):
    fake = tmp_path / "kernels"
    fake.mkdir()
    (fake / "__init__.py").write_text("IMPOSTOR = True\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = "import kernels, grpo, model; print(kernels.__file__, hasattr(kernels, 'IMPOSTOR'))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert Path(out[0]).resolve().is_relative_to(ROOT), f"kernels came from {out[0]}"
    assert out[1] == "False"


def test_in_process_imports_are_ours():
    import grpo
    import kernels
    import model

    for mod in (kernels, grpo, model):
        assert Path(mod.__file__).resolve().is_relative_to(ROOT), mod.__file__
