"""Evaluation metrics on hand-made records, and eval.py end to end on a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from grpo.evaluate import majority_vote, pass_at_k, summarise

ROOT = Path(__file__).resolve().parents[1]


def test_pass_at_k():
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(8, 1, 1) == pytest.approx(1 / 8)
    # 1 - C(n-c, k) / C(n, k), checked against a direct count for n=5, c=2, k=2.
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - comb(3, 2) / comb(5, 2)) == pytest.approx(0.7)


def test_majority_vote():
    assert majority_vote(["5", "7", "5", None], [1.0, 0.0, 1.0, 0.0]) == 1.0
    assert majority_vote(["7", "5", "7", "5"], [0.0, 1.0, 0.0, 1.0]) == 0.0  # tie: first seen
    assert majority_vote([None, None], [0.0, 0.0]) == 0.0
    assert majority_vote([None, "3", "4", "4"], [0.0, 1.0, 0.0, 0.0]) == 0.0


def _rec(acc, keys, fmt=None, lengths=None, rewards=None):
    n = len(acc)
    fmt = fmt or [1.0] * n
    rewards = rewards or [a + 0.1 * f for a, f in zip(acc, fmt)]
    return {
        "scores": [{"accuracy": a, "format": f, "reward": r} for a, f, r in zip(acc, fmt, rewards)],
        "keys": keys, "lengths": lengths or [10] * n, "truncated": [False] * n,
    }  # fmt: skip


def test_summarise_by_hand():
    records = [
        _rec([0, 1, 0, 0], ["3", "4", "3", "3"]),  # majority wrong, one right
        _rec([1, 1, 0, 1], ["4", "4", "5", "4"], lengths=[20, 20, 20, 20]),
        _rec([0, 0, 0, 0], ["1", None, "2", "1"], fmt=[0, 1, 1, 1]),
    ]
    m = summarise(records, 4)
    assert m["eval_accuracy"] == pytest.approx(4 / 12)
    assert m["eval_format_rate"] == pytest.approx(11 / 12)
    assert m["eval_completion_len_mean"] == pytest.approx((40 + 80 + 40) / 12)
    assert m["eval_pass@4"] == pytest.approx(2 / 3)
    assert m["eval_maj@4"] == pytest.approx(1 / 3)
    assert m["eval_best_of_4"] == pytest.approx(2 / 3)


def test_eval_cli_on_a_tiny_run(tmp_path):
    run = tmp_path / "run"
    args = ["--model", "tiny", "--task", "countdown", "--steps", "1", "--prompts-per-step", "2",
            "--group-size", "2", "--max-new-tokens", "8", "--eval-n", "4", "--plot", "false"]
    p = subprocess.run([sys.executable, "train_zero.py", "--out", str(run), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = tmp_path / "res.json"
    p = subprocess.run([sys.executable, "eval.py", "--model", str(run), "--task", "countdown",
                        "--n", "6", "--samples", "3", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    for name in ("pass@1", "format rate", "pass@3", "maj@3", "best-of-3"):
        assert name in p.stdout, name
    res = json.loads(out.read_text())
    assert res["n"] == 6 and res["samples"] == 3 and res["max_new_tokens"] == 8
    assert 0 <= res["metrics"]["eval_maj@3"] <= res["metrics"]["eval_pass@3"] <= 1
    p = subprocess.run([sys.executable, "eval.py", "--model", str(tmp_path / "nope")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr


def test_progress_is_reported_within_a_generation_batch():
    from grpo.evaluate import evaluate
    from grpo.tasks import get_task
    from model import PRESETS, Transformer, train_bpe_tokenizer

    task = get_task("addition")
    tok = train_bpe_tokenizer([task.prompt(task.train_example(i)) for i in range(100)], 300)
    cfg = PRESETS["tiny"].with_(vocab_size=tok.vocab_size, eos_token_id=tok.eos_id,
                                hidden_size=32, intermediate_size=64, num_layers=1, head_dim=8)
    model = Transformer(cfg).init_weights(seed=0)
    examples = task.heldout(6)
    calls = []
    kw = dict(max_new_tokens=20, batch_size=3)
    res = evaluate(model, tok, task, examples, **kw, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    # Two batches of three questions: progress inside each batch, not only at batch ends.
    assert len(calls) > 4, f"progress called {len(calls)} times for 2 batches x 20 tokens"
    assert all(t == 6 for _, t in calls), f"total should be the question count: {calls}"
    assert done == sorted(done), f"progress went backwards: {done}"
    assert any(0 < d < 3 for d in done), f"no progress inside the first batch: {done}"
    assert calls[-1] == (6, 6) and 3 in done, f"batch ends should be exact: {calls}"
    plain = evaluate(model, tok, task, examples, **kw)
    assert plain.metrics == res.metrics, "a progress callback changed the metrics"
