"""python -m grpo.search.test_time_compute: the comparison end to end, at toy size, and its
errors."""

import importlib
import json
from pathlib import Path

import pytest

import grpo.search.test_time_compute as ttc

TINY = ["--rl", "assets/demo-base", "--questions", "3", "--max-new-tokens", "24",
        "--verifier-questions", "4", "--verifier-samples", "4", "--verifier-epochs", "1",
        "--rollouts", "1"]  # fmt: skip
KEYS = {"task", "model", "strategy", "budget", "accuracy", "policy_tokens", "verifier_tokens",
        "verifier"}


def _toy(mp: pytest.MonkeyPatch) -> None:
    """Small budgets; completions graded right when their length is even, so that the
    verifiers see both labels (the pipeline is tested here, not learning)."""
    from grpo.tasks import AdditionTask

    score = AdditionTask.score

    def fake(self, text, ex):
        return {**score(self, text, ex), "accuracy": float(len(text) % 2 == 0)}

    mp.setattr(AdditionTask, "score", fake)
    mp.setattr(ttc, "SAMPLE_BUDGETS", (1, 2, 3))
    mp.setattr(ttc, "BEAM_WIDTHS", (1, 2))
    mp.setattr(ttc, "EXPAND", 2)
    mp.setattr(ttc, "MCTS_SIMULATIONS", (2,))


