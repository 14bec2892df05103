"""grpo.strategies on the addition demo base: determinism, the votes, compute accounting."""

from collections import Counter

import pytest
import torch

from grpo.bases.common import TEMPLATE
from grpo.strategies import STRATEGIES, RuleScorer, VerifierScorer, _sample, run_strategy
from grpo.tasks import get_task
from grpo.verifiers import Verifier
from model import Tokenizer, load_pretrained

KW = dict(n=6, width=2, expand=2, simulations=6, max_new_tokens=40)


@pytest.fixture(scope="module")
def base():
    path = "assets/demo-base"
    task = get_task("addition", template=TEMPLATE)
    return load_pretrained(path, dtype=torch.float32), Tokenizer.from_dir(path), task


@pytest.mark.parametrize("name", STRATEGIES)
def test_each_strategy_is_deterministic_and_counts_its_tokens(base, name):
    model, tok, task = base
    ex = task.heldout(2)[1]
    runs = [run_strategy(name, model, tok, task, ex, RuleScorer(task, ex), seed=5, **KW)
            for _ in range(2)]  # fmt: skip
    assert runs[0] == runs[1]
    r = runs[0]
    assert r.policy_tokens > 0 and r.verifier_tokens == 0  # the rule reads no tokens
    assert r.correct == (task.score(r.text, ex)["accuracy"] == 1.0)


def test_votes_pick_what_they_should(base):
    model, tok, task = base
    ex = task.heldout(3)[2]
    texts, used = _sample(model, tok, task.prompt(ex), 6, 40, seed=9)
    keys = [task.answer_key(t, ex) for t in texts]
    maj = run_strategy("majority", model, tok, task, ex, RuleScorer(task, ex), seed=9, **KW)
    assert maj.policy_tokens == used
    counts = Counter(k for k in keys if k is not None)
    if counts:
        assert counts[task.answer_key(maj.text, ex)] == max(counts.values())
    best = run_strategy("best_of_n", model, tok, task, ex, RuleScorer(task, ex), seed=9, **KW)
    any_right = any(task.score(t, ex)["accuracy"] == 1.0 for t in texts)
    assert best.correct == any_right  # the oracle picks a right sample when there is one


def test_verifier_scorer_reads_the_last_token_and_counts_tokens(base):
    model, tok, task = base
    v = Verifier.from_policy(model, "orm")  # zero head: P = 0.5 everywhere
    prompt = task.prompt(task.heldout(1)[0])
    s = VerifierScorer(v, tok, prompt)
    texts = [" <answer>1</answer>", " <answer>12345</answer>"]
    assert s(texts) == [0.5, 0.5]
    assert s.tokens == sum(len(tok.encode(prompt + t)) for t in texts)
    with torch.no_grad():
        v.head.bias.fill_(2.0)
    assert s(texts[:1]) == [pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())]


def test_unknown_strategy(base):
    model, tok, task = base
    ex = task.heldout(1)[0]
    with pytest.raises(ValueError, match="unknown strategy"):
        run_strategy("astar", model, tok, task, ex, RuleScorer(task, ex))
