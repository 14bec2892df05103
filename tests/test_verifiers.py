"""grpo.search.verifiers: the head, the masked (weighted) BCE, and where labels are read."""

import math

import pytest
import torch

from grpo.search.verifiers import Verifier, label_positions, verifier_loss
from model import ModelConfig, Tokenizer, Transformer


def test_loss_on_hand_made_values():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [0.25, 1.0]])
    mask = torch.tensor([[True, False], [True, True]])
    # By hand: BCE(0, 1) = ln 2; BCE(-1, 0.25) = -(0.25 ln s(-1) + 0.75 ln(1 - s(-1)));
    # BCE(3, 1) = ln(1 + e^-3). Position (0, 1) is masked out.
    s = 1 / (1 + math.exp(1))
    b00, b10 = math.log(2), -(0.25 * math.log(s) + 0.75 * math.log(1 - s))
    b11 = math.log(1 + math.exp(-3))
    assert verifier_loss(logits, labels, mask).item() == pytest.approx((b00 + b10 + b11) / 3)
    # pos_weight 2 doubles the weight of the labels >= 0.5 (here (0,0) and (1,1)).
    weighted = (2 * b00 + b10 + 2 * b11) / 5
    assert verifier_loss(logits, labels, mask, pos_weight=2.0).item() == pytest.approx(weighted)
    assert weighted == pytest.approx(0.409346, abs=1e-6)


def test_masked_tokens_get_no_gradient_and_an_empty_mask_gives_zero():
    logits = torch.randn(3, 4, requires_grad=True)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 2] = True
    verifier_loss(logits, torch.ones(3, 4), mask).backward()
    nonzero = logits.grad.nonzero().tolist()
    assert nonzero == [[1, 2]]
    # d/dz BCE(z, 1) = sigmoid(z) - 1
    assert logits.grad[1, 2].item() == pytest.approx(torch.sigmoid(logits[1, 2]).item() - 1)
    assert verifier_loss(logits, torch.ones(3, 4), torch.zeros(3, 4, dtype=torch.bool)) == 0
    with pytest.raises(ValueError, match="shapes differ"):
        verifier_loss(logits, torch.ones(3, 5), mask)


def test_head_starts_at_one_half_and_reads_every_token():
    cfg = ModelConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_layers=2,
                      num_heads=2, num_kv_heads=1, head_dim=8)  # fmt: skip
    policy = Transformer(cfg).init_weights(seed=1)
    v = Verifier.from_policy(policy, "prm")
    ids = torch.randint(0, 50, (2, 7))
    out = v(ids, torch.ones(2, 7, dtype=torch.bool))
    assert out.shape == (2, 7) and torch.all(out == 0)  # zero-initialised head: P = 0.5
    # The backbone is a copy: training it leaves the policy as it was.
    with torch.no_grad():
        next(v.backbone.parameters()).add_(1.0)
    assert not torch.equal(next(v.backbone.parameters()), next(policy.parameters()))
    with pytest.raises(ValueError, match="unknown verifier kind"):
        Verifier(policy, "value")


def test_label_positions_are_the_last_token_of_each_step():
    tok = Tokenizer.from_dir("assets/demo-base")
    prompt = "User: What is 305 + 718. Assistant:"
    steps = [" <think> 305 + 718: 5+8+0=13:3, ", "0+1+1=2:23, ", "3+7+0=10:023, ",
             "0+0+1=1:1023 </think> <answer>1023</answer>"]  # fmt: skip
    ids, ends = label_positions(tok, prompt, steps)
    assert ids == tok.encode(prompt + "".join(steps))
    assert ends == sorted(ends) and ends[-1] == len(ids) - 1
    for k, e in enumerate(ends):
        text = prompt + "".join(steps[: k + 1])
        assert tok.decode(ids[: e + 1]) == text  # the step ends exactly at that token
    with pytest.raises(ValueError, match="empty step"):
        label_positions(tok, prompt, ["a", ""])


def test_split_steps():
    from grpo.search.verifiers.labels import split_steps

    assert split_steps("a, b, c") == ["a, ", "b, ", "c"]
    assert split_steps("a, b, ") == ["a, ", "b, "]
    assert split_steps("abc") == ["abc"] and split_steps("") == []
    assert split_steps("x; y, z", (", ", "; ")) == ["x; ", "y, ", "z"]
    text = " <think> 305 + 718: 5+8+0=13:3, 0+1+1=2:23 </think> <answer>23</answer>"
    assert "".join(split_steps(text)) == text and len(split_steps(text)) == 2
    with pytest.raises(ValueError):
        split_steps("a", ())