@pytest.fixture
def toy(monkeypatch):
    _toy(monkeypatch)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The toy comparison, run once: (out folder, figure, results)."""
    tmp = tmp_path_factory.mktemp("ttc")
    out, fig = tmp / "ttc", tmp / "fig.png"
    with pytest.MonkeyPatch.context() as mp:
        _toy(mp)
        assert ttc.main(["--out", str(out), "--figure", str(fig), *TINY]) == 0
    return out, fig, json.loads((out / "results.json").read_text())


def _measured(results):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


def test_one_command_writes_results_figure_and_resumes(done, toy, capsys):
    out, fig, results = done
    assert fig.stat().st_size > 10_000
    # One record per (model, strategy, budget, verifier), with the public keys.
    per_model = 5 * 3 + 1 + 2 + 1  # pooled x budgets, greedy, beam widths, mcts
    assert len(results) == 2 * per_model
    assert len({(r["model"], r["strategy"], r["budget"], r["verifier"]) for r in results}) == len(
        results)  # fmt: skip
    for r in results:
        assert set(r) >= KEYS and r["model"] in ("base", "rl") and r["task"] == "addition"
        assert r["strategy"] in ("greedy", "majority", "best_of_n", "weighted_best_of_n",
                                 "beam", "mcts")  # fmt: skip
        assert r["verifier"] in ("none", "rule", "orm", "prm")
        assert 0 <= r["accuracy"] <= 1 and r["policy_tokens"] > 0
        assert (r["verifier_tokens"] > 0) == (r["verifier"] in ("orm", "prm"))
    by = {(r["model"], r["strategy"], r["budget"], r["verifier"]): r for r in results}
    # Pooled budgets: n samples cost n samples' tokens, so the cost grows with n; at n = 1
    # every pooled strategy picks the one sample.
    for s, v in ttc.POOLED:
        costs = [by["base", s, n, v]["policy_tokens"] for n in (1, 2, 3)]
        assert costs[0] < costs[1] < costs[2]
        assert by["base", s, 1, v]["accuracy"] == by["base", "majority", 1, "none"]["accuracy"]
    # The oracle picks a right sample whenever there is one: never below majority.
    for n in (1, 2, 3):
        assert by["base", "best_of_n", n, "rule"]["accuracy"] >= by[
            "base", "majority", n, "none"]["accuracy"]  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    # Each model is judged by verifiers trained on its own samples, checked on held-out ones.
    for m in ("base", "rl"):
        v = summary["verifiers"][m]
        assert v["prm"]["heldout_exact_steps"]["prm"]["steps"] > 0
        for k in ("orm", "prm"):
            assert 0 <= v[k]["heldout_judged"]["roc_auc"] <= 1
            meta = json.loads((out / "verifiers" / m / k / "verifier.json").read_text())
            policy = summary["models"][m]
            assert meta["policy"] == policy
    assert set(summary["seconds"]) >= {"rl", "base_orm", "base_prm", "rl_orm", "rl_prm",
                                       "eval_base", "eval_rl"}  # fmt: skip
    # Run again: every record is reused (nothing is measured twice), the results are equal.
    capsys.readouterr()
    assert ttc.main(["--out", str(out), "--figure", str(fig), *TINY]) == 0
    assert "budget" not in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text()) == results
    # A torn last line (a kill mid-write) is dropped and that record measured again.
    lines = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    assert ttc.main(["--out", str(out), "--figure", str(fig), *TINY]) == 0
    assert _measured(json.loads((out / "results.json").read_text())) == _measured(results)


def test_searches_equal_eval_py(done, toy, tmp_path):
    """greedy and beam records are what eval.py --strategy reports with the same flags."""
    out, _fig, results = done
    by = {(r["model"], r["strategy"], r["budget"], r["verifier"]): r for r in results}
    ev = importlib.import_module("eval")
    common = ["--model", "demo", "--task", "addition", "--n", "3", "--max-new-tokens", "24"]
    for flags, key in [
        (["--strategy", "greedy"], ("base", "greedy", 1, "none")),
        (["--strategy", "beam", "--beam-width", "2", "--expand", "2", "--verifier",
          str(out / "verifiers" / "base" / "prm")], ("base", "beam", 4, "prm")),
    ]:  # fmt: skip
        path = tmp_path / f"{key[1]}.json"
        assert ev.main([*common, *flags, "--json", str(path)]) == 0
        got = json.loads(path.read_text())
        for k in ("accuracy", "policy_tokens", "verifier_tokens"):
            assert got[k] == pytest.approx(by[key][k]), (key, k)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--questions", "0"], "--questions must be >= 1"),
        (["--verifier-lr", "nan"], "--verifier-lr must be in (0, 1]"),
        (["--figure", "x.jpg"], "expected a .png path"),
        (["--rl", "no/such/run"], "--rl no/such/run: no such folder"),
        (["--max-new-tokens", "1000"], "exceeds the model's context of 1024 positions"),
        (["--figure", "afile.txt/x.png"], "--figure afile.txt/x.png: cannot write there"),
        (["--out", ""], "--out is empty"),
        (["--out", "afile.txt/o"], "--out afile.txt/o: cannot create the folder"),
    ],
)
def test_bad_settings_are_one_line(tmp_path, monkeypatch, flags, message, capsys):
    """Refused before any work (no training, no figure, nothing in --out)."""
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile.txt").write_text("x")
    assert ttc.main(["--out", "o", "--figure", "f.png", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m grpo.search.test_time_compute: error:") and message in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]


def test_a_figure_where_none_can_be_written_is_refused_first(tmp_path, monkeypatch, capsys):
    import train_zero

    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    assert ttc.main(["--out", str(tmp_path / "o"), "--figure", "/proc/x.png"]) == 2
    assert "--figure /proc/x.png: cannot write there" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rc", [143, 130])
def test_sigterm_exits_143_and_ctrl_c_130(tmp_path, monkeypatch, capsys, rc):
    """The R1-Zero stage stopped by SIGTERM (it checkpointed: 143) or Ctrl-C (130)."""
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: rc)
    assert ttc.main(["--out", str(tmp_path / "o"), "--figure", str(tmp_path / "f.png")]) == rc
    assert ("SIGTERM" if rc == 143 else "SIGINT") in capsys.readouterr().err


def test_other_settings_need_another_out(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    args = ttc.build_parser().parse_args(["--out", "x"])
    for name, value in ttc.TASK_DEFAULTS["addition"].items():
        setattr(args, name, value)  # as check_args fills them in
    (out / "settings.json").write_text(json.dumps(
        {k: getattr(args, k) for k in ttc.SETTINGS} | {"rl": None, "questions": 7}))  # fmt: skip
    assert ttc.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings (questions 7 -> 200)" in err and "use another --out" in err


def test_countdown_defaults_and_refusals(tmp_path, monkeypatch, capsys):
    """--task countdown takes the countdown demo's budget and figure; its checks run first."""
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    a = ttc.build_parser().parse_args(["--out", str(tmp_path / "o"), "--task", "countdown"])
    settings = ttc.check_args(a)
    assert settings["task"] == "countdown" and settings["max_new_tokens"] == 480
    assert a.figure == "docs/test_time_compute_countdown.png"
    assert not (tmp_path / "o").exists()
    assert ttc.main(["--out", str(tmp_path / "o"), "--task", "countdown", "--max-new-tokens",
                     "900"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "exceeds the model's context" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        ttc.main(["--out", str(tmp_path / "o"), "--task", "sudoku"])
    assert e.value.code == 2
    assert "invalid choice: 'sudoku'" in capsys.readouterr().err
