"""grpo.plot: PNGs per quantity, several runs overlaid, and a clear message without matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_run(d: Path, scale: float) -> Path:
    d.mkdir(parents=True)
    rows = [{"step": 0, "eval_accuracy": 0.0, "eval_format_rate": 0.0,
             "eval_completion_len_mean": 7.0, "eval_reward": 0.0}]  # fmt: skip
    for s in range(1, 6):
        rows.append({"step": s, "reward": 0.1 * s * scale, "accuracy": 0.1 * s,
                     "format_rate": 0.2 * s, "completion_len_mean": 10.0 * s,
                     "entropy": 1.0 / s, "kl": 0.01 * s})  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_plot_two_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from grpo.plot import PANELS, main

    a, b = _fake_run(tmp_path / "a", 1.0), _fake_run(tmp_path / "b", 2.0)
    out = tmp_path / "plots"
    assert main([str(a), str(b), "--out", str(out), "--labels", "first,second"]) == 0
    names = {p.name for p in out.glob("*.png")}
    assert names == {f"{p[0]}.png" for p in PANELS} | {"overview.png"}
    assert all((out / n).stat().st_size > 5000 for n in names)


def test_plot_errors_are_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "grpo.plot", str(tmp_path / "nope")], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "metrics.jsonl" in p.stderr and "Traceback" not in p.stderr


def test_missing_matplotlib_gives_a_clear_message(tmp_path):
    run = _fake_run(tmp_path / "a", 1.0)
    code = ("import sys; sys.modules['matplotlib'] = None; from grpo.plot import main; "
            f"sys.exit(main([{str(run)!r}]))")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2
    assert "pip install" in p.stderr and "matplotlib" in p.stderr and "Traceback" not in p.stderr