def test_mc_step_labels_on_a_toy_policy():
    from grpo.search.verifiers.labels import mc_step_labels

    # The right answer is "42". The toy policy's continuations after each prefix are fixed:
    # after "A" half of them recover, after "A B" none do (step B is the mistake).
    continuations = {"A": ["42", "41", "42", "40"], "A B": ["40", "41", "43", "44"]}
    calls = []

    def continue_from(prefix, n):
        calls.append((prefix, n))
        return continuations[prefix][:n]

    hard, soft = mc_step_labels(["A", " B", " 43"], continue_from, lambda t: t.endswith("42"), 4)
    assert hard == [1.0, 0.0, 0.0]
    assert soft == [0.5, 0.0, 0.0]
    assert calls == [("A", 4), ("A B", 4)]  # the last step is graded, not continued
    # Under-sampling: with n = 1 a good prefix whose one rollout fails is labelled bad.
    hard1, _ = mc_step_labels(["A", " B", " 42"], lambda p, n: ["41"] * n,
                              lambda t: t.endswith("42"), 1)  # fmt: skip
    assert hard1 == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        mc_step_labels(["A"], continue_from, lambda t: True, 0)


def test_addition_steps_correct_by_rule():
    from grpo.search.verifiers.labels import addition_steps_correct, split_steps

    ex = {"a": 597, "b": 912}  # 1509; columns 7+2+0=9:9, 9+1+0=10:09, 5+9+1=15:509, 0+0+1=1:1509
    good = (" <think> 597 + 912: 7+2+0=9:9, 9+1+0=10:09, 5+9+1=15:509, 0+0+1=1:1509 </think>"
            " <answer>1509</answer>")  # fmt: skip
    assert addition_steps_correct(split_steps(good), ex) == [True] * 4
    # A wrong carry at step 1: that step and every later prefix are wrong, even though the
    # answer comes out right.
    slip = good.replace("9+1+0=10:09", "9+1+1=11:19")
    assert addition_steps_correct(split_steps(slip), ex) == [True, False, False, False]
    # Right work, wrong answer: only the last step is wrong.
    assert addition_steps_correct(split_steps(good.replace(">1509<", ">1500<")), ex) == [
        True, True, True, False]  # fmt: skip
    # The operands must be aligned and restated; a step must be exactly one column.
    ex2 = {"a": 951, "b": 80}  # 1031: aligned as "951 + 080"
    aligned = " <think> 951 + 080: 1+0+0=1:1, 5+8+0=13:31, 9+0+1=10:031, 0+0+1=1:1031 </think>"
    answer = " <answer>1031</answer>"
    assert addition_steps_correct(split_steps(aligned + answer), ex2) == [True] * 4
    unaligned = aligned.replace("951 + 080", "951 + 80")
    assert addition_steps_correct(split_steps(unaligned + answer), ex2) == [False] * 4
    skipped = " <think> 951 + 080: 1+0+0=1:1, 9+0+1=10:031, 0+0+1=1:1031 </think>" + answer
    assert addition_steps_correct(split_steps(skipped), ex2) == [True, False, False]
    # No work: the answer decides. Work that stops early with the right answer is right.
    assert addition_steps_correct([" <answer>1031</answer>"], ex2) == [True]
    assert addition_steps_correct([" <answer>1030</answer>"], ex2) == [False]
    early = " <think> 951 + 080: 1+0+0=1:1, 5+8+0=13:31 </think>" + answer
    assert addition_steps_correct(split_steps(early), ex2) == [True, True]
    assert addition_steps_correct(split_steps(" <think> junk, 1+0+0=1:1 </think>" + answer),
                                  ex2) == [False, False]  # fmt: skip


def test_agreement_counts():
    from grpo.search.verifiers.labels import agreement

    exact = [True, True, True, False, False]
    pred = [True, False, True, True, False]
    m = agreement(pred, exact)
    assert m["steps"] == 5 and m["exact_right"] == 3
    assert m["agreement"] == pytest.approx(3 / 5)
    assert m["false_good"] == pytest.approx(1 / 2)  # 1 of the 2 wrong prefixes labelled good
    assert m["false_bad"] == pytest.approx(1 / 3)  # 1 of the 3 right prefixes labelled bad
    with pytest.raises(ValueError, match="2 labels but 1"):
        agreement([True, False], [True])
