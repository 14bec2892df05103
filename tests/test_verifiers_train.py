"""python -m grpo.search.verifiers train: end to end on the addition demo base, and its errors."""

import json
import subprocess
import sys

import pytest
import torch

from grpo.search.verifiers.__main__ import main as cli
from grpo.search.verifiers.train import load_verifier

TINY = ["--policy", "assets/demo-base", "--task", "addition", "--questions", "16", "--samples",
        "8", "--heldout", "4", "--rollouts", "2", "--epochs", "1", "--max-new-tokens", "48"]


@pytest.fixture
def graded_by_length(monkeypatch):
    """The demo base is almost never right at this budget; for a mix of labels, grade a
    completion right when its length is even (the pipeline, not learning, is tested)."""
    from grpo.tasks import AdditionTask

    score = AdditionTask.score

    def fake(self, text, ex):
        return {**score(self, text, ex), "accuracy": float(len(text) % 2 == 0)}

    monkeypatch.setattr(AdditionTask, "score", fake)


@pytest.mark.parametrize("kind", ["orm", "prm"])
def test_train_writes_a_loadable_verifier(tmp_path, kind, capsys, graded_by_length):
    out = tmp_path / kind
    assert cli(["train", *TINY, "--kind", kind, "--out", str(out)]) == 0
    meta = json.loads((out / "verifier.json").read_text())
    assert meta["kind"] == kind and 0 < meta["train_positive_labels"] < meta["train_labels"]
    assert meta["pos_weight"] == pytest.approx(
        (meta["train_labels"] - meta["train_positive_labels"]) / meta["train_positive_labels"])
    assert set(meta["heldout"]) == {"label_accuracy", "majority_baseline", "labels",
                                    "positive_labels"}  # fmt: skip
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary folder is gone
    v, tok, meta2 = load_verifier(out)
    assert meta2 == meta and v.kind == kind
    ids = torch.tensor([tok.encode("What is 1 + 2. Assistant: <answer>3</answer>")])
    assert v(ids).shape == ids.shape
    # --balance hard (the default): as many wrong completions as right ones, all distinct.
    kinds = meta["train_kinds"]
    assert kinds["right"] == sum(n for k, n in kinds.items() if k != "right") > 0
    assert meta["train_completions"] == 2 * kinds["right"] <= meta["train_samples"] == 16 * 8
    judged = meta["heldout_judged"]  # every held-out sample, judged whole
    assert judged["completions"] == meta["heldout_before"]["labels"] if kind == "orm" else True
    assert 0 <= judged["roc_auc"] <= 1
    assert sum(f["right"] + f["wrong"] for f in judged["by_format"].values()) \
        == judged["completions"]  # fmt: skip
    if kind == "orm":  # one label per completion, at its last token
        assert meta["train_labels"] == meta["train_completions"]
        assert meta["heldout_exact_steps"] is None
    else:  # addition steps are checkable by rule: every held-out step label is compared
        exact = meta["heldout_exact_steps"]
        assert exact["mc_labels"]["steps"] == exact["prm"]["steps"] == meta["heldout"]["labels"]
        assert 0 <= exact["prm"]["agreement"] <= 1
    log = capsys.readouterr().out
    assert "epoch 1/1: loss" in log and f"verifier written to {out}" in log
    assert "held-out completions" in log and "ROC area" in log


