"""Pieces of data-parallel R1-Zero that run in one process: a rank's share of a rollout."""

import pytest
import torch

from grpo.bases.common import TEMPLATE
from grpo.rollout import rollout
from grpo.tasks import get_task
from model import Tokenizer, load_pretrained


@pytest.fixture(scope="module")
def base():
    path = "assets/demo-base"
    task = get_task("addition", template=TEMPLATE)
    return load_pretrained(path, dtype=torch.float32), Tokenizer.from_dir(path), task


def test_each_share_of_a_rollout_samples_what_the_whole_rollout_does(base):
    """Ranks that each roll out a contiguous share of the step's groups (with the step's
    seed) produce, together, the one-process rollout: texts, rewards and finish reasons."""
    model, tok, task = base
    examples = [task.train_example(i) for i in range(5)]
    kw = dict(group_size=4, max_new_tokens=48, temperature=1.0, stop_strings=["</answer>"],
              seed=123)  # fmt: skip
    whole = rollout(model, tok, task, examples, **kw)
    assert len(set(whole.texts)) > 4  # the samples differ: the noise matters
    for cuts in ([0, 3, 5], [0, 1, 2, 5]):
        parts = [rollout(model, tok, task, examples[a:b], first_group=a, total_groups=5, **kw)
                 for a, b in zip(cuts, cuts[1:])]  # fmt: skip
        assert [t for p in parts for t in p.texts] == whole.texts, cuts
        assert torch.equal(torch.cat([p.rewards for p in parts]), whole.rewards)
        assert [r for p in parts for r in p.finish_reasons] == whole.finish_reasons
    # Without its place in the step, a share samples something else.
    alone = rollout(model, tok, task, examples[3:], **kw)
    assert alone.texts != whole.texts[12:]
