"""The CPU countdown demo: its task variant, corpus, base, defaults, and a short run end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grpo.bases.build import (
    BASES,
    COUNTDOWN_SHIPPED_DIR,
    base_run_config,
    build_base,
    demo_base_name,
    validate_base,
)
from grpo.bases.countdown_demo import (
    DEMO_COUNTDOWN_CONFIG,
    DEMO_COUNTDOWN_MODES,
    demo_countdown_records,
    demo_countdown_task,
    first_steps,
    full_search,
    make_try,
    search_text,
)
from grpo.bases.pretrain import train_tokenizer
from grpo.bases.solver import MAX_VALUE
from grpo.run.context import RL_STREAM_OFFSET, draw_examples
from grpo.tasks import TINYZERO_COUNTDOWN, get_task
from grpo.tasks.search_metrics import search_behaviour

ROOT = Path(__file__).resolve().parents[1]
DEMO_VARIANT = {"min_numbers": 3, "max_numbers": 3, "min_number": 1, "max_number": 20,
                "min_target": 20, "max_target": 200}  # fmt: skip
TINY = replace(
    DEMO_COUNTDOWN_CONFIG, num_docs=400, tokenizer_docs=200, hidden_size=32,
    intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=2, head_dim=16,
    batch_size=2, steps=4, warmup_steps=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def records():
    return demo_countdown_records(3000, seed=0)


def test_the_task_defaults_are_the_demo_variant():
    task = get_task("countdown")
    assert {k: getattr(task, k) for k in DEMO_VARIANT} == DEMO_VARIANT
    tz = get_task("countdown", **TINYZERO_COUNTDOWN)
    assert (tz.max_numbers, tz.max_number, tz.max_target) == (4, 99, 999)
    for ex in task.heldout(200):
        assert len(ex["numbers"]) == 3 and all(1 <= n <= 20 for n in ex["numbers"])
        assert 20 <= ex["target"] <= 200
    assert len(task.heldout(500)) == 500, "the acceptance's 500 held-out questions exist"


def test_first_steps_are_in_a_fixed_order_without_division_by_one():
    steps = [s.text() for s in first_steps([6, 2, 12])]
    assert steps[:4] == ["6+2=8", "6-2=4", "6*2=12", "6/2=3"]
    assert steps[4:] == ["12+6=18", "12-6=6", "12*6=72", "12/6=2",
                         "12+2=14", "12-2=10", "12*2=24", "12/2=6"]  # fmt: skip
    assert "5/1=5" not in [s.text() for s in first_steps([5, 1, 7])]


def test_a_try_lists_every_finish_until_the_hit():
    first = first_steps([6, 2, 12])[0]  # 6+2=8, left [12 8]
    hit = make_try(first, 96)
    assert hit.text() == "6+2=8: 12+8=20 vs 96, 12-8=4 vs 96, 12*8=96 vs 96 yes."
    miss = make_try(first, 50)
    assert miss.text() == "6+2=8: 12+8=20 vs 50, 12-8=4 vs 50, 12*8=96 vs 50 no." and not miss.hit
    assert miss.nearest().text() == "12+8=20"


def test_search_text_and_answer():
    tries = full_search([6, 2, 12], 96)
    text, answer = search_text([6, 2, 12], 96, tries)
    assert text == ("6 2 12 to 96: 6+2=8: 12+8=20 vs 96, 12-8=4 vs 96, 12*8=96 vs 96 yes. "
                    "so 12*8 = 12*(6+2)")
    assert answer == "12*(6+2)"
    assert full_search([6, 2, 12], 50) is None, "no first step leads to 50"
    gave_up, wrong = search_text([6, 2, 12], 50, [make_try(first_steps([6, 2, 12])[0], 50)])
    assert gave_up.endswith("no. so 12+8 = 12+(6+2)") and wrong == "12+(6+2)"


def test_corpus_is_deterministic_and_mixes_modes_as_configured(records):
    again = demo_countdown_records(3000, seed=0)
    assert again == records
    assert demo_countdown_records(50, seed=1) != records[:50]
    kinds = Counter(kind for kind, _, _ in records)
    cfg = DEMO_COUNTDOWN_CONFIG
    # Worked examples keep a problem solved at the first try with P = worked_one_try_keep;
    # transcripts keep every problem, so they measure how common such problems are.
    one_try = [len(full_search(ex["numbers"], ex["target"])) == 1
               for kind, ex, _ in records if kind != "worked"]  # fmt: skip
    p1 = sum(one_try) / len(one_try)
    kept = (1 - cfg.transcript_share) * (1 - p1 * (1 - cfg.worked_one_try_keep))
    assert abs(kinds["worked"] / len(records) - kept / (cfg.transcript_share + kept)) < 0.04
    worked_one = [len(full_search(ex["numbers"], ex["target"])) == 1
                  for kind, ex, _ in records if kind == "worked"]  # fmt: skip
    expected = p1 * cfg.worked_one_try_keep / (1 - p1 * (1 - cfg.worked_one_try_keep))
    assert abs(sum(worked_one) / len(worked_one) - expected) < 0.04
    transcripts = len(records) - kinds["worked"]
    for mode in DEMO_COUNTDOWN_MODES:
        share = getattr(DEMO_COUNTDOWN_CONFIG, f"{mode}_share")
        assert abs(kinds[mode] / transcripts - share) < 0.04, (mode, kinds)
    assert all(text.endswith("<|endoftext|>") for _, _, text in records)


def test_every_search_is_honest_and_in_order(records):
    """Checks are honest (yes iff the claimed line reaches the target); tries never repeat."""
    task = demo_countdown_task()
    for kind, ex, text in records:
        if kind not in ("scratchpad", "worked"):
            continue
        start = text.index(f"{' '.join(map(str, ex['numbers']))} to {ex['target']}:")
        body = text[start:]
        if kind == "worked":
            body = body.split(" and the answer is ")[0]
        else:
            body = body.split(" </think>")[0]
        full = f"<think> {body} </think>"
        order = [s.text() for s in first_steps(ex["numbers"], MAX_VALUE)]
        written = re.findall(r"(\d+[-+*/]\d+=\d+):", body)  # a first step ends with a colon
        assert written == order[: len(written)], "tries follow the fixed order"
        if kind == "worked":
            answer = text.split("the answer is ")[-1].removesuffix(".<|endoftext|>")
        else:
            answer = text.split("<answer>")[-1].split("</answer>")[0]
        correct = task.is_correct(answer, ex)
        b = search_behaviour(full, ex["numbers"], ex["target"], correct)
        assert b["false_yes"] == 0.0, text
        assert correct == body.count(" yes.") == 1 or (not correct and " yes." not in body)
        if kind == "worked":
            assert correct, "worked examples always search to the solution"


def test_transcript_searches_give_up_at_the_configured_rate(records):
    went_on = failed = 0
    for kind, _, text in records:
        if kind != "scratchpad":
            continue
        tries = text.count(" no.") + text.count(" yes.")
        fails = text.count(" no.")
        failed += fails
        went_on += tries - 1  # every try after the first followed a failed one
    assert failed > 100
    assert abs(went_on / failed - DEMO_COUNTDOWN_CONFIG.continue_prob) < 0.06


def test_guesses_are_mostly_wrong(records):
    task = demo_countdown_task()
    guesses = [(ex, text.split("<answer>")[-1].split("</answer>")[0])
               for kind, ex, text in records if kind in ("answer", "empty_think")]  # fmt: skip
    right = sum(task.is_correct(a, ex) for ex, a in guesses) / len(guesses)
    assert 0.1 < right < 0.4, right


def test_the_search_starts_as_far_from_the_question_in_both_kinds(records):
    tok = train_tokenizer([t for _, _, t in records[:1500]], DEMO_COUNTDOWN_CONFIG)
    assert len(tok.encode(". Work it out: ")) == len(tok.encode(". Assistant: <think> "))


def test_rl_never_trains_on_the_corpus_indices():
    task = get_task("countdown")

    class Chars:  # one token per character: every countdown prompt fits 10,000 positions
        def encode_batch(self, texts):
            return [list(t) for t in texts]

    examples, pos, skipped = draw_examples(task, Chars(), 0, 3, 100, 10_000, step=1)
    assert examples == [task.train_example(RL_STREAM_OFFSET + i) for i in range(3)]
    assert (pos, skipped) == (3, 0)
    assert 100 * DEMO_COUNTDOWN_CONFIG.num_docs < RL_STREAM_OFFSET


def test_model_demo_means_the_tasks_demo_base():
    assert demo_base_name("demo", "countdown") == "demo-countdown"
    assert demo_base_name("demo", "addition") == "demo"
    assert demo_base_name("demo", "jsonl") == "demo"
    assert demo_base_name("gpu-countdown", "countdown") == "gpu-countdown"
    assert set(BASES) == {"demo", "demo-countdown", "gpu-countdown", "demo-student",
                          "demo-countdown-student"}  # fmt: skip


def test_the_shipped_countdown_student_is_valid_and_a_quarter_of_the_demo():
    """demo-countdown-student: the countdown demo's corpus, tokenizer and recipe, a quarter
    of the parameters, built on the task's default variant as the demo's base is."""
    from dataclasses import asdict

    from grpo.bases import ensure_base
    from grpo.bases.build import (
        COUNTDOWN_STUDENT_SHIPPED_DIR,
        base_name,
        base_run_config,
        validate_base,
    )
    from grpo.bases.countdown_demo import COUNTDOWN_STUDENT_CONFIG
    from model import load_pretrained

    shipped = COUNTDOWN_STUDENT_SHIPPED_DIR
    assert validate_base(shipped, COUNTDOWN_STUDENT_CONFIG) is None
    assert ensure_base("demo-countdown-student", log=lambda *a: None) == shipped
    assert base_name(COUNTDOWN_STUDENT_CONFIG) == "demo-countdown-student"
    assert base_name(DEMO_COUNTDOWN_CONFIG) == "demo-countdown"
    differ = {k for k, v in asdict(COUNTDOWN_STUDENT_CONFIG).items()
              if asdict(DEMO_COUNTDOWN_CONFIG)[k] != v}  # fmt: skip
    assert differ == {"hidden_size", "intermediate_size", "num_heads", "num_kv_heads"}
    student = sum(p.numel() for p in load_pretrained(shipped).parameters())
    demo = sum(p.numel() for p in load_pretrained(ensure_base("demo-countdown")).parameters())
    assert 0.2 < student / demo < 0.3
    assert (shipped / "tokenizer.json").read_text() == (
        ensure_base("demo-countdown") / "tokenizer.json").read_text()  # fmt: skip
    assert base_run_config(shipped) == base_run_config(ensure_base("demo-countdown"))


def test_countdown_demo_defaults_reach_the_config(tmp_path):
    import argparse

    from grpo.run.config import TASK_DEFAULTS, TrainConfig, add_config_flags, config_from_args

    ap = argparse.ArgumentParser()
    add_config_flags(ap)
    cfg, _ = config_from_args(ap.parse_args(["--task", "countdown"]))
    for key, value in TASK_DEFAULTS["countdown"].items():
        assert getattr(cfg, key) == value, key
    assert cfg.model == "demo"
    cfg, _ = config_from_args(ap.parse_args(["--task", "countdown", "--steps", "3"]))
    assert cfg.steps == 3 and cfg.max_new_tokens == TASK_DEFAULTS["countdown"]["max_new_tokens"]
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"task": "countdown", "lr": 5e-5}))
    cfg, _ = config_from_args(ap.parse_args([]), file=str(f))
    assert cfg.lr == 5e-5 and cfg.eval_n == TASK_DEFAULTS["countdown"]["eval_n"]
    plain, _ = config_from_args(ap.parse_args([]))
    assert plain.task == "addition" and plain.steps == TrainConfig().steps


def test_base_run_config_names_the_variant(tmp_path):
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "manifest.json").write_text(json.dumps({"build": {"task": "countdown"}}))
    assert base_run_config(gpu) == {"task": "countdown", **TINYZERO_COUNTDOWN}
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "manifest.json").write_text(json.dumps({"build": DEMO_COUNTDOWN_CONFIG.to_dict()}))
    assert base_run_config(demo) == {"task": "countdown"}


def test_the_shipped_countdown_base_is_valid_and_small():
    assert validate_base(COUNTDOWN_SHIPPED_DIR, DEMO_COUNTDOWN_CONFIG) is None
    size = sum(f.stat().st_size for f in COUNTDOWN_SHIPPED_DIR.iterdir())
    assert size <= 30 * 2**20, size


def test_short_countdown_demo_end_to_end(tmp_path):
    """A tiny countdown base, then train_zero.py --task countdown for 2 steps, end to end."""
    base = build_base(tmp_path / "base", TINY, log=lambda line: None)
    run = tmp_path / "run"
    args = ["--task", "countdown", "--model", str(base), "--out", str(run), "--steps", "2",
            "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "48",
            "--eval-n", "8", "--eval-every", "1", "--plot", "false"]  # fmt: skip
    p = subprocess.run([sys.executable, "train_zero.py", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "eval_accuracy" not in r]
    evals = [r for r in rows if "eval_accuracy" in r]
    assert [r["step"] for r in train] == [1, 2] and [r["step"] for r in evals] == [0, 1, 2]
    for r in train:
        assert {"tries_mean", "gave_up_frac", "false_yes_frac", "recovered_frac"} <= set(r), r
    for r in evals:
        assert {"eval_tries_mean", "eval_gave_up_frac", "eval_false_yes_frac",
                "eval_recovered_frac"} <= set(r), r  # fmt: skip
    cfg = json.loads((run / "train_config.json").read_text())
    from grpo.run.config import TASK_DEFAULTS

    defaults = TASK_DEFAULTS["countdown"]
    assert cfg["task"] == "countdown" and cfg["lr"] == defaults["lr"], "the demo's defaults"
    summary = p.stdout[p.stdout.index("held-out (8)") :]
    assert all(f"\n{name} " in summary for name in ("accuracy", "tries", "gave up", "recovered"))
    # Same seed, same file.
    run2 = tmp_path / "run2"
    args2 = [a if a != str(run) else str(run2) for a in args]
    p2 = subprocess.run([sys.executable, "train_zero.py", *args2], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)  # fmt: skip
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert (run2 / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()


def test_never_give_up_bans_so_right_after_a_failed_try(records):
    from grpo.bases.inspect import never_give_up

    tok = train_tokenizer([t for _, _, t in records[:1500]], DEMO_COUNTDOWN_CONFIG)
    ban = never_give_up(tok)
    so, no, dot = (tok.encode(x)[0] for x in (" so", " no", "."))
    generated = torch.tensor([[5, no, dot], [no, dot, 7], [5, 6, dot]])
    logits = torch.zeros(3, 600)
    out = ban(logits, generated)
    assert out[0, so] == float("-inf") and torch.isfinite(out[1:]).all()
    assert (out[0, :so] == 0).all() and (logits == 0).all(), "only that logit, on a copy"
    assert ban(logits, generated[:, :1]) is logits, "nothing to ban before two tokens"
