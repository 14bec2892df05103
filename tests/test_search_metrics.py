"""Behaviour metrics of countdown searches, on hand-written completions."""

from __future__ import annotations

import pytest

from grpo.tasks.search_metrics import behaviour_means, reaches, search_behaviour

NUMS, TARGET = [67, 65, 79], 780
FAIL = "67+65=132 [79 132], 132+79=211 no."
SOLVE = "79-67=12 [65 12], 65*12=780 yes."


def b(text: str, correct: bool = False) -> dict[str, float]:
    return search_behaviour(text, NUMS, TARGET, correct)


def test_direct_answer_has_no_tries():
    assert b("<answer>65*(79-67)</answer>", True) == {
        "tries": 0.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 0.0}  # fmt: skip


def test_fail_then_solve_is_recovered_and_honest():
    text = f"<think> 67 65 79 to 780: {FAIL} {SOLVE} so 65*12 </think> <answer>65*(79-67)</answer>"
    assert b(text, True) == {"tries": 2.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 1.0}


def test_give_up_after_failed_tries():
    text = f"<think> 67 65 79 to 780: {FAIL} 79+67=146 [65 146], 146+65=211 no. </think> " \
           "<answer>79+67+65</answer>"  # fmt: skip
    assert b(text) == {"tries": 2.0, "gave_up": 1.0, "false_yes": 0.0, "recovered": 0.0}


def test_cut_off_mid_search_did_not_give_up():
    text = f"<think> 67 65 79 to 780: {FAIL} 79+67=146 [65"
    assert b(text)["gave_up"] == 0.0 and b(text)["tries"] == 1.0


@pytest.mark.parametrize("claim", [
    "67+65=132 [79 132], 132*79=780 yes.",   # wrong arithmetic
    "67+65=132 [79 132], 132+79=211 yes.",   # right arithmetic, misses the target
    "65*12=780 yes.",                        # uses 12, which it does not have; leaves 67 and 79
    "79-67=12 [65 12], 65*12=780 [780], 780*1=780 yes.",  # uses a 1 it does not have
])  # fmt: skip
def test_false_yes(claim):
    text = f"<think> 67 65 79 to 780: {claim} </think> <answer>1</answer>"
    assert b(text)["false_yes"] == 1.0


# The CPU demo's tries: one first step, a colon, then the ways to finish it.
DEMO_NUMS, DEMO_TARGET = [6, 2, 12], 96
DEMO_FAIL = "6+2=8: 12+8=20, 12-8=4 no."
DEMO_HIT = "12/2=6: 6+6=12, 6-6=0, 6*6=36 no. 6*2=12: 12+12=24, 12-12=0, 12*12=144 no. " \
           "12-2=10: 10+6=16, 10-6=4, 10*6=60 no. 2*12=24: 24+6=30, 24-6=18, 24*6=144 no. " \
           "6+2=8: 12+8=20, 12-8=4, 12*8=96 yes."  # fmt: skip


def demo(text: str, correct: bool = False) -> dict[str, float]:
    return search_behaviour(f"<think> 6 2 12 to 96: {text} </think> <answer>x</answer>",
                            DEMO_NUMS, DEMO_TARGET, correct)  # fmt: skip


def test_demo_tries_are_read_per_first_step():
    assert demo(DEMO_HIT, True) == {
        "tries": 5.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 1.0}  # fmt: skip
    assert demo(DEMO_FAIL) == {"tries": 1.0, "gave_up": 1.0, "false_yes": 0.0, "recovered": 0.0}


@pytest.mark.parametrize("claim", [
    "6+2=8: 12+8=20, 12*8=98 yes.",      # wrong arithmetic on the claimed line
    "6+2=8: 12+8=20, 12*8=96, 8*2=16 yes.",  # the claimed (last) line misses
    "6+2=8: 12+8=96 yes.",               # arithmetic wrong, value hits
    "6*2=12: 12*8=96 yes.",              # finishes with an 8 it does not have
])  # fmt: skip
def test_demo_false_yes(claim):
    assert demo(claim)["false_yes"] == 1.0


def test_demo_tries_with_the_target_beside_each_line():
    text = "6+2=8: 12+8=20 vs 96, 12-8=4 vs 96, 12*8=96 vs 96 yes."
    assert demo(text, True) == {"tries": 1.0, "gave_up": 0.0, "false_yes": 0.0, "recovered": 0.0}
    assert demo("6+2=8: 12+8=20 vs 96 yes.")["false_yes"] == 1.0


def test_demo_yes_ignores_the_other_finishing_lines():
    # The lines before the hit are not on its path (a wrong one among them is
    # an arithmetic slip, not a false claim).
    assert demo("6+2=8: 12+8=21, 12-8=4, 12*8=96 yes.", True)["false_yes"] == 0.0


def test_reaches_needs_every_number_once():
    assert reaches([("79", "-", "67", "12"), ("65", "*", "12", "780")], NUMS, TARGET)
    assert not reaches([("79", "-", "67", "12")], NUMS, 12), "65 is left unused"
    assert not reaches([("67", "+", "67", "134")], [67, 1], 134), "67 used twice"
    assert reaches([("8", "/", "2", "4"), ("4", "+", "4", "8")], [8, 2, 4], 8)
    assert not reaches([("7", "/", "2", "3")], [7, 2], 3), "inexact division"


def test_hostile_text_is_bounded_and_safe():
    huge = "<think> " + "999999*999999=1 yes. " * 2000 + "</think>"
    assert b(huge)["tries"] == 0.0  # over the length bound: not searched
    # "9**9" is no step "a op b=c": a "yes." with no step before it is prose, not a try.
    assert b("<think> 9**9**9=1 yes. </think>")["tries"] == 0.0


def test_means_and_prefix():
    rows = [b(f"<think> {FAIL} {SOLVE} </think>", True), b("<answer>1</answer>")]
    assert behaviour_means(rows, "eval_") == {
        "eval_tries_mean": 1.0, "eval_gave_up_frac": 0.0, "eval_false_yes_frac": 0.0,
        "eval_recovered_frac": 0.5,
    }  # fmt: skip
    assert behaviour_means([]) == {}


def test_countdown_rows_carry_the_behaviour_metrics(tmp_path):
    """Every countdown training row and evaluation row has them; an addition row has none."""
    import json

    from grpo.run.config import TrainConfig
    from grpo.tasks import get_task
    from grpo.trainer import Trainer
    from tests.test_trainer import SMALL

    cfg = TrainConfig(**{**SMALL, "eval_every": 1}, steps=2, out=str(tmp_path / "run"))
    Trainer(cfg, log=lambda *a: None).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "reward" in r and "eval_accuracy" not in r]
    evals = [r for r in rows if "eval_accuracy" in r]
    assert len(train) == 2 and len(evals) == 3
    names = ("tries_mean", "gave_up_frac", "false_yes_frac", "recovered_frac")
    for r in train:
        assert all(k in r for k in names), sorted(r)
    for r in evals:
        assert all("eval_" + k in r for k in names), sorted(r)
    addition = get_task("addition")
    ex = addition.train_example(0)
    assert addition.behaviour("<think> 1+2=3 yes. </think>", ex, False) == {}