def test_balance_none_keeps_every_sample(tmp_path, graded_by_length):
    out = tmp_path / "orm"
    assert cli(["train", *TINY, "--kind", "orm", "--balance", "none", "--out", str(out)]) == 0
    meta = json.loads((out / "verifier.json").read_text())
    assert meta["train_labels"] == meta["train_completions"] == 16 * 8


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--kind", "prm", "--task", "jsonl", "--task-path", "x.jsonl"],
         "needs a task with step delimiters"),
        (["--kind", "orm", "--questions", "0"], "--questions must be >= 1"),
        (["--kind", "orm", "--lr", "0"], "--lr must be > 0"),
        (["--kind", "orm", "--policy", "no/such/folder"], "no such folder"),
    ],
)
def test_bad_settings_are_one_line(tmp_path, extra, message, capsys):
    assert cli(["train", *TINY, *extra, "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "v").exists()


def test_out_must_be_new_and_commands_are_checked(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "x").write_text("keep")
    assert cli(["train", *TINY, "--kind", "orm", "--out", str(tmp_path / "v")]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "v" / "x").read_text() == "keep"
    assert cli(["fit"]) == 2 and "unknown command 'fit'" in capsys.readouterr().err
    assert cli([]) == 2 and cli(["--help"]) == 0
    res = subprocess.run([sys.executable, "-m", "grpo.search.verifiers", "train", "--kind", "orm"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2 and "required" in res.stderr and "Traceback" not in res.stderr


@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if the policy is loaded or sampled: the refusal must come first."""
    import grpo.search.verifiers.samples as vs
    import grpo.search.verifiers.train as vt

    def boom(*a, **kw):
        raise AssertionError("loaded or sampled before the refusal")

    monkeypatch.setattr(vt, "load_policy_and_task", boom)
    monkeypatch.setattr(vs, "sample", boom)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lr", "inf"], "--lr must be > 0 and finite, got inf"),
        (["--lr", "nan"], "--lr must be > 0 and finite, got nan"),
        (["--lr=-1e-4"], "--lr must be > 0 and finite"),
        (["--lr", "1e38"], "--lr must be at most 1.0"),  # was an AdamW overflow traceback
        (["--threads", "-1"], "--threads must be in 0 .. "),
        (["--task", "jsonl"], "--task jsonl needs --task-path FILE"),
        (["--task-path", "q.jsonl"], "--task-path is only for --task jsonl (the task is addition)"),
        (["--task", "nope"], "--task must be one of addition, countdown, jsonl"),
        (["--template", "nope"], "--template must be one of"),
        (["--policy", "/nonexistent"], "--policy /nonexistent: no such folder"),
        (["--seed", "-1"], "--seed must be in 0 .. 2**32 - 1, got -1"),
        (["--seed", str(2**32)], "--seed must be in 0 .. 2**32 - 1"),
        (["--seed", "99999999999999999999"], "--seed must be in 0 .. 2**32 - 1"),
    ],
)
def test_bad_flags_are_refused_before_sampling(tmp_path, extra, message, capsys, no_sampling):
    assert cli(["train", *TINY, "--kind", "orm", *extra, "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith("python -m grpo.search.verifiers train: error: ") and "--model" not in err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("where", ["proc", "sys", "under_a_file", "empty", "dot"])
def test_out_that_cannot_be_created_is_refused_before_sampling(tmp_path, where, capsys,
                                                               no_sampling):  # fmt: skip
    (tmp_path / "file").write_text("x")
    out, message = {
        "proc": ("/proc/x", "--out /proc/x: cannot create the folder (/proc: "),
        "sys": ("/sys/x", "--out /sys/x: cannot create the folder (/sys: "),
        "under_a_file": (str(tmp_path / "file" / "v"), "file is a file, not a folder"),
        "empty": ("", "--out '': give the name of a folder to create"),
        "dot": (".", "--out '.': give the name of a folder to create"),
    }[where]
    if where in ("proc", "sys") and not __import__("os").path.isdir("/" + where):
        pytest.skip(f"no /{where} here")
    assert cli(["train", *TINY, "--kind", "orm", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert "Errno" not in err and ".tmp" not in err


SMALL = ["--policy", "assets/demo-base", "--task", "addition", "--questions", "2", "--samples",
         "8", "--heldout", "1", "--epochs", "1", "--max-new-tokens", "8", "--kind", "orm"]


def test_a_diverged_training_writes_nothing(tmp_path, capsys, graded_by_length, monkeypatch):
    import grpo.search.verifiers.model

    loss = grpo.search.verifiers.model.verifier_loss
    monkeypatch.setattr(grpo.search.verifiers.model, "verifier_loss",
                        lambda *a, **kw: loss(*a, **kw) * float("nan"))  # fmt: skip
    out = tmp_path / "v"
    assert cli(["train", *SMALL, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "training diverged in epoch 1" in err and "--lr" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_a_late_write_failure_is_one_line_naming_out(tmp_path, capsys, graded_by_length,
                                                     monkeypatch):  # fmt: skip
    import grpo.search.verifiers.train as vt

    def full_disk(verifier, tok, out, meta):
        raise OSError(28, "No space left on device", str(out.parent / f".{out.name}.tmp-1"))

    monkeypatch.setattr(vt, "save_verifier", full_disk)
    out = tmp_path / "v"
    assert cli(["train", *SMALL, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m grpo.search.verifiers train: error: could not write --out {out} "
                   "(No space left on device); nothing was written")  # fmt: skip


def test_a_samples_file_is_written_once_and_changes_no_result(tmp_path, graded_by_length,
                                                              monkeypatch):  # fmt: skip
    """The ORM writes --samples-file; the PRM reads it instead of sampling, and is the same
    PRM as one that samples for itself (sampling is seeded)."""
    import grpo.search.verifiers.samples as vs

    samples = tmp_path / "samples.json"
    assert cli(["train", *TINY, "--kind", "orm", "--out", str(tmp_path / "orm"),
                "--samples-file", str(samples)]) == 0  # fmt: skip
    data = json.loads(samples.read_text())
    assert len(data["train"]) == 16 * 8 and len(data["heldout"]) == 4 * 8
    assert data["settings"]["questions"] == 16 and not list(tmp_path.glob(".samples*"))
    assert cli(["train", *TINY, "--kind", "prm", "--out", str(tmp_path / "fresh")]) == 0
    calls = []
    sample = vs.sample
    monkeypatch.setattr(vs, "sample", lambda *a, **kw: calls.append(1) or sample(*a, **kw))
    assert cli(["train", *TINY, "--kind", "prm", "--out", str(tmp_path / "shared"),
                "--samples-file", str(samples)]) == 0  # fmt: skip
    assert calls == []  # read, not sampled
    fresh, shared = (json.loads((tmp_path / d / "verifier.json").read_text())
                     for d in ("fresh", "shared"))  # fmt: skip
    for key in ("train_kinds", "train_labels", "losses", "heldout", "heldout_judged",
                "heldout_exact_steps"):  # fmt: skip
        assert fresh[key] == shared[key], key


def test_a_samples_file_of_other_settings_or_not_ours_is_refused(tmp_path, capsys, no_sampling):
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"settings": {"questions": 99}, "train": [], "heldout": []}))
    assert cli(["train", *SMALL, "--out", str(tmp_path / "v"), "--samples-file",
                str(samples)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "holds samples of other settings" in err and "questions 99 here 2" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "v").exists()
    samples.write_text("[1, 2")
    assert cli(["train", *SMALL, "--out", str(tmp_path / "v"), "--samples-file",
                str(samples)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "not readable as JSON" in err and len(err.splitlines()) == 1, err
