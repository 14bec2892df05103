"""grpo.search.tree on hand-made cases: vote, UCT/PUCT, backup, beam search, MCTS on a toy tree."""

import math

import pytest

from grpo.search.tree import (
    Node,
    Step,
    backup,
    beam_search,
    beam_search_many,
    mcts,
    mcts_many,
    puct,
    select_child,
    uct,
    weighted_vote,
)

# A toy step tree. From the root: "a" (the policy prefers it) or "b". Under "a" both
# answers are wrong; under "b", "b1" is right and "b2" half right.
TREE = {
    (): [Step("a", 0.6), Step("b", 0.4)],
    ("a",): [Step("a1", 0.5, True), Step("a2", 0.5, True)],
    ("b",): [Step("b1", 0.3, True), Step("b2", 0.7, True)],
}
LEAF_VALUE = {("a", "a1"): 0.0, ("a", "a2"): 0.0, ("b", "b1"): 1.0, ("b", "b2"): 0.5}
# A PRM that is fooled at the first step: it prefers "a".
PRM = {("a",): 0.7, ("b",): 0.6, **LEAF_VALUE}


def expand(prefix, k):
    return TREE.get(prefix, [])[:k]


def prm(prefixes):
    return [PRM[p] for p in prefixes]


def value(prefix):
    """The exact value: a leaf's reward, else the mean over the leaves below it."""
    if prefix in LEAF_VALUE:
        return LEAF_VALUE[prefix]
    below = [v for p, v in LEAF_VALUE.items() if p[: len(prefix)] == prefix]
    return sum(below) / len(below)


def test_weighted_vote():
    keys, scores = ["1", "2", None, "2", "1"], [0.9, 0.3, 1.0, 0.4, 0.1]
    assert weighted_vote(keys, scores) == "1"  # 1.0 against 0.7; None does not vote
    assert weighted_vote(keys, [1.0] * 5) == "1"  # majority: 2 against 2, first seen wins
    assert weighted_vote(["7", "8", "8"], [0.9, 0.2, 0.2]) == "7"  # weight beats count
    assert weighted_vote(["7", "8", "8"], [1, 1, 1]) == "8"
    assert weighted_vote([None, None], [1, 1]) is None
    with pytest.raises(ValueError, match="2 keys but 1 scores"):
        weighted_vote(["1", "2"], [1.0])


def test_uct_and_puct_formulas():
    # 0.5 + 1.4 * sqrt(ln 10 / 2) = 0.5 + 1.4 * 1.072983 = 2.002176
    assert uct(0.5, 10, 2, 1.4) == pytest.approx(2.0021763, abs=1e-6)
    assert uct(0.0, 5, 0, 1.0) == math.inf
    # 0.5 + 2 * 0.25 * sqrt(16) / (1 + 3) = 0.5 + 0.5
    assert puct(0.5, 0.25, 16, 3, 2.0) == pytest.approx(1.0)
    assert puct(0.2, 0.5, 0, 0, 1.0) == pytest.approx(0.2)


def test_select_child_rules_and_ties():
    root = Node((), visits=10)
    a = Node(("a",), prior=0.9, parent=root, visits=5, value_sum=4.0)  # Q 0.8
    b = Node(("b",), prior=0.1, parent=root, visits=1, value_sum=0.5)  # Q 0.5
    root.children = [a, b]
    # UCT: a 0.8 + 1.4 sqrt(ln10/5) = 1.750; b 0.5 + 1.4 sqrt(ln10) = 2.624
    assert select_child(root, "uct", 1.4) is b
    # PUCT: a 0.8 + 1.4*0.9*sqrt(10)/6 = 1.464; b 0.5 + 1.4*0.1*sqrt(10)/2 = 0.721
    assert select_child(root, "puct", 1.4) is a
    twin = Node(("c",), parent=root, visits=5, value_sum=4.0, prior=0.9)
    root.children = [a, twin]
    assert select_child(root, "uct") is a  # equal scores: the earlier child
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_child(root, "ucb2")


def test_backup_adds_to_the_path_only():
    root = Node(())
    a = Node(("a",), parent=root)
    b = Node(("a", "b"), parent=a)
    sibling = Node(("c",), parent=root)
    root.children, a.children = [a, sibling], [b]
    backup(b, 1.0)
    backup(b, 0.0)
    backup(a, 0.25)
    assert (root.visits, root.value_sum) == (3, 1.25)
    assert (a.visits, a.value_sum, a.q) == (3, 1.25, pytest.approx(1.25 / 3))
    assert (b.visits, b.q) == (2, 0.5)
    assert (sibling.visits, sibling.q) == (0, 0.0)


