"""python -m grpo.verifiers train: end to end on the addition demo base, and its errors."""

import json
import subprocess
import sys

import pytest
import torch

from grpo.verifiers.__main__ import main as cli
from grpo.verifiers.train import load_verifier

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
    if kind == "orm":  # one label per completion, at its last token
        assert meta["train_labels"] == 16 * 8
        assert meta["heldout_exact_steps"] is None
    else:  # addition steps are checkable by rule: every held-out step label is compared
        exact = meta["heldout_exact_steps"]
        assert exact["mc_labels"]["steps"] == exact["prm"]["steps"] == meta["heldout"]["labels"]
        assert 0 <= exact["prm"]["agreement"] <= 1
    log = capsys.readouterr().out
    assert "epoch 1/1: loss" in log and f"verifier written to {out}" in log


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--kind", "prm", "--task", "countdown"], "needs a task with step delimiters"),
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
    res = subprocess.run([sys.executable, "-m", "grpo.verifiers", "train", "--kind", "orm"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 2 and "required" in res.stderr and "Traceback" not in res.stderr
