"""benchmarks/op_profile.py: the grouping and the per-phase lines, and one tiny real run."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

spec = importlib.util.spec_from_file_location(
    "op_profile", Path(__file__).resolve().parents[1] / "benchmarks" / "op_profile.py"
)
op = importlib.util.module_from_spec(spec)
spec.loader.exec_module(op)


def ev(key, count, us, flops=0):
    return SimpleNamespace(key=key, count=count, self_cpu_time_total=us, flops=flops)


def test_kind():
    assert [op.kind(k) for k in ("aten::mm", "aten::addmm", "aten::bmm", "aten::mul",
            "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::copy_")] == [
        "matmul", "matmul", "bmm", "rest", "attention", "rest"]  # fmt: skip


def test_summarise_shares_and_rates():
    events = [
        ev("aten::mm", 10, 6000.0, flops=6e8),  # 6 ms, 0.6 GFLOP -> 100 GFLOP/s
        ev("aten::bmm", 4, 2000.0, flops=4e7),  # 2 ms, 0.04 GFLOP -> 20 GFLOP/s
        ev("aten::mul", 100, 2000.0),
        ev("aten::empty", 5, 0.0),  # no time: left out
        ev("MmBackward0", 3, 9999.0),  # not an aten op: left out
    ]
    lines = op.summarise(events, wall=0.0123, peak=200.0, top=2)
    assert lines[0] == "  wall 0.012 s; ops' self CPU time 0.010 s"
    top = [ln.split() for ln in lines[2:4]]
    assert top[0] == ["aten::mm", "10", "600.0", "60.0%", "100"]
    assert top[1] == ["aten::bmm", "4", "500.0", "20.0%", "20"]
    groups = {ln.split()[0]: ln for ln in lines[4:]}
    assert list(groups) == ["matmul", "bmm", "rest"]  # no attention op: no line
    assert groups["matmul"].split()[1:4] == ["0.006", "s", "60.0%"]
    assert "0.6 GFLOP at 100 GFLOP/s (50% of peak)" in groups["matmul"]
    assert "(10% of peak)" in groups["bmm"]
    assert "GFLOP" not in groups["rest"] and "100 calls" in groups["rest"]


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        op.main(["--top", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        op.main(["--group-size", "1"])
    assert e.value.code == 2
    assert "--group-size" in capsys.readouterr().err
    assert op.main(["--model", "/nonexistent/model"]) == 2  # one line, no traceback
    assert capsys.readouterr().err.startswith("op_profile.py: error: --model /nonexistent/model")
    for flag in (["--out", "/tmp/x"], ["--steps", "3"], ["--no-plot"]):
        with pytest.raises(SystemExit) as e:
            op.main(flag)
        assert e.value.code == 2
        assert "is set by op_profile.py itself" in capsys.readouterr().err


def test_tiny_run_prints_both_phases(capsys):
    rc = op.main(["--warmup", "0", "--prompts-per-step", "2", "--group-size", "2",
                  "--max-new-tokens", "8", "--top", "3"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "\nrollout\n" in out and "\nupdate\n" in out
    assert out.count("  matmul ") == 2 and "of peak" in out