def test_beam_search_width_one_is_fooled_width_two_finds_the_answer():
    (best,) = beam_search(expand, prm, width=1, k=2)
    assert best.prefix[0] == "a" and best.finished and best.score == 0.0
    beams = beam_search(expand, prm, width=2, k=2)
    assert [b.prefix for b in beams] == [("b", "b1"), ("b", "b2")]
    assert [b.score for b in beams] == [1.0, 0.5] and all(b.finished for b in beams)


def test_beam_search_finished_beams_keep_their_place():
    tree = {(): [Step("x", finished=True), Step("y")],
            ("y",): [Step("y1", finished=True), Step("y2", finished=True)]}  # fmt: skip
    scores = {("x",): 0.9, ("y",): 0.5, ("y", "y1"): 0.95, ("y", "y2"): 0.2}
    calls = []

    def exp(prefix, k):
        calls.append(prefix)
        return tree[prefix][:k]

    beams = beam_search(exp, lambda ps: [scores[p] for p in ps], width=2, k=2)
    assert [b.prefix for b in beams] == [("y", "y1"), ("x",)]
    assert calls == [(), ("y",)]  # the finished beam "x" is never expanded


def test_mcts_finds_the_right_answer_and_is_deterministic():
    results = []
    for _ in range(2):
        root, answer = mcts(expand, value, simulations=30, k=2, rule="uct", c=1.4)
        assert answer == ("b", "b1")
        assert root.visits == 30
        a, b = root.children
        assert b.visits > a.visits and b.q > a.q
        results.append([(ch.prefix, ch.visits, ch.value_sum) for ch in b.children])
    assert results[0] == results[1]


def test_mcts_first_simulations_by_hand():
    # Sim 1: expand the root, evaluate "a" (0.0). Sim 2: "b" is unvisited (inf): expand it,
    # evaluate "b1" (1.0). Sim 3: UCT a 0 + 1.4 sqrt(ln 2) = 1.166, b 1 + 1.166: go to b,
    # whose unvisited child b2 is evaluated (0.5).
    root, _ = mcts(expand, value, simulations=3, k=2, rule="uct", c=1.4)
    a, b = root.children
    assert (a.visits, a.value_sum) == (1, 0.0)
    assert (b.visits, b.value_sum) == (2, 1.5)
    assert [(ch.visits, ch.value_sum) for ch in b.children] == [(1, 1.0), (1, 0.5)]
    assert [ch.prior for ch in root.children] == [0.6, 0.4]


def test_mcts_puct_uses_normalised_priors():
    tree = {(): [Step("p", 3.0), Step("q", 1.0)]}
    root, _ = mcts(lambda p, k: tree.get(p, [])[:k], lambda p: 0.0, simulations=1, k=2,
                   rule="puct")  # fmt: skip
    assert [ch.prior for ch in root.children] == [0.75, 0.25]


def test_bad_budgets():
    with pytest.raises(ValueError):
        beam_search(expand, prm, width=0, k=2)
    with pytest.raises(ValueError):
        mcts(expand, value, simulations=0, k=2)


# Two more questions for the lockstep searches: question 1 is the tree above with the
# PRM's first-step preference reversed, question 2 has one finished step only.
TREES = [TREE, TREE, {(): [Step("z", 1.0, True)]}]
PRMS = [PRM, {**PRM, ("a",): 0.2}, {("z",): 0.3}]
VALUES = [value, value, lambda p: 0.3]


def test_beam_search_many_equals_each_question_alone():
    calls = []

    def exp_many(reqs, k):
        calls.append(len(reqs))
        return [TREES[q].get(p, [])[:k] for q, p in reqs]

    def score_many(reqs):
        return [PRMS[q][p] for q, p in reqs]

    together = beam_search_many(exp_many, score_many, 3, width=1, k=2)
    alone = [beam_search(lambda p, k, q=q: TREES[q].get(p, [])[:k],
                         lambda ps, q=q: [PRMS[q][p] for p in ps], width=1, k=2)
             for q in range(3)]  # fmt: skip
    assert together == alone
    assert [b[0].prefix for b in together] == [("a", "a1"), ("b", "b1"), ("z",)]
    # Round 1 expands the three roots in one call; round 2 the two open beams.
    assert calls == [3, 2]


def _walk(node):
    """Every node of a tree, depth first: prefix, visits, value sum, prior."""
    return [(node.prefix, node.visits, node.value_sum, node.prior)] + [
        x for ch in node.children for x in _walk(ch)]  # fmt: skip


