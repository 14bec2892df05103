"""Our `kernels/` beside Hugging Face's `kernels` package, and the pinned test environment.

The `dev` extra installs PyPI's `kernels` (transformers depends on it), so the whole suite,
the transformers parity tests of tests/test_model.py and tests/test_generate.py included,
runs with that package importable. These tests check that the condition holds, that it
breaks a plain `import transformers` (the reason for grpo/run/imports.py), that the parity
still holds under it, and that a foreign `kernels` or an untested transformers is refused
in one line.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.run import imports

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, cwd: Path = ROOT, pythonpath: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def pypi_kernels_version() -> str | None:
    try:
        return importlib.metadata.version("kernels")
    except importlib.metadata.PackageNotFoundError:
        return None


def test_pypi_kernels_is_installed_and_ours_is_imported():
    # The condition every parity test runs under: Hugging Face's distribution is installed
    # (`pip install -e ".[dev]"` pins it), and `import kernels` still gives this checkout's.
    assert pypi_kernels_version() is not None, (
        "PyPI's `kernels` is not installed: pip install -e '.[dev]' (it pins it)"
    )
    import kernels

    assert Path(kernels.__file__).resolve().parent == ROOT / "kernels", kernels.__file__
    assert imports.kernels_problem() is None


def test_plain_import_of_transformers_models_collides():
    # Without grpo/run/imports.py, transformers' hub-kernel probe imports our package as its own.
    # If this passes, the pinned transformers does not collide: keep the guard, and update
    # this test's expectation with the pins.
    p = python("import kernels\nfrom transformers import Qwen2ForCausalLM")
    assert p.returncode != 0, "the pinned transformers does not import `kernels`"
    assert "ImportError" in p.stderr and "from 'kernels'" in p.stderr, p.stderr[-2000:]


def test_parity_holds_with_both_kernels_packages():
    # Our fused kernels imported first, then the reference model through the guard: logits
    # equal, and `kernels` is ours again afterwards.
    code = """
import torch, kernels
from grpo.rollout import completion_logprobs
from tests.hf_models import hf_model
from model.checkpoint import load_pretrained
import tempfile, pathlib
hf = hf_model("qwen2_untied")
import transformers.integrations.hub_kernels as hk
with tempfile.TemporaryDirectory() as d:
    hf.save_pretrained(d)
    ours = load_pretrained(d, dtype=torch.float32)
ids = torch.randint(0, 211, (2, 9), generator=torch.Generator().manual_seed(0))
diff = (ours(ids) - hf(ids).logits).abs().max().item()
import kernels as again
assert again is kernels and pathlib.Path(kernels.__file__).parent.name == "kernels"
assert not hk.is_kernels_available()
print(diff)
"""
    p = python(code)
    assert p.returncode == 0, p.stderr[-3000:]
    assert float(p.stdout.split()[-1]) < 1e-4


def test_foreign_kernels_first_on_the_path_is_one_line(tmp_path):
    fake = tmp_path / "kernels"
    fake.mkdir()
    (fake / "__init__.py").write_text("class CUDAProperties: ...\n")
    # Run outside the checkout, with the impostor ahead of it: as when PyPI's package comes
    # first on sys.path.
    p = python("import grpo", cwd=tmp_path, pythonpath=os.pathsep.join([str(tmp_path), str(ROOT)]))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(fake) in lines[0] and "pip uninstall kernels" in lines[0], lines[0]
    assert lines[0].startswith("error: `import kernels` finds"), lines[0]


def test_kernels_problem_on_hand_made_modules(monkeypatch, tmp_path):
    class Fake:
        __file__ = str(tmp_path / "kernels" / "__init__.py")

    monkeypatch.setitem(sys.modules, "kernels", Fake())
    assert "not this project's kernels/" in imports.kernels_problem()
    # Our folder, but an __init__.py that is not ours (another package installed over it).
    clobbered = tmp_path / "kernels"
    clobbered.mkdir()
    (clobbered / "__init__.py").write_text("from .layer import Device\n")
    monkeypatch.setattr(imports, "OUR_KERNELS", clobbered)
    assert imports.kernels_problem() is not None
    (clobbered / "__init__.py").write_text("from kernels.logprobs import logprobs_and_entropy\n")
    assert imports.kernels_problem() is None


@pytest.mark.parametrize(
    "version, ok",
    [("4.57.6", True), ("5.0.0", True), ("5.25.0", True), ("5.25.0.dev0", True),
     ("4.56.2", False), ("5.26.0", False), ("6.0.0rc1", False), ("4.9", False)],
)  # fmt: skip
def test_transformers_range(version, ok):
    problem = imports.transformers_problem(version)
    assert (problem is None) == ok, problem
    if not ok:
        assert version in problem and 'pip install -e ".[dev]"' in problem


def test_untested_transformers_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "transformers"
    fake.mkdir()
    (fake / "__init__.py").write_text("__version__ = '4.40.0'\n")
    p = python("from grpo.run.imports import import_transformers\nimport_transformers()",
               pythonpath=os.pathsep.join([str(tmp_path), str(ROOT)]))  # fmt: skip
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "transformers 4.40.0 is not a version" in lines[0], p.stderr


def extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]


PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.]*)$")


@pytest.mark.parametrize("extra", ["dev", "bench"])
def test_test_and_bench_extras_are_pinned(extra):
    for req in extras()[extra]:
        assert PIN.match(req), f"{extra}: {req!r} is not an exact pin (NAME==VERSION)"


def test_pinned_transformers_is_in_the_supported_range():
    pins = dict(PIN.match(r).groups() for r in extras()["dev"] + extras()["bench"])
    assert imports.transformers_problem(pins["transformers"]) is None
    assert pins["transformers"] == imports.TRANSFORMERS_RANGE[1], (
        "the pinned transformers is the newest one tested: raise TRANSFORMERS_RANGE with it"
    )


def test_installed_test_dependencies_are_the_pinned_ones():
    # What CI tested is what the pins say (a stale environment fails here, not obscurely).
    wrong = []
    for req in extras()["dev"]:
        name, want = PIN.match(req).groups()
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != want:
            wrong.append(f"{name} {have} (pinned {want})")
    assert not wrong, "reinstall with pip install -e '.[dev]': " + ", ".join(wrong)
