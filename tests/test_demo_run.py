"""A shortened built-in demo, end to end: `train_zero.py` with the shipped base, a few steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN_KEYS = ("step", "reward", "accuracy", "format_rate", "completion_len_mean")
EVAL_KEYS = ("step", "eval_accuracy", "eval_format_rate", "eval_completion_len_mean")


def test_short_demo_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "demo"
    args = ["--out", str(run), "--steps", "3", "--eval-every", "2", "--eval-n", "24",
            "--prompts-per-step", "4"]  # fmt: skip
    p = subprocess.run([sys.executable, "train_zero.py", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "eval_accuracy" not in r]
    evals = [r for r in rows if "eval_accuracy" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert [r["step"] for r in evals] == [0, 2, 3], "evaluations at 0, every 2 steps, and the end"
    for r in train:
        assert all(isinstance(r[k], (int, float)) for k in TRAIN_KEYS), r
    for r in evals:
        assert all(isinstance(r[k], (int, float)) for k in EVAL_KEYS), r
    # The shipped base: greedy it answers directly, without the format.
    assert evals[0]["eval_format_rate"] <= 0.5
    cfg = json.loads((run / "train_config.json").read_text())
    assert cfg["model"] == "demo" and cfg["task"] == "addition"
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["kind"] for s in samples} == {"train", "eval"}
    assert (run / "plots" / "overview.png").is_file() and (run / "plots" / "length.png").is_file()
    assert (run / "checkpoints" / "step_000003" / "model.safetensors").is_file()
    assert "held-out (24)" in p.stdout and "trained" in p.stdout, p.stdout[-2000:]
