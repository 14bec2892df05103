"""python -m grpo.experiments.rejection refuses bad input with one line, before any sampling."""

import os
import shutil
from pathlib import Path

import pytest

import grpo.experiments.rejection as rejection

ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m grpo.experiments.rejection: error: "
FAST = ["--questions", "2", "--k", "2", "--max-new-tokens", "4", "--threads", "1"]


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the model is loaded or sampled: the refusal must come first."""

    def boom(ns):
        raise AssertionError("ran before the refusal")

    monkeypatch.setattr(rejection, "run", boom)


def _refused(argv, capsys) -> str:
    """The one stderr line of a run that argparse refuses (exit 2)."""
    with pytest.raises(SystemExit) as e:
        rejection.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(PROG), err
    return err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "inf"], "--temperature must be finite, got inf"),
        (["--temperature", "nan"], "--temperature must be finite, got nan"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--seed", "-1"], "--seed must be in 0 .. 2**32 - 1, got -1"),
        (["--seed", str(2**32)], "--seed must be in 0 .. 2**32 - 1"),
        (["--seed", "99999999999999999999"], "--seed must be in 0 .. 2**32 - 1"),
        (["--threads", "-1"], "--threads must be in 0 .. 4096 (0 = torch's default), got -1"),
        (["--task-path", "q.jsonl"], "--task-path is only for --task jsonl (the task is addition)"),
        (["--task", "countdown", "--task-path", "q.jsonl"],
         "--task-path is only for --task jsonl (the task is countdown)"),
        (["--task", "jsonl"], "--task jsonl needs --task-path FILE"),
    ],
)  # fmt: skip
def test_bad_flags_are_refused_before_sampling(tmp_path, extra, message, capsys, no_run):
    out = tmp_path / "sft.jsonl"
    err = _refused(["--model", "tiny", "--out", str(out), *FAST, *extra], capsys)
    assert message in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["proc", "sys", "folder", "under_a_file", "empty", "fifo"])
def test_an_unwritable_out_is_refused_before_sampling(tmp_path, where, capsys, no_run):
    (tmp_path / "file").write_text("keep")
    if where == "fifo":
        os.mkfifo(tmp_path / "fifo")
    out, message = {
        "proc": ("/proc/x", "--out /proc/x: cannot write there (/proc: "),
        "sys": ("/sys/x", "--out /sys/x: cannot write there (/sys: "),
        "folder": (str(tmp_path), f"--out {tmp_path} is a folder; give a file name"),
        "under_a_file": (str(tmp_path / "file" / "x.jsonl"),
                         f"--out {tmp_path / 'file' / 'x.jsonl'}: cannot write there "
                         f"({tmp_path / 'file'} is a file, not a folder)"),
        "empty": ("", "--out is empty"),
        "fifo": (str(tmp_path / "fifo"), "is not a regular file"),
    }[where]  # fmt: skip
    if where in ("proc", "sys") and not os.path.isdir("/" + where):
        pytest.skip(f"no /{where} here")
    err = _refused(["--model", "tiny", "--out", out, *FAST], capsys)
    assert message in err
    assert "Errno" not in err and ".tmp" not in err
    assert (tmp_path / "file").read_text() == "keep"


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(ROOT / "assets" / "demo-base", model)
    with open(model / "model.safetensors", "r+b") as f:
        f.truncate(100)
    out = tmp_path / "sft.jsonl"
    assert rejection.main(["--model", str(model), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(PROG) and len(err.splitlines()) == 1, err
    assert "model.safetensors: corrupt or truncated" in err
    assert not out.exists()


def test_a_late_write_failure_is_one_line_naming_out(tmp_path, capsys, monkeypatch):
    def full_disk(records, path):
        raise OSError(28, "No space left on device", str(Path(path).parent / ".x.abc.tmp"))

    monkeypatch.setattr(rejection, "write_jsonl", full_disk)
    out = tmp_path / "sft.jsonl"
    assert rejection.main(["--model", "tiny", "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"{PROG}could not write --out {out} (No space left on device); its 0 "
                   "records are lost")  # fmt: skip
