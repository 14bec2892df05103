"""SFT: the data file, the masked loss against a hand computation, the trainer, resume, CLI."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.experiments.sft.config import SFTConfig
from grpo.experiments.sft.data import (
    SFTExample,
    by_length,
    collate,
    read_sft_jsonl,
    step_rows,
    tokenize,
)
from grpo.experiments.sft.loss import completion_nll
from grpo.experiments.sft.trainer import SFTTrainer
from grpo.tasks import get_task
from model import Transformer
from model.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _records(n: int) -> list[dict]:
    """Addition questions with a correct, well-formed completion each."""
    task = get_task("addition")
    out = []
    for i in range(n):
        ex = task.train_example(1000 + i)
        out.append({"prompt": task.prompt(ex), "completion": f" <think> {ex['a']} + {ex['b']} "
                    f"</think> <answer>{ex['target']}</answer>", "question": ex["question"]})
    return out


# ----------------------------------------------------------------------------- data
def test_read_sft_jsonl_names_the_line_of_each_problem(tmp_path):
    good = {"prompt": "p", "completion": "c", "extra": 1}
    assert read_sft_jsonl(_write(tmp_path / "ok.jsonl", [good, "", good])) == [good, good]
    cases = [
        ("{not json", "bad.jsonl:2: invalid JSON"),
        ('["a list"]', "bad.jsonl:2: expected a JSON object, got list"),
        ('{"prompt": "p"}', "bad.jsonl:2: missing 'completion'"),
        ('{"prompt": 3, "completion": "c"}', "bad.jsonl:2: 'prompt' must be a string, got int"),
        ('{"prompt": "p", "completion": "  "}', "bad.jsonl:2: 'completion' is empty"),
        ('{"prompt": "", "completion": "c"}', "bad.jsonl:2: 'prompt' is empty"),
    ]
    for line, said in cases:
        with pytest.raises(ValueError, match=said.replace("[", r"\[")):
            read_sft_jsonl(_write(tmp_path / "bad.jsonl", [good, line]))
    with pytest.raises(ValueError, match="no examples"):
        read_sft_jsonl(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_sft_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="is a folder, not a file"):
        read_sft_jsonl(tmp_path)


class _Tok:
    eos_id = 99

    def encode_batch(self, texts):
        return [[ord(c) - 96 for c in t] for t in texts]


def test_tokenize_appends_eos_and_drops_long_examples():
    rows = [{"prompt": "ab", "completion": "cd"}, {"prompt": "abc", "completion": "defgh"}]
    out, dropped = tokenize(rows, _Tok(), max_len=6)
    assert dropped == 1
    assert out == [SFTExample([1, 2], [3, 4, 99])]


def test_batches_cover_each_epoch_once_in_a_seeded_order():
    a, b = step_rows(10, 4, seed=1, epoch=0), step_rows(10, 4, seed=1, epoch=1)
    assert [len(x) for x in a] == [4, 4, 2]
    assert sorted(sum(a, [])) == list(range(10)) == sorted(sum(b, []))
    assert a != b and a == step_rows(10, 4, seed=1, epoch=0)
    lengths = [5, 1, 9, 1, 3]
    assert by_length([0, 1, 2, 3, 4], lengths, 2) == [[1, 3], [4, 0], [2]]


# ----------------------------------------------------------------------------- the loss
def test_masked_loss_gradient_equals_a_hand_computation():
    """The step's loss = mean over completion tokens (EOS included) of -log p, prompts
    masked, across two micro-batches of different lengths; checked against a
    log_softmax over full logits at hand-listed positions."""
    torch.manual_seed(0)
    model = Transformer(PRESETS["tiny"].with_(vocab_size=50)).init_weights(seed=3)
    examples = [SFTExample([5, 6, 7], [8, 9, 49]), SFTExample([10], [11, 49]),
                SFTExample([12, 13, 14, 15, 16], [17, 18, 19, 49])]  # fmt: skip
    tokens = sum(len(e.completion_ids) for e in examples)
    for part in ([0, 1], [2]):
        batch = collate([examples[i] for i in part], pad_id=0, device="cpu")
        s, n = completion_nll(model, batch, backend="torch")
        assert n == sum(len(examples[i].completion_ids) for i in part)
        (s / tokens).backward()
    ours = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    total = 0.0
    for ex in examples:  # one sequence at a time, no padding
        ids = torch.tensor([ex.prompt_ids + ex.completion_ids])
        logp = torch.log_softmax(model(ids)[0].double(), -1)
        P = len(ex.prompt_ids)
        for t in range(P, ids.shape[1]):  # the token at t, predicted at t - 1
            total = total - logp[t - 1, ids[0, t]]
    (total / tokens).backward()
    for k, p in model.named_parameters():
        assert torch.allclose(ours[k], p.grad, atol=2e-6, rtol=1e-4), k
    # A prompt without a completion has nothing to predict: no loss at all.
    s, n = completion_nll(model, collate([SFTExample([1, 2], [])], 0, "cpu"))
    assert n == 0 and float(s.detach()) == 0.0


# ----------------------------------------------------------------------------- the trainer
def _cfg(tmp_path, data, **kw) -> SFTConfig:
    base = dict(data=str(data), model="tiny", out=str(tmp_path / "run"), epochs=2,
                batch_size=4, micro_batch_size=3, lr=3e-3, warmup_steps=1, eval_n=3,
                eval_every=2, max_new_tokens=6, save_every=2, threads=1, log_every=1,
                keep_checkpoints=3)
    return SFTConfig(**{**base, **kw})


def test_sft_learns_and_resumes_exactly(tmp_path):
    data = _write(tmp_path / "d.jsonl", _records(10))
    straight = SFTTrainer(_cfg(tmp_path, data, out=str(tmp_path / "straight")), log=lambda *a: None)
    straight.train()
    metrics = (tmp_path / "straight" / "metrics.jsonl").read_text()
    rows = [json.loads(x) for x in metrics.splitlines()]
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]  # 10 examples / 4 -> 3 x 2 epochs
    assert [r["epoch"] for r in train] == [1, 1, 1, 2, 2, 2]
    assert train[-1]["loss"] < train[0]["loss"]
    assert [r["step"] for r in rows if "eval_accuracy" in r] == [0, 2, 4, 6]
    # Stopped after step 2: its checkpoint is the latest; resume ends as the straight run.
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "straight", run)
    for s in ("step_000004", "step_000006"):
        shutil.rmtree(run / "checkpoints" / s, ignore_errors=True)
    (run / "checkpoints" / "latest").write_text("step_000002\n")
    lines = []
    SFTTrainer(_cfg(tmp_path, data), resume=True, log=lines.append).train()
    assert any("resumed from" in x and "step 2)" in x for x in lines)
    assert (run / "metrics.jsonl").read_text() == (tmp_path / "straight" / "metrics.jsonl"
                                                   ).read_text()  # fmt: skip
    w1 = load_file(str(tmp_path / "straight" / "checkpoints" / "step_000006" / "model.safetensors"))
    w2 = load_file(str(run / "checkpoints" / "step_000006" / "model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_sft_refuses_an_existing_run_and_a_missing_one(tmp_path):
    data = _write(tmp_path / "d.jsonl", _records(4))
    SFTTrainer(_cfg(tmp_path, data, epochs=1, eval_n=0), log=lambda *a: None).train()
    with pytest.raises(FileExistsError, match="already holds a run"):
        SFTTrainer(_cfg(tmp_path, data, epochs=1, eval_n=0), log=lambda *a: None)
    with pytest.raises(FileNotFoundError, match="no SFT run to resume"):
        SFTTrainer(_cfg(tmp_path, data, out=str(tmp_path / "none")), resume=True)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_sft.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_cli_one_line_errors(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", ['{"prompt": "p", "completion": "c"}', "{oops"])
    good = _write(tmp_path / "good.jsonl", _records(4))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(ROOT / "assets" / "demo-base", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"cut short")
    for args, said in [
        (("--data", str(good), "--model", str(corrupt), "--out", str(tmp_path / "c")),
         "model.safetensors: corrupt or truncated"),
        ((), "--data is required"),
        (("--data", str(tmp_path / "none.jsonl")), "no such file"),
        (("--data", str(bad), "--model", "tiny"), "bad.jsonl:2: invalid JSON"),
        (("--data", str(bad), "--epochs", "0"), "--epochs must be >= 1"),
        (("--out", str(tmp_path / "x"), "--resume"), "does not exist"),
    ]:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_trains_and_a_grpo_run_starts_from_its_checkpoint(tmp_path):
    data = _write(tmp_path / "d.jsonl", _records(6))
    run = tmp_path / "sft"
    r = _cli("--data", str(data), "--model", "tiny", "--out", str(run), "--epochs", "1",
             "--batch-size", "3", "--eval-n", "2", "--max-new-tokens", "4", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert (run / "checkpoints" / "step_000002" / "config.json").is_file()
    r = subprocess.run(
        [sys.executable, "train_zero.py", "--model", str(run), "--steps", "1", "--eval-n", "2",
         "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--plot",
         "false", "--out", str(tmp_path / "zero"), "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"model: loading {run / 'checkpoints' / 'step_000002'}" in r.stdout


def test_steps_runs_on_into_the_next_epochs_order(tmp_path):
    data = _write(tmp_path / "d.jsonl", _records(10))
    SFTTrainer(_cfg(tmp_path, data, steps=5, eval_n=0), log=lambda *a: None).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["epoch"], r["sequences"]) for r in rows] == [
        (1, 1, 4), (2, 1, 4), (3, 1, 2), (4, 2, 4), (5, 2, 4)]  # fmt: skip


def test_ctrl_c_finishes_the_step_checkpoints_it_and_resumes(tmp_path, monkeypatch):
    import os
    import signal

    import grpo.experiments.sft.trainer as sft_trainer
    from grpo.run.stopping import TrainingInterrupted

    data = _write(tmp_path / "d.jsonl", _records(10))
    t = SFTTrainer(_cfg(tmp_path, data, eval_n=0, save_every=100), log=lambda *a: None)
    real = sft_trainer.completion_nll

    def interrupting(*a, **k):
        if t.step == 1 and not interrupting.sent:  # inside step 2's optimizer step
            interrupting.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    interrupting.sent = False
    monkeypatch.setattr(sft_trainer, "completion_nll", interrupting)
    with pytest.raises(TrainingInterrupted, match="stopped after step 2") as info:
        t.train()
    assert info.value.exit_code == 130
    assert (tmp_path / "run" / "checkpoints" / "step_000002").is_dir()
    monkeypatch.setattr(sft_trainer, "completion_nll", real)
    SFTTrainer(_cfg(tmp_path, data, eval_n=0), resume=True, log=lambda *a: None).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
