"""STaR: rationalisation stores the plain prompt (no hint), and the loop at toy size."""

import json
from pathlib import Path

import torch

import grpo.experiments.star as star
import grpo.rollout
from grpo.rollout import Rollout
from grpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
TASK = get_task("addition")


def _answer(ex, value):
    return f" <think> {ex['a']} + {ex['b']} </think> <answer>{value}</answer>"


def test_hint_gives_the_answer_in_the_question():
    ex = TASK.train_example(0)
    h = star.hinted_example(ex)
    assert h["question"] == ex["question"] + f" Hint: the answer is {ex['target']}."
    assert {k: v for k, v in h.items() if k != "question"} == {
        k: v for k, v in ex.items() if k != "question"}  # fmt: skip
    cd = get_task("countdown").train_example(0)
    assert f"Hint: {cd['solution']} = {cd['target']}." in star.hinted_example(cd)["question"]


def test_rationalisation_is_stored_without_the_hint(monkeypatch):
    """Question 0 is solved by sampling; question 1 only with the hint, and its rationale is
    stored under the plain prompt; question 2 is wrong even with the hint: dropped."""
    exs = [TASK.train_example(i) for i in range(3)]
    prompts_seen = []

    def fake_rollout(model, tok, task, examples, *, group_size, **kw):
        texts = []
        for ex in examples:
            prompts_seen.append(task.prompt(ex))
            hinted = "Hint:" in ex["question"]
            right = (ex["a"] == exs[0]["a"]) or (hinted and ex["a"] == exs[1]["a"])
            texts += [_answer(ex, ex["target"] if right else -1)] * group_size
        n = len(texts)
        return Rollout(
            examples=examples, prompt_ids=[[1]] * len(examples), completion_ids=[[1]] * n,
            texts=texts, finish_reasons=["stop"] * n,
            scores=[task.score(t, examples[i // group_size]) for i, t in enumerate(texts)],
            rewards=torch.zeros(n), group_size=group_size,
        )  # fmt: skip

    monkeypatch.setattr(grpo.rollout, "rollout", fake_rollout)
    records, stats = star.star_data(torch.nn.Linear(1, 1), None, TASK, exs, k=2,
                                    max_new_tokens=8, seed=0,
                                    positions=[10, 11, 12])  # fmt: skip
    assert stats == {"completions": 2 * 3 + 2, "correct": 1, "rationalise_attempts": 2,
                     "rationalised": 1, "kept": 2}  # fmt: skip
    assert [r["pos"] for r in records] == [10, 11]
    rationale = records[1]
    assert rationale["rationalised"] is True
    assert rationale["prompt"] == TASK.prompt(exs[1]) and "Hint" not in rationale["prompt"]
    assert rationale["question"] == exs[1]["question"]
    assert any("Hint: the answer is" in p for p in prompts_seen)  # the hint was used to sample
    assert TASK.score(rationale["completion"], exs[1])["accuracy"] == 1.0


def test_star_loop_at_toy_size(tmp_path, monkeypatch):
    monkeypatch.setattr(star, "SFT_FLAGS", ["--batch-size", "4", "--eval-n", "0",
                                            "--threads", "1"])  # fmt: skip
    monkeypatch.setattr(star, "RL_FLAGS", ["--steps", "2", "--prompts-per-step", "2",
                                           "--group-size", "2", "--eval-every", "1",
                                           "--eval-n", "2", "--threads", "1"])  # fmt: skip
    out = tmp_path / "star"
    args = ["--out", str(out), "--iterations", "2", "--questions", "12", "--k", "2",
            "--sft-steps", "2", "--heldout", "3", "--max-new-tokens", "96"]  # fmt: skip
    assert star.main(args) == 0
    res = json.loads((out / "results.json").read_text())
    its = res["iterations"]
    assert [r["iteration"] for r in its] == [1, 2] and [r["sft_steps"] for r in its] == [2, 3]
    assert its[1]["completions_total"] == its[0]["completions"] + its[1]["completions"]
    for r in its:  # GRPO's point is the last evaluation within the same completions
        assert r["grpo_completions"] <= r["completions_total"] or r["grpo_step"] == 0
    # Each iteration fine-tunes the ORIGINAL base, on data sampled by the previous iterate.
    for n in (1, 2):
        cfg = json.loads((out / f"iter_{n}" / "sft" / "sft_config.json").read_text())
        assert Path(cfg["model"]).name == "demo-base"
    rows = [json.loads(x) for x in (out / "iter_2" / "data.jsonl").read_text().splitlines()]
    assert all(r["pos"] >= 12 for r in rows)  # iteration 2 draws new questions
    assert all("Hint" not in r["prompt"] for r in rows)
    # A second run reuses everything and refuses other settings in the same folder.
    lines = []
    star.run(star.build_parser().parse_args(args), lines.append)
    assert sum("reused" in x for x in lines) == 2 and not any("train_" in x for x in lines)
    assert star.main([*args[:-2], "--max-new-tokens", "100"]) == 2


def test_refused_commands_write_nothing_and_name_the_flag(tmp_path, monkeypatch, capsys):
    """Every check before settings.json is written: a refused command leaves no folder that
    would refuse the corrected one; nothing is evaluated or trained."""
    def started(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(star, "heldout_eval", started)
    monkeypatch.setattr(star, "run_stage", started)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile.txt").write_text("x")
    out = tmp_path / "D"
    for flags, message in [
        (["--out", ""], "--out is empty"),
        (["--out", str(tmp_path / "afile.txt" / "sub")], "cannot create the folder"),
        (["--out", str(out), "--max-new-tokens", "100000"], "leaves no room for a prompt"),
        # The held-out prompts fit at 920, the train questions with their hint do not.
        (["--out", str(out), "--max-new-tokens", "920", "--iterations", "1", "--questions",
          "50"], "questions it samples do not fit"),
        (["--out", str(out), "--rl", str(tmp_path)], "--rl"),
    ]:  # fmt: skip
        assert star.main(flags) == 2, flags
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert err.startswith("python -m grpo.experiments.star: error: ")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]
