"""grpo/run/cpu_env.py: the OpenMP and MKL settings every entry point makes before torch loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grpo.run import cpu_env

VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_CBWR", "MKL_DYNAMIC")


@pytest.fixture
def clean_env(monkeypatch):
    for k in VARS:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_linux_spins_briefly(clean_env):
    clean_env.setattr(cpu_env.sys, "platform", "linux")
    cpu_env.set_cpu_env()
    env = {k: cpu_env.os.environ.get(k) for k in VARS}
    assert env == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "1000",
                   "MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE"}  # fmt: skip


def test_elsewhere_passive(clean_env):
    clean_env.setattr(cpu_env.sys, "platform", "darwin")
    cpu_env.set_cpu_env()
    assert cpu_env.os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"
    assert "GOMP_SPINCOUNT" not in cpu_env.os.environ


@pytest.mark.parametrize("var, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5")])
def test_the_users_setting_wins(clean_env, var, value):
    clean_env.setattr(cpu_env.sys, "platform", "linux")
    clean_env.setenv(var, value)
    clean_env.setenv("MKL_CBWR", "COMPATIBLE")
    cpu_env.set_cpu_env()
    other = "GOMP_SPINCOUNT" if var == "OMP_WAIT_POLICY" else "OMP_WAIT_POLICY"
    assert cpu_env.os.environ[var] == value and other not in cpu_env.os.environ
    assert cpu_env.os.environ["MKL_CBWR"] == "COMPATIBLE"


# What each entry point's module sees when torch is first imported.
PROBE = """
import os, sys
for k in {vars!r}:
    os.environ.pop(k, None)
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "SEEN" not in os.environ:
            os.environ["SEEN"] = os.environ.get("GOMP_SPINCOUNT") or "unset"
        return None
sys.meta_path.insert(0, Probe())
import {module}
import torch  # if the module did not load it itself
print(os.environ.get("SEEN"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux setting")
def test_entry_points_set_it_before_torch_loads():
    root = Path(__file__).resolve().parents[1]
    modules = ["train_zero", "train_sft", "eval", "grpo.experiments.star",
               "grpo.experiments.distill", "grpo.experiments.r1_pipeline",
               "grpo.search.test_time_compute", "grpo.search.verifiers"]  # fmt: skip
    for module in modules:
        code = PROBE.format(vars=VARS, module=module)
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-1] == "1000", f"{module}: torch loaded before set_cpu_env"
