"""Countdown steps for a PRM (tries), their exact correctness, balanced hard negatives, the
ROC area and the shortcut check, on hand-made searches and numbers."""

import random

import pytest

from grpo.search.verifiers.data import (
    balanced_sample,
    completion_format,
    completion_kind,
    roc_auc,
    shortcut_check,
)
from grpo.search.verifiers.labels import countdown_steps_correct, split_tries, try_correct
from grpo.tasks import get_task

EX = {"numbers": [20, 7, 8], "target": 21}
HEAD = " <think> 20 7 8 to 21:"
FAIL = " 20+7=27: 27+8=35 vs 21, 27-8=19 vs 21, 27*8=216 vs 21 no."
HIT = " 20-7=13: 13+8=21 vs 21 yes."
TAIL = " so 13+8 = (20-7)+8 </think> <answer>(20-7)+8</answer>"
RIGHT = HEAD + FAIL + HIT + TAIL
TASK = get_task("countdown")


def test_split_tries_cuts_after_each_verdict_and_joins_back():
    assert split_tries(RIGHT) == [HEAD + FAIL, HIT, TAIL]
    direct = " <think></think> <answer>17+(8+20)</answer>"
    assert split_tries(direct) == [direct]
    cut = HEAD + FAIL + " 20-7=13: 13+8"
    assert split_tries(cut) == [HEAD + FAIL, " 20-7=13: 13+8"]
    for text in (RIGHT, direct, cut, HEAD + FAIL):
        assert "".join(split_tries(text)) == text


@pytest.mark.parametrize("text, right", [
    (FAIL, True),                                            # a true "no": no finish hits 21
    (HIT, True),                                             # a true "yes"
    (" 20+7=27: 27+8=36 vs 21, 27-8=19 vs 21 no.", False),   # a wrong sum (27 + 8 = 35)
    (" 20+7=27: 27-8=19 vs 21 yes.", False),                 # a false "yes": 19 is not 21
    (" 20-7=13: 13*8=104 vs 21, 13+8=21 vs 21 no.", False),  # a false "no": 13 + 8 hits 21
    (" 20-7=13: 13+9=22 vs 21 no.", True),                   # 9 is not one of its numbers,
    # but the arithmetic is right and "no" is true
    (" 7+8=15: 15+6=21 vs 21 yes.", False),                  # "yes" on a number it lacks
    (" 24/8=3: 3*7=21 vs 21 yes.", False),                   # 24 is not one of its numbers
    (" 20/8=2: 2+7=9 vs 21 no.", False),                     # 20 / 8 is not an integer
    (" yes.", False),                                        # a verdict with no step
    (" 20-7=13: 13+8=21 vs 21", False),                      # cut off: no verdict
])  # fmt: skip
def test_try_correct(text, right):
    assert try_correct(text, EX["numbers"], EX["target"]) is right


def test_countdown_steps_correct_on_hand_made_searches():
    # A right search: every prefix is right.
    assert countdown_steps_correct(split_tries(RIGHT), EX) == [True, True, True]
    # A wrong sum in the first try: every prefix is wrong, though the answer is right.
    bad_sum = HEAD + " 20+7=27: 27+8=36 vs 21 no." + HIT + TAIL
    assert countdown_steps_correct(split_tries(bad_sum), EX) == [False, False, False]
    # A false "yes": the try and the rest are wrong.
    false_yes = HEAD + FAIL + " 20+8=28: 28-7=20 vs 21 yes. so 28-7 </think> <answer>(20+8)-7" \
                "</answer>"  # fmt: skip
    assert countdown_steps_correct(split_tries(false_yes), EX) == [True, False, False]
    # Cut off by the budget mid-try: the open last step is wrong.
    cut = HEAD + FAIL + " 20-7=13: 13+8"
    assert countdown_steps_correct(split_tries(cut), EX) == [True, False]
    # Cut off right after a verdict: the search never answers, so its last step is wrong.
    assert countdown_steps_correct(split_tries(HEAD + FAIL + HIT), EX) == [True, False]
    # A direct answer is judged by its answer alone.
    assert countdown_steps_correct([" <think></think> <answer>(20-7)+8</answer>"], EX) == [True]
    assert countdown_steps_correct([" <think></think> <answer>20+7+8</answer>"], EX) == [False]


def test_formats_and_kinds():
    assert completion_format("countdown", RIGHT) == "search"
    assert completion_format("countdown", " <think></think> <answer>1</answer>") == "direct"
    assert completion_format("countdown", HEAD + FAIL) == "cut_off"
    assert completion_format("addition", " <think> 0597 + 0912: 7+2+0=9:9, 9+1+0=10:09 "
                             "</think> <answer>1509</answer>") == "scratchpad"  # fmt: skip
    assert completion_format("addition", " <answer>1509</answer>") == "direct"
    assert completion_kind(TASK, RIGHT, EX, True) == "right"
    false_yes = HEAD + " 20+8=28: 28-7=20 vs 21 yes. </think> <answer>(20+8)-7</answer>"
    assert completion_kind(TASK, false_yes, EX, False) == "false_yes"
    gave_up = HEAD + FAIL + " </think> <answer>(20+7)+8</answer>"
    assert completion_kind(TASK, gave_up, EX, False) == "wrong_search"
    assert completion_kind(TASK, HEAD + FAIL, EX, False) == "cut_off"
    assert completion_kind(TASK, " <answer>1</answer>", EX, False) == "wrong_direct"


