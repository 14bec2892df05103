"""Pieces of data-parallel R1-Zero that run in one process: a rank's share of a rollout."""

import pytest
import torch

from grpo.rollout import rollout


def test_each_share_of_a_rollout_samples_what_the_whole_rollout_does(addition_base):
    """Ranks that each roll out a contiguous share of the step's groups (with the step's
    seed) produce, together, the one-process rollout: texts, rewards and finish reasons."""
    model, tok, task = addition_base
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


@pytest.mark.parametrize("aggregation", ["dapo", "grpo", "dr_grpo"])
def test_shares_of_a_mini_batch_sum_to_its_gradient(tmp_path, aggregation):
    """Trainer._backward on data-parallel shares of a mini-batch: the gradients (and the
    metric sums) of the shares add up to the whole mini-batch's, because the loss
    weights carry the mini-batch's global normaliser. fp64, so the match is tight."""
    from grpo.loss import token_weights
    from grpo.rollout import pack
    from grpo.run.config import TrainConfig
    from grpo.trainer import Trainer

    cfg = TrainConfig(model="tiny", task="countdown", prompts_per_step=4, group_size=4,
                      max_new_tokens=20, eval_n=8, plot=False, entropy_coef=0.01, beta=0.01,
                      mu=2, mini_batches=2, micro_batch_size=3, aggregation=aggregation,
                      out=str(tmp_path / "run"))  # fmt: skip
    t = Trainer(cfg, log=lambda *a: None)
    t.model.double()
    t.ref.double()
    ro = rollout(t.model, t.tok, t.task, [t.task.train_example(i) for i in range(4)],
                 group_size=4, max_new_tokens=20, seed=3)  # fmt: skip
    batch = pack(ro, t.tok.pad_id, "cpu")
    N = batch.input_ids.shape[0]
    adv = torch.linspace(-1.5, 1.5, N, dtype=torch.float64)  # hand-made, all nonzero
    old, ref = t._logprobs(t.model, batch), t._logprobs(t.ref, batch)
    mb = torch.randperm(N, generator=torch.Generator().manual_seed(0))[: N // 2 + 1]
    w = token_weights(batch.completion_mask[mb], aggregation, cfg.max_new_tokens)

    def grads(shares):
        t.opt.zero_grad(set_to_none=True)
        sums = {}
        for rows in shares:
            for k, v in t._backward(batch, adv, mb, w, old, ref, rows=rows).items():
                sums[k] = sums.get(k, 0) + v
        return [p.grad.clone() for p in t.model.parameters()], sums

    whole, whole_sums = grads([None])
    for cut in (5, 8, 13):
        parts, part_sums = grads([range(0, cut), range(cut, N)])
        for a, b in zip(whole, parts):
            assert (a - b).abs().max() <= 1e-6 * a.abs().max(), float((a - b).abs().max())
        for k in whole_sums:
            assert float(part_sums[k]) == pytest.approx(float(whole_sums[k]), rel=1e-6, abs=1e-9)
    one_share, _ = grads([range(0, 8)])
    assert not all(torch.allclose(a, b) for a, b in zip(whole, one_share))


def test_each_share_of_an_evaluation_grades_what_the_whole_does(addition_base):
    """Sampled evaluation split across ranks (evaluate's share=): every question gets the
    completions of the one-process evaluation, across its generation batches too."""
    from grpo.evaluate import evaluate

    model, tok, task = addition_base
    qs = task.heldout(7)
    kw = dict(max_new_tokens=40, samples=2, temperature=1.0, batch_size=6, seed=5)  # 3 per batch
    whole = evaluate(model, tok, task, qs, **kw)
    for cuts in ([0, 4, 7], [0, 2, 5, 7], [0, 1, 7]):
        parts = [evaluate(model, tok, task, qs[a:b], share=(a, 7), **kw)
                 for a, b in zip(cuts, cuts[1:])]  # fmt: skip
        got = [r["completions"] for p in parts for r in p.records]
        assert got == [r["completions"] for r in whole.records], cuts
    alone = evaluate(model, tok, task, qs[4:], **kw)
    assert [r["completions"] for r in alone.records] != [r["completions"]
                                                         for r in whole.records[4:]]
