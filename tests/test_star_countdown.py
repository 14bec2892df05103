"""STaR on countdown: the hint derived from the solution, and the hint-constrained rationale
stored under the plain prompt, with no hint wording, wrong or dishonest ones dropped."""

import json

import pytest
import torch

import grpo.experiments.star as star
import grpo.rollout
from grpo.bases.countdown_demo import first_steps, make_try
from grpo.rollout import Rollout
from grpo.tasks import get_task
from grpo.tasks.countdown import COUNTDOWN_QUESTION

TASK = get_task("countdown")


def _ex(numbers, target, solution):
    return {"question": COUNTDOWN_QUESTION.format(numbers=numbers, target=target),
            "numbers": numbers, "target": target, "solution": solution}  # fmt: skip


@pytest.mark.parametrize("numbers, target, solution, hint", [
    ([20, 7, 8], 21, "(20 - 7) + 8", "20-7=13"),       # (a op b) op c
    ([12, 6, 2], 96, "12 * (6 + 2)", "6+2=8"),          # c op (a op b)
    ([7, 20, 8], 35, "(7 + 20) + 8", "20+7=27"),        # larger operand first
    ([5, 12, 14], 21, "14 - (5 - 12)", "12-5=7"),       # a negative inner step, flipped
    ([18, 3, 4], 24, "(18 / 3) * 4", "18/3=6"),         # division
    ([20, 6, 3], 10, "20 / (6 / 3)", "6/3=2"),          # division inside, division outside
    ([7, 1, 20], 27, "(7 / 1) + 20", "7*1=7"),          # x/1 is written x*1 by the base
    ([3, 9, 4], 108, "(9 * 3) * 4", "9*3=27"),
])  # fmt: skip
def test_hint_is_the_solutions_inner_step_in_the_base_grammar(numbers, target, solution, hint):
    assert star.countdown_hint(_ex(numbers, target, solution)) == (hint, "solution")


def test_hint_falls_back_to_the_search_and_never_evals():
    # 10/4 is not an integer: the base cannot write it; the first hitting try of its search.
    ex = _ex([10, 4, 16], 40, "(10 / 4) * 16")
    hint, source = star.countdown_hint(ex)
    assert source == "search"
    step = next(s for s in first_steps(ex["numbers"]) if s.text() == hint)
    assert make_try(step, 40).hit
    # A "solution" that is not an expression of the generator's shape is only read by regex.
    evil = _ex([20, 7, 8], 21, "__import__('os').system('false')")
    assert star.countdown_hint(evil)[1] == "search"
    assert star.countdown_hint(_ex([2, 3, 5], 1000, "(2 + 3) + 5")) is None  # unreachable


def test_honest_failed_try():
    ex = _ex([20, 7, 8], 21, "(20 - 7) + 8")
    head = " <think> 20 7 8 to 21:"
    ok = head + " 20+7=27: 27+8=35 vs 21, 27-8=19 vs 21, 27*8=216 vs 21 no."
    assert star.honest_failed_try(ok, ex, "20-7=13")
    assert not star.honest_failed_try(ok, ex, "20+7=27")  # the hinted step itself failed
    assert not star.honest_failed_try(ok.replace("27-8=19", "27-8=18"), ex, "20-7=13")  # 27-8
    missed = head + " 20-7=13: 13+8=21 vs 21 no."  # a hit called "no"
    assert not star.honest_failed_try(missed, ex, "20+7=27")
    assert not star.honest_failed_try(" <think></think> <answer>20+7</answer>", ex, "20-7=13")


class _Tok:
    def encode(self, text):
        return list(range(len(text.split())))


def _fake_continue(calls, phase1, phase2):
    """A stand-in for star._continue: phase 1 (stop at " no.") answers phase1[numbers],
    phase 2 (stop at </answer>) phase2[numbers]; every call is recorded."""
    def fake(model, tok, prompts, prefixes, *, max_new_tokens, stop_strings, seed,
             temperature=1.0):  # fmt: skip
        calls.append((list(prompts), list(prefixes), stop_strings))
        table = phase1 if stop_strings == [star.VERDICT_NO] else phase2
        out = []
        for prompt, prefix in zip(prompts, prefixes):
            key = next(k for k in table if f"Using the numbers {k}," in prompt)
            text = table[key]
            out.append((text, len(text.split()), "stop", len(prefix.split())))
        return out

    return fake