def test_balanced_sample_takes_as_many_wrong_as_right_with_hard_negatives():
    kinds = ["right"] * 6 + ["wrong_direct"] * 10 + ["false_yes"] * 2 + ["cut_off"] * 5
    chosen = balanced_sample(kinds, random.Random(0))
    picked = [kinds[i] for i in chosen]
    assert chosen == sorted(chosen) and len(set(chosen)) == len(chosen) == 12
    assert picked.count("right") == 6  # all six right ones
    hard = picked.count("false_yes") + picked.count("cut_off")
    assert hard == 3 and picked.count("wrong_direct") == 3  # ceil(0.5 * 6) hard negatives
    # Few easy negatives: hard ones fill the quota.
    kinds = ["right"] * 4 + ["wrong_direct"] + ["false_yes"] * 9
    picked = [kinds[i] for i in balanced_sample(kinds, random.Random(1))]
    assert picked.count("wrong_direct") == 1 and picked.count("false_yes") == 3
    # More wrong than right... and more right than wrong: n is the smaller count.
    kinds = ["right"] * 9 + ["cut_off"] * 2
    picked = [kinds[i] for i in balanced_sample(kinds, random.Random(2))]
    assert picked.count("right") == 2 and picked.count("cut_off") == 2
    assert balanced_sample(["right"] * 3, random.Random(0)) == []
    # Deterministic given the generator's seed.
    kinds = ["right"] * 20 + ["wrong_direct"] * 20 + ["cut_off"] * 20
    assert balanced_sample(kinds, random.Random(5)) == balanced_sample(kinds, random.Random(5))
    with pytest.raises(ValueError, match="hard_share"):
        balanced_sample(kinds, random.Random(0), hard_share=1.5)


def test_roc_auc_against_a_hand_computation():
    # Right: 0.9, 0.6, 0.4; wrong: 0.7, 0.4, 0.1. Pairs (right above wrong, tie = 1/2):
    # 0.9 beats all 3 -> 3; 0.6 beats 0.4 and 0.1 -> 2; 0.4 ties 0.4, beats 0.1 -> 1.5.
    # (3 + 2 + 1.5) / 9 = 6.5 / 9.
    scores = [0.9, 0.7, 0.6, 0.4, 0.4, 0.1]
    labels = [True, False, True, True, False, False]
    assert roc_auc(scores, labels) == pytest.approx(6.5 / 9)
    assert roc_auc([0.2, 0.8], [False, True]) == 1.0
    assert roc_auc([0.2, 0.8], [True, False]) == 0.0
    assert roc_auc([0.5] * 4, [True, False, True, False]) == 0.5
    assert roc_auc([0.3, 0.4], [True, True]) != roc_auc([0.3, 0.4], [True, True])  # NaN
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        roc_auc([0.1, 0.2], [True])


def test_shortcut_check_per_format():
    scores = [0.9, 0.8, 0.85, 0.1, 0.2]
    labels = [True, False, True, False, False]
    formats = ["search", "search", "search", "direct", "direct"]
    out = shortcut_check(scores, labels, formats)
    assert out["search"]["right"] == 2 and out["search"]["wrong"] == 1
    assert out["search"]["right_mean"] == pytest.approx(0.875)
    assert out["search"]["wrong_mean"] == pytest.approx(0.8)
    assert out["search"]["roc_auc"] == 1.0
    assert out["direct"] == {"right": 0, "wrong": 2, "right_mean": None,
                             "wrong_mean": pytest.approx(0.15), "roc_auc": None}  # fmt: skip


def test_bucketed_order_is_a_permutation_of_like_length_batches():
    from grpo.search.verifiers.train import bucketed_order

    rng = random.Random(0)
    records = [{"ids": [0] * rng.randint(1, 300)} for _ in range(100)]
    order = bucketed_order(records, 4, random.Random(1))
    assert sorted(order) == list(range(100))
    assert order == bucketed_order(records, 4, random.Random(1))
    # Each batch of 4 comes from one sorted run of 8 * 4 = 32: its spread of lengths is far
    # below that of a shuffled batch.
    def spread(o):
        bs = [o[b : b + 4] for b in range(0, len(o), 4)]
        return sum(max(len(records[i]["ids"]) for i in b) - min(len(records[i]["ids"])
                   for i in b) for b in bs)  # fmt: skip

    shuffled = list(range(100))
    random.Random(1).shuffle(shuffled)
    assert spread(order) < spread(shuffled) / 3
