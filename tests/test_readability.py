"""Readability of an addition trace, and the reward that adds it."""

import pytest
import torch

from grpo.bases.addition import scratchpad
from grpo.rollout import Rollout
from grpo.tasks import get_task
from grpo.tasks.readability import add_readability_reward, readable

TASK = get_task("addition")
EX = {"question": "What is 436 + 383", "a": 436, "b": 383, "target": 819}
GOOD = f" <think> {scratchpad(436, 383)} </think> <answer>819</answer>"


@pytest.mark.parametrize("text, ok", [
    (GOOD, True),
    (GOOD.replace("436 +", "426 +"), False),  # an operand copied wrongly, the sum still right
    (GOOD.replace(" </think>", " so it is </think>"), False),  # a stray word
    (GOOD.replace(", 3+8", ",  3+8"), False),  # a stray space
    (" <answer>819</answer>", False),  # no work
    (" <think></think> <answer>819</answer>", False),
    (GOOD + " more", False),  # text after the answer
    (GOOD.replace("<answer>819", "<answer>820"), True),  # readable, though wrong
])  # fmt: skip
def test_readable_is_the_canonical_work_and_nothing_else(text, ok):
    assert scratchpad(436, 383) == "436 + 383: 6+3+0=9:9, 3+8+0=11:19, 4+3+1=8:819"
    assert readable(TASK, text, EX) is ok


def test_only_addition_has_a_readability_measure():
    with pytest.raises(ValueError, match="addition only"):
        readable(get_task("countdown"), GOOD, EX)


def test_the_reward_adds_weight_times_readable():
    texts = [GOOD, GOOD.replace("436 +", "426 +")]
    scores = [TASK.score(t, EX) for t in texts]
    ro = Rollout(examples=[EX], prompt_ids=[[1]], completion_ids=[[1], [1]], texts=texts,
                 finish_reasons=["stop", "stop"], scores=[dict(s) for s in scores],
                 rewards=torch.tensor([s["reward"] for s in scores]), group_size=2)  # fmt: skip
    add_readability_reward(ro, TASK, 0.5)
    assert ro.rewards.tolist() == pytest.approx([scores[0]["reward"] + 0.5, scores[1]["reward"]])
    assert [s["readable"] for s in ro.scores] == [1.0, 0.0]