def test_constrained_rationale_is_stored_under_the_plain_prompt(monkeypatch):
    """A: the base's honest failed try, then the forced hinted step; B: a direct answer, so
    the attempt starts from the forced header; C: wrong even so; D: the right answer after a
    false "yes" claim. A and B are kept, under the plain prompt, with no hint wording."""
    a = _ex([20, 7, 8], 21, "(20 - 7) + 8")
    b = _ex([12, 6, 2], 96, "12 * (6 + 2)")
    c = _ex([18, 3, 4], 24, "(18 / 3) * 4")
    d = _ex([3, 9, 4], 108, "(9 * 3) * 4")
    own = " <think> 20 7 8 to 21: 20+7=27: 27+8=35 vs 21, 27-8=19 vs 21, 27*8=216 vs 21 no."
    phase1 = {"[20, 7, 8]": own + " 20-7=13: 13+8=", "[12, 6, 2]": " <answer>12+6+2</answer>",
              "[18, 3, 4]": " <answer>18+3</answer>", "[3, 9, 4]": " <answer>3</answer>"}
    phase2 = {"[20, 7, 8]": "21 vs 21 yes. so 13+8 = (20-7)+8 </think> <answer>(20-7)+8</answer>",
              "[12, 6, 2]": "20 vs 96, 12-8=4 vs 96, 12*8=96 vs 96 yes. so 12*8 = 12*(6+2) "
                            "</think> <answer>12*(6+2)</answer>",
              "[18, 3, 4]": "10 vs 24 no. so 6+4 = (18/3)+4 </think> <answer>(18/3)+4</answer>",
              "[3, 9, 4]": "31 vs 108 yes. so 27*4 = (9*3)*4 </think> <answer>(9*3)*4</answer>"}
    calls = []
    monkeypatch.setattr(star, "_continue", _fake_continue(calls, phase1, phase2))
    records, st = star.constrained_rationales(None, _Tok(), TASK, [a, b, c, d],
                                              max_new_tokens=480, seed=0,
                                              positions=[5, 6, 7, 8])  # fmt: skip
    assert [r["pos"] for r in records] == [5, 6]
    assert st["rationalise_attempts"] == 4 and st["rationalised"] == 2
    assert st["own_try_kept"] == 1 and st["hint_from_solution"] == 4
    assert st["forced_tokens"] > 0 and st["kept_forced_tokens"] < st["kept_tokens"]
    # The model only ever saw plain prompts: the hint is in the completion's prefix.
    assert all(p == TASK.prompt(e) for p, e in zip(calls[0][0], [a, b, c, d]))
    assert all("Hint" not in p for prompts, _, _ in calls for p in prompts)
    assert calls[1][1][0] == own + " 20-7=13: 13+8="  # the base's own try kept, then forced
    assert calls[1][1][1] == " <think> 12 6 2 to 96: 6+2=8: 12+8="  # the header forced
    for r, ex in zip(records, [a, b]):
        assert r["prompt"] == TASK.prompt(ex) and r["question"] == ex["question"]
        assert "Hint" not in r["prompt"] and "Hint" not in r["completion"]
        assert r["completion"].startswith(" <think> ") and r["rationalised"] is True
        assert TASK.score(r["completion"], ex)["accuracy"] == 1.0
    assert records[0]["completion"] == own + " 20-7=13: 13+8=" + phase2["[20, 7, 8]"]


def test_star_data_countdown_keeps_correct_samples_then_rationales(monkeypatch):
    """star_data(constrained=True): the plain samples (all wrong here) are sampled first; the
    prompt hint, measured for comparison, is neither kept nor counted as a completion."""
    a = _ex([20, 7, 8], 21, "(20 - 7) + 8")
    seen = []

    def fake_rollout(model, tok, task, examples, *, group_size, **kw):
        seen.extend(task.prompt(ex) for ex in examples)
        texts = [" <answer>20+7+8</answer>"] * (len(examples) * group_size)
        n = len(texts)
        return Rollout(examples=examples, prompt_ids=[[1]] * len(examples),
                       completion_ids=[[1]] * n, texts=texts, finish_reasons=["stop"] * n,
                       scores=[task.score(t, examples[i // group_size])
                               for i, t in enumerate(texts)],
                       rewards=torch.zeros(n), group_size=group_size)  # fmt: skip

    phase1 = {"[20, 7, 8]": " <answer>1</answer>"}
    phase2 = {"[20, 7, 8]": "21 vs 21 yes. so 13+8 = (20-7)+8 </think> <answer>(20-7)+8</answer>"}
    monkeypatch.setattr(grpo.rollout, "rollout", fake_rollout)
    monkeypatch.setattr(star, "_continue", _fake_continue([], phase1, phase2))
    records, stats = star.star_data(torch.nn.Linear(1, 1), _Tok(), TASK, [a], k=3,
                                    max_new_tokens=480, seed=0, positions=[4],
                                    constrained=True)  # fmt: skip
    assert stats["completions"] == 3 + 1 and stats["correct"] == 0
    assert stats["rationalised"] == stats["kept"] == 1 and stats["rationalise_attempts"] == 1
    assert stats["prompt_hint_attempts"] == 1 and stats["prompt_hint_passed"] == 0
    assert any("Hint:" in p for p in seen)  # the prompt hint was measured ...
    assert len(records) == 1 and "Hint" not in json.dumps(records)  # ... and not kept


def test_countdown_cli_refuses_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    def started(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(star, "heldout_eval", started)
    monkeypatch.setattr(star, "run_stage", started)
    addition_run = tmp_path / "rl"
    addition_run.mkdir()
    (addition_run / "metrics.jsonl").write_text("")
    (addition_run / "train_config.json").write_text(json.dumps({"task": "addition"}))
    out = tmp_path / "D"
    for flags, message in [
        (["--k", "0"], "--k must be >= 1"),
        (["--max-new-tokens", "900"], "exceeds the model's context"),
        (["--rl", str(addition_run)], "a run of the addition task, not countdown"),
        (["--task", "countdwn"], "invalid choice"),
    ]:  # fmt: skip
        try:
            rc = star.main(["--task", "countdown", "--out", str(out), *flags])
        except SystemExit as e:  # argparse's own refusals exit from parse_args
            rc = e.code
        assert rc == 2, flags
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()
