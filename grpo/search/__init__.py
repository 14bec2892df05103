"""Test-time compute: spending more samples or more search on a question at inference.

    tree.py               the search algorithms alone: weighted vote, step-level beam search,
                          MCTS, written against expand/score callables
    strategies.py         each strategy run with the policy (greedy, majority, best-of-N,
                          beam, MCTS, ...) with its compute counted
    verifiers/            outcome (ORM) and process (PRM) verifiers, trained on the policy's
                          own samples (`python -m grpo.search.verifiers train`)
    test_time_compute.py  the comparison: accuracy against compute per question
                          (`python -m grpo.search.test_time_compute`)

See docs/test_time_compute.md.
"""
