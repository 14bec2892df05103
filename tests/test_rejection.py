"""Rejection sampling keeps exactly the completions that pass the task's rules."""

import json
import subprocess
import sys
from pathlib import Path

import torch

import grpo.rollout
from grpo.experiments.rejection import passes, rejection_sample, select
from grpo.rollout import Rollout
from grpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
TASK = get_task("addition")
EX = [TASK.train_example(i) for i in range(3)]


def _right(ex, pad=""):
    return f" <think> {ex['a']} + {ex['b']}{pad} </think> <answer>{ex['target']}</answer>"


def _cases(ex):
    """(text, finish, passes?) for one question: every way to fail, and passing ones."""
    return [
        (_right(ex), "stop", True),
        (f" <think> sum </think> <answer>{ex['target'] + 1}</answer>", "stop", False),  # wrong
        (f" <answer>{ex['target']}</answer>", "stop", False),  # right answer, no think block
        (f" <think> x </think> <answer>{ex['target']}", "stop", False),  # unclosed answer
        (_right(ex, " ok"), "length", False),  # right, but cut at the budget
        (_right(ex), "stop", True),  # a duplicate of the first
        (_right(ex, " again"), "eos", True),
    ]


def test_passes_is_correct_and_well_formed_and_finished():
    for ex in EX:
        for text, finish, ok in _cases(ex):
            assert passes(TASK.score(text, ex), finish) is ok, text


def test_select_keeps_exactly_the_passing_ones():
    texts, scores, finish = [], [], []
    for ex in EX:
        for text, f, _ in _cases(ex):
            texts.append(text)
            scores.append(TASK.score(text, ex))
            finish.append(f)
    k = len(_cases(EX[0]))
    base = [[q * k + i for i in (0, 5, 6)] for q in range(3)]
    assert select(texts, scores, finish, k, keep=0, dedup=False) == base
    assert select(texts, scores, finish, k, keep=0, dedup=True) == [[b[0], b[2]] for b in base]
    assert select(texts, scores, finish, k, keep=1) == [[b[0]] for b in base]
    # A question where nothing passes keeps nothing.
    assert select(texts[1:5], scores[1:5], finish[1:5], 4, keep=0) == [[]]


def test_rejection_sample_writes_the_kept_samples_with_their_prompts(monkeypatch):
    k = len(_cases(EX[0]))

    def fake_rollout(model, tok, task, examples, *, group_size, **kw):
        assert group_size == k
        cases = [c for ex in examples for c in _cases(ex)]
        return Rollout(
            examples=examples, prompt_ids=[[1]] * len(examples),
            completion_ids=[[1]] * len(cases), texts=[c[0] for c in cases],
            finish_reasons=[c[1] for c in cases],
            scores=[task.score(c[0], examples[i // k]) for i, c in enumerate(cases)],
            rewards=torch.zeros(len(cases)), group_size=k,
        )  # fmt: skip

    monkeypatch.setattr(grpo.rollout, "rollout", fake_rollout)
    model = torch.nn.Linear(1, 1)
    records, stats = rejection_sample(model, None, TASK, EX, k=k, keep=2, positions=[7, 8, 9])
    assert [r["pos"] for r in records] == [7, 7, 8, 8, 9, 9]
    assert [r["completion"] for r in records[:2]] == [_right(EX[0]), _right(EX[0], " again")]
    assert records[0]["prompt"] == TASK.prompt(EX[0])
    assert records[0]["target"] == EX[0]["target"]
    assert stats["passed"] == 9 and stats["samples"] == 21
    assert abs(stats["acceptance_rate"] - 9 / 21) < 1e-12
    assert stats["coverage"] == 1.0 and stats["records"] == 6


def test_cli_writes_sft_jsonl_and_reports_the_rate(tmp_path):
    out = tmp_path / "sft.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "grpo.experiments.rejection", "--model", "tiny", "--out", str(out),
         "--questions", "4", "--k", "2", "--max-new-tokens", "4", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["samples"] == 8 and 0 <= stats["acceptance_rate"] <= 1
    assert out.is_file()  # a random model passes nothing: an empty file, and the rate says so
    assert len(out.read_text().splitlines()) == stats["records"]
    r = subprocess.run([sys.executable, "-m", "grpo.experiments.rejection", "--model", "tiny",
                        "--out", str(out), "--k", "0"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "--k must be >= 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
