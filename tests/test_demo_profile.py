"""benchmarks/demo_profile.py: the per-phase table from timings.jsonl rows (no run needed)."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "demo_profile", Path(__file__).resolve().parents[1] / "benchmarks" / "demo_profile.py"
)
dp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dp)

TIMINGS = [
    {"step": 0, "eval_s": 2.0, "eval_flops": 40e9},
    {"step": 1, "rollout_s": 1.0, "update_s": 3.0, "tokens_per_s": 100.0,
     "rollout_flops": 10e9, "update_flops": 90e9},
    {"step": 2, "rollout_s": 3.0, "update_s": 1.0, "tokens_per_s": 300.0,
     "rollout_flops": 30e9, "update_flops": 30e9},
    {"step": 3, "rollout_s": 2.0, "update_s": 2.0, "tokens_per_s": 200.0},  # an older run
    {"step": 3, "eval_s": 2.0, "eval_flops": 40e9},
]  # fmt: skip


def test_phase_totals():
    t = dp.phase_totals(TIMINGS)
    assert t["rollout"] == {"seconds": 6.0, "flops": 40e9}
    assert t["update"] == {"seconds": 6.0, "flops": 120e9}
    assert t["eval"] == {"seconds": 4.0, "flops": 80e9}


def test_report_rows():
    lines = dp.report(TIMINGS, wall=20.0, peak=50.0)
    rows = {ln.split()[0]: ln.split() for ln in lines[1:6]}
    # update: 6 s of 20 (30%), 120 GFLOP, 20 GFLOP/s, 40% of a 50 GFLOP/s peak
    assert rows["update"][1:] == ["6.0", "30%", "120.0", "20.0", "40.0%"]
    assert rows["rollout"][1:] == ["6.0", "30%", "40.0", "6.7", "13.3%"]
    assert rows["eval"][1:] == ["4.0", "20%", "80.0", "20.0", "40.0%"]
    assert rows["other"][1:3] == ["4.0", "20%"]  # 20 - 16 s
    assert rows["total"][1:] == ["20.0", "100%", "240.0", "12.0", "24.0%"]
    assert lines[-1].startswith("rollout throughput: median 200 ")


def test_matmul_peak_is_positive():
    assert dp.matmul_peak(n=64, repeats=2) > 0


def test_help_and_bad_out(capsys):
    assert dp.main(["--help"]) == 0
    assert "demo_profile.py" in capsys.readouterr().out
    assert dp.main(["--out"]) == 2
    assert "--out needs a folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--steps", "--bogus"])
def test_train_zero_errors_are_passed_on(flag, tmp_path, capsys):
    # train_zero.py rejects the flag (no value / unknown): no profile, its status is returned.
    rc = dp.main([flag, "--out", str(tmp_path / "run")])
    assert rc != 0
    assert "no profile" in capsys.readouterr().err
