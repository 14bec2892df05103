"""eval.py --strategy: search against a verifier on the addition demo base, and its errors."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--model", "demo", "--task", "addition", "--max-new-tokens", "40"]


@pytest.fixture(scope="module")
def ev():
    return importlib.import_module("eval")


@pytest.fixture(scope="module")
def zero_orm(tmp_path_factory) -> Path:
    """A verifier folder whose head is zero (P = 0.5 everywhere): tests the plumbing."""
    import torch

    from grpo.search.verifiers import Verifier
    from grpo.search.verifiers.train import save_verifier
    from model import Tokenizer, load_pretrained

    policy = load_pretrained(ROOT / "assets" / "demo-base", dtype=torch.float32)
    out = tmp_path_factory.mktemp("v") / "orm"
    tok = Tokenizer.from_dir(ROOT / "assets" / "demo-base")
    save_verifier(Verifier.from_policy(policy, "orm"), tok, out, {"kind": "orm"})
    return out


def _run(ev, tmp_path, *flags, name="r.json") -> dict:
    out = tmp_path / name
    assert ev.main([*BASE, *flags, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    res.pop("seconds")
    return res


@pytest.mark.parametrize(
    "flags, budget",
    [(["--strategy", "weighted_best_of_n", "--samples", "4"], 4),
     (["--strategy", "beam", "--beam-width", "2", "--expand", "2"], 4),
     (["--strategy", "mcts", "--simulations", "4", "--expand", "2"], 4),
     (["--strategy", "mcts", "--simulations", "4", "--expand", "2", "--mcts-rule", "puct"], 4)],
)  # fmt: skip
def test_strategy_results_are_deterministic(ev, tmp_path, flags, budget):
    a = _run(ev, tmp_path, "--n", "3", *flags, name="a.json")
    b = _run(ev, tmp_path, "--n", "3", *flags, name="b.json")
    assert a == b
    assert a["strategy"] == flags[1] and a["budget"] == budget and a["verifier"] == "rule"
    assert 0 <= a["accuracy"] <= 1 and a["policy_tokens"] > 0 and a["verifier_tokens"] == 0
    c = _run(ev, tmp_path, "--n", "3", *flags, "--seed", "1", name="c.json")
    assert c["seed"] == 1


def test_a_learned_verifier_reads_tokens(ev, tmp_path, zero_orm):
    res = _run(ev, tmp_path, "--n", "2", "--strategy", "best_of_n", "--samples", "3",
               "--verifier", str(zero_orm))  # fmt: skip
    assert res["verifier"] == "orm" and res["verifier_tokens"] > res["policy_tokens"] > 0


def test_greedy_and_sample_need_no_verifier(ev, tmp_path):
    greedy = _run(ev, tmp_path, "--n", "6", "--strategy", "greedy", name="g.json")
    plain = _run(ev, tmp_path, "--n", "6", name="p.json")  # eval.py's own greedy pass
    assert greedy["accuracy"] == plain["metrics"]["eval_accuracy"]
    assert greedy["verifier"] == "none" and greedy["budget"] == 1
    assert greedy["policy_tokens"] == pytest.approx(plain["metrics"]["eval_completion_len_mean"])
    sample = _run(ev, tmp_path, "--n", "6", "--strategy", "sample", "--verifier", "x/y",
                  name="s.json")  # fmt: skip
    assert sample["verifier"] == "none" and sample["budget"] == 1
    maj = _run(ev, tmp_path, "--n", "2", "--strategy", "majority", "--samples", "2", name="m.json")
    assert maj["verifier"] == "none" and maj["verifier_tokens"] == 0


@pytest.mark.parametrize(
    "flags, message",
    [(["--task", "jsonl", "--task-path", "QA", "--strategy", "beam"],
      "needs a task with reasoning steps"),
     (["--strategy", "best_of_n", "--verifier", "no/such/verifier"], "not a folder written by"),
     (["--strategy", "astar"], "--strategy"),
     (["--strategy", "mcts", "--mcts-rule", "ucb2"], "--mcts-rule")],
)  # fmt: skip
def test_bad_strategy_settings_are_one_line(flags, message, tmp_path):
    qa = tmp_path / "qa.jsonl"  # a task whose completions have no steps a search can expand
    qa.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    flags = [str(qa) if f == "QA" else f for f in flags]
    res = subprocess.run(
        [sys.executable, "eval.py", "--model", "demo", "--n", "2", *flags,
         "--json", str(tmp_path / "x.json")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "x.json").exists()


def test_the_flag_lists_every_strategy(ev):
    from grpo.search.strategies import STRATEGIES

    ap = ev.build_parser()
    (action,) = [a for a in ap._actions if a.dest == "strategy"]
    for name in STRATEGIES:
        assert action.type(name) == name
    with pytest.raises(SystemExit):
        ap.parse_args(["--model", "demo", "--strategy", "astar"])


@pytest.mark.parametrize(
    "argv, ignored",
    [([], []),
     (["--beam-width", "2", "--verifier", "rule"], ["--verifier", "--beam-width"]),
     (["--strategy", "greedy", "--samples", "4", "--temperature", "0.5"],
      ["--samples", "--temperature"]),
     (["--strategy", "beam", "--beam-width", "2", "--simulations", "3", "--mcts-rule", "puct"],
      ["--simulations", "--mcts-rule"]),
     (["--strategy", "mcts", "--simulations", "3", "--expand", "2", "--batch-size", "8"], []),
     (["--strategy", "mcts", "--beam-width", "3", "--temperature", "1"],
      ["--temperature", "--beam-width"]),
     (["--strategy", "best_of_n", "--samples", "4", "--verifier", "rule"], []),
     (["--strategy", "majority", "--verifier", "v"], ["--verifier"]),
     (["--samples", "4", "--temperature", "0.7", "--batch-size", "8"], [])],
)  # fmt: skip
def test_flags_a_mode_does_not_read_are_named(ev, argv, ignored):
    ap = ev.build_parser()
    argv = ["--model", "demo", *argv]
    args = ap.parse_args(argv)
    assert ev.ignored_flags(args.strategy, ev.given_flags(ap, argv)) == ignored
    # given_flags leaves the parser's defaults as they were
    assert vars(ap.parse_args(["--model", "demo"]))["beam_width"] == 4


def test_an_ignored_flag_is_one_note(ev, tmp_path, capsys):
    res = _run(ev, tmp_path, "--n", "2", "--strategy", "greedy", "--temperature", "0.5",
               "--samples", "3")  # fmt: skip
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert notes == ["note: --strategy greedy does not use --samples, --temperature; ignored "
                     "(greedy decodes at temperature 0)"]  # fmt: skip
    assert res["budget"] == 1
    _run(ev, tmp_path, "--n", "2", "--strategy", "sample", "--temperature", "0.5")
    assert "(the strategies sample at temperature 1)" in capsys.readouterr().err
    _run(ev, tmp_path, "--n", "2", "--beam-width", "3")
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert notes == ["note: evaluation without --strategy does not use --beam-width; ignored"]


@pytest.mark.parametrize("flags", [["--strategy", "best_of_n", "--samples", "2"],
                                   ["--strategy", "beam", "--beam-width", "2", "--expand", "2"]])
def test_batch_size_caps_the_rows_of_a_policy_call(ev, tmp_path, monkeypatch, flags):
    import grpo.search.tree

    rows: list[int] = []
    real = grpo.search.tree.generate  # every policy call of a strategy goes through it

    def spy(model, prompts, *a, **k):
        rows.append(len(prompts) * k.get("num_samples", 1))
        return real(model, prompts, *a, **k)

    monkeypatch.setattr(grpo.search.tree, "generate", spy)
    res = _run(ev, tmp_path, "--n", "3", *flags, "--batch-size", "2")
    assert res["batch_size"] == 2 and rows and max(rows) == 2, rows