def test_mcts_many_equals_each_question_alone():
    calls = []

    def exp_many(reqs, k):
        calls.append(len(reqs))
        return [TREES[q].get(p, [])[:k] for q, p in reqs]

    together = mcts_many(exp_many, lambda reqs: [VALUES[q](p) for q, p in reqs], 3,
                         simulations=12, k=2)  # fmt: skip
    for q in range(3):
        root, answer = mcts(lambda p, k, q=q: TREES[q].get(p, [])[:k], VALUES[q],
                            simulations=12, k=2)  # fmt: skip
        t_root, t_answer = together[q]
        assert t_answer == answer
        assert _walk(t_root) == _walk(root)
    assert together[2][1] == ("z",) and together[2][0].visits == 12
    assert calls[0] == 3  # simulation 1 expands the three roots in one call


def test_policy_steps_end_at_a_delimiter_or_finish(addition_base):
    from grpo.search.tree import PolicySteps

    model, tok, task = addition_base
    prompt = task.prompt(task.heldout(1)[0]) + " <think>"  # start inside the scratchpad
    expand = PolicySteps(model, tok, prompt, delimiters=(", ",), seed=3)
    steps = expand((), 6)
    assert 1 <= len(steps) <= 6 and len({s.text for s in steps}) == len(steps)
    for s in steps:
        assert s.finished == (not s.text.endswith(", "))
        assert 0 < s.prior <= 1.0 + 1e-6
        assert s.text.count(", ") <= 1  # never runs past the first delimiter
    assert expand.calls == 1 and expand.tokens[0] > 0
    # The same seed gives the same steps; a step extends the prefix.
    again = PolicySteps(model, tok, prompt, delimiters=(", ",), seed=3)((), 6)
    assert [(s.text, s.prior) for s in again] == [(s.text, s.prior) for s in steps]
    open_steps = [s for s in steps if not s.finished]
    if open_steps:
        nxt = expand((open_steps[0].text,), 3)
        assert nxt and expand.calls == 2
    with pytest.raises(ValueError, match="delimiter"):
        PolicySteps(model, tok, prompt, delimiters=())


def test_generate_within_cuts_each_row_at_its_budget(addition_base):
    from grpo.search.tree import generate_within
    from model import generate

    model, tok, task = addition_base
    ids = tok.encode_batch([task.prompt(ex) for ex in task.heldout(3)])
    kw = {"stop_strings": ["</answer>"], "temperature": 1.0, "seed": 4}
    same = generate_within(model, tok, ids, [20, 20, 20], 2, **kw)
    plain = generate(model, ids, max_new_tokens=20, num_samples=2, eos_ids=tok.eos_ids,
                     tokenizer=tok, pad_id=tok.pad_id, stop_strings=["</answer>"],
                     temperature=1.0, seed=4)  # fmt: skip
    assert same.completions() == plain.completions()  # equal budgets: plain generate
    cut = generate_within(model, tok, ids, [3, 20, 1], 2, **kw)
    full = plain.lengths.tolist()
    assert cut.lengths.tolist() == [min(n, b) for n, b in zip(full, [3, 3, 20, 20, 1, 1])]
    assert [c[:len(x)] for c, x in zip(plain.completions(), cut.completions())] \
        == cut.completions()  # fmt: skip
    with pytest.raises(ValueError, match="budget must be >= 1"):
        generate_within(model, tok, ids, [0, 5, 5], 1, **kw)


def test_policy_steps_never_pass_the_completion_budget(addition_base):
    from grpo.search.tree import PolicySteps

    model, tok, task = addition_base
    prompt = task.prompt(task.heldout(1)[0]) + " <think>"
    expand = PolicySteps(model, tok, prompt, delimiters=(", ",), seed=3, max_new_tokens=5)
    for s in expand((), 6):
        assert len(tok.encode(s.text)) <= 5
    used = " 0597 + 0912:"  # a prefix that has taken most of a budget of 8 tokens
    n_used = len(tok.encode(prompt + used)) - len(tok.encode(prompt))
    expand = PolicySteps(model, tok, prompt, delimiters=(", ",), seed=3,
                         max_new_tokens=n_used + 2)  # fmt: skip
    steps = expand((used,), 6)
    assert steps and all(len(tok.encode(prompt + used + s.text)) - len(tok.encode(prompt))
                         <= n_used + 2 + 1 for s in steps)  # fmt: skip
    # A step that uses up the budget is final, whether or not it ends at a delimiter.
    assert all(s.finished for s in steps if len(tok.encode(s.text)) >= 2)
