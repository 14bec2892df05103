"""Running out of memory (CUDA or host) is one line with what to lower, and exit 1."""

from __future__ import annotations

import pytest
import torch

from grpo.run.report import out_of_memory

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
           "memory: you tried to allocate 2147483648 bytes. Error code 12 (Cannot allocate "
           "memory)")  # fmt: skip
CUDA_OOM = ("CUDA out of memory. Tried to allocate 3.50 GiB. GPU 0 has a total capacity of "
            "79.19 GiB of which 1.12 GiB is free.")  # fmt: skip


@pytest.mark.parametrize(
    "error, said",
    [(RuntimeError(CPU_OOM), "out of host memory (tried to allocate 2.0 GiB)"),
     (torch.OutOfMemoryError(CUDA_OOM), "out of CUDA memory (tried to allocate 3.50 GiB)"),
     (MemoryError(), "out of host memory"),
     (RuntimeError("HIP out of memory"), "out of memory"),
     (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), None),
     (ValueError("out of memory"), None)],
)  # fmt: skip
def test_out_of_memory_is_recognised_and_worded(error, said):
    assert out_of_memory(error) == said


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_train_zero_names_what_to_lower_and_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import train_zero
    from grpo.trainer import Trainer

    def train(self):  # one step saved, then the next one runs out of memory
        self.step = 1
        self.save()
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(Trainer, "train", train)
    run = tmp_path / "run"
    rc = train_zero.main(["--out", str(run), "--model", "tiny", "--task", "countdown",
                          "--steps", "2", "--eval-n", "2", "--threads", "1"])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert rc == 1, line
    assert line == ("train_zero.py: error: out of host memory (tried to allocate 2.0 GiB); "
                    "lower --micro-batch-size, --eval-batch-size, --group-size or "
                    "--max-new-tokens, or add --grad-checkpointing; the last checkpoint is "
                    f"{run / 'checkpoints' / 'step_000001'} (--resume continues from it)")


def test_train_zero_lets_other_runtime_errors_through(tmp_path, monkeypatch):
    import train_zero
    from grpo.trainer import Trainer

    def train(self):
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(Trainer, "train", train)
    with pytest.raises(RuntimeError, match="a bug"):
        train_zero.main(["--out", str(tmp_path / "run"), "--model", "tiny", "--task",
                         "countdown", "--eval-n", "2", "--threads", "1"])  # fmt: skip


def test_train_sft_says_what_to_lower(tmp_path, monkeypatch, capsys):
    import train_sft
    from grpo.experiments.sft.trainer import SFTTrainer
    from tests.test_sft import _records, _write

    def train(self):
        raise MemoryError

    monkeypatch.setattr(SFTTrainer, "train", train)
    data = _write(tmp_path / "d.jsonl", _records(4))
    rc = train_sft.main(["--data", str(data), "--model", "tiny", "--out", str(tmp_path / "run"),
                         "--threads", "1"])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert rc == 1 and line == ("train_sft.py: error: out of host memory; lower "
                                "--micro-batch-size, --eval-batch-size or --max-len"), line


def test_eval_says_what_to_lower_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import eval as ev
    import grpo.evaluate

    def evaluate(*a, **k):
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(grpo.evaluate, "evaluate", evaluate)
    out = tmp_path / "r.json"
    rc = ev.main(["--model", "demo", "--n", "50", "--json", str(out)])
    line = _one_line(capsys.readouterr().err)
    assert rc == 1 and line == ("eval.py: error: out of CUDA memory (tried to allocate 3.50 GiB); "
                                "lower --batch-size, --samples or --max-new-tokens; nothing was "
                                "written"), line
    assert not out.exists()
