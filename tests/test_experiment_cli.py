"""grpo/experiments/common.py's command-line rules, shared by grpo.experiments.star,
grpo.experiments.distill, grpo.experiments.r1_pipeline and grpo.search.test_time_compute:
--out and file checks before any work, one line per refusal, nothing left behind by a
refused run, exit 130 on Ctrl-C and 143 on SIGTERM. Nothing here trains."""

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from grpo.experiments.common import (
    Terminated,
    check_model,
    check_out,
    check_writable,
    cli,
    finite_float,
    prepare,
    run_stage,
)
from grpo.run.config import OneLineErrorParser

ROOT = Path(__file__).resolve().parents[1]
PROG = "python -m grpo.x"


def _parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog=PROG)
    p.add_argument("--out", required=True)
    p.add_argument("--w", type=finite_float, default=0.5)
    return p


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call in (lambda: check_out(""), lambda: prepare("", {"a": 1})):
        with pytest.raises(ValueError, match="--out is empty"):
            call()
    assert list(tmp_path.iterdir()) == []  # no settings.json in the current folder


def test_an_out_under_a_file_names_the_flag(tmp_path):
    (tmp_path / "afile.txt").write_text("x")
    for out in (tmp_path / "afile.txt" / "sub", tmp_path / "afile.txt" / "a" / "b"):
        with pytest.raises(ValueError, match=r"^--out .*: cannot create the folder \(.*"
                                             r"afile.txt is a file, not a folder\)$"):  # fmt: skip
            prepare(out, {"a": 1})
    with pytest.raises(ValueError, match="is a file, not a folder"):
        prepare(tmp_path / "afile.txt", {"a": 1})


def test_an_out_where_no_folder_can_be_made_names_the_flag_and_why(tmp_path, monkeypatch):
    if Path("/proc/self").is_dir():  # Linux: nothing can be created in /proc
        with pytest.raises(ValueError, match=r"^--out /proc/x: cannot create the folder "
                                             r"\(/proc: No such file or directory\)$"):  # fmt: skip
            prepare("/proc/x", {"a": 1})

    def denied(*a, **k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(ValueError, match=r"^--out .*new: cannot create the folder "
                                         r"\(Operation not permitted\)$"):  # fmt: skip
        prepare(tmp_path / "new", {"a": 1})
    assert not (tmp_path / "new").exists()


def test_a_figure_path_is_checked_before_any_work(tmp_path):
    (tmp_path / "afile.txt").write_text("x")
    said = r"^--figure .*: cannot write there \(.*is a file, not a folder\)$"
    with pytest.raises(ValueError, match=said):
        check_writable("--figure", tmp_path / "afile.txt" / "x.png")
    with pytest.raises(ValueError, match="--figure .* is a folder"):
        check_writable("--figure", tmp_path)
    if Path("/proc/self").is_dir():
        with pytest.raises(ValueError, match=r"^--figure /proc/x.png: cannot write there"):
            check_writable("--figure", "/proc/x.png")
    check_writable("--figure", tmp_path / "new" / "deeper" / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]  # the probe is gone


def test_non_finite_floats_are_one_line(capsys):
    assert _parser().parse_args(["--out", "x", "--w", "0.25"]).w == 0.25
    for bad in ("nan", "inf", "-inf", "NaN", "x"):
        with pytest.raises(SystemExit) as e:
            _parser().parse_args(["--out", "x", f"--w={bad}"])
        assert e.value.code == 2
        err = _one_line(capsys)
        assert err.startswith(f"{PROG}: error: argument --w:") and repr(bad) in err


def test_a_checkpoint_is_checked_before_the_long_work(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "assets" / "demo-base", bad)
    with open(bad / "model.safetensors", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=r"^--teacher .*bad: .*corrupt or truncated"):
        check_model("--teacher", str(bad), 128, heldout=10)
    with pytest.raises(ValueError, match=r"^--rl .*none: no such folder"):
        check_model("--rl", str(tmp_path / "none"), 128)
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match=r"^--zero .*run: .*neither a checkpoint"):
        check_model("--zero", str(tmp_path / "run"), 128)
    with pytest.raises(ValueError, match="--max-new-tokens 1000 exceeds the model's context"):
        check_model("--rl", str(ROOT / "assets" / "demo-base"), 1000, heldout=10)
    check_model("--rl", str(ROOT / "assets" / "demo-base"), 128, heldout=10)
    check_model("--student", "demo-student", 128, heldout=10, builtins=True)


def test_sigterm_exits_143_and_ctrl_c_130_with_one_line(capsys):
    def unhandled(*_):  # the runner's guard: without cli's own handler, fail, not die
        raise AssertionError("SIGTERM reached the test's handler")

    before = signal.signal(signal.SIGTERM, unhandled)

    def term(a, log):
        os.kill(os.getpid(), signal.SIGTERM)

    def ctrl_c(a, log):
        raise KeyboardInterrupt

    assert cli(PROG, term, _parser(), ["--out", "x"]) == 143
    assert _one_line(capsys).startswith(f"{PROG}: SIGTERM: stopped")
    assert cli(PROG, ctrl_c, _parser(), ["--out", "x"]) == 130
    assert _one_line(capsys).startswith(f"{PROG}: SIGINT: stopped")
    assert signal.signal(signal.SIGTERM, before) is unhandled  # cli put it back


@pytest.mark.parametrize("rc, code", [(143, 143), (130, 130), (2, 2), (1, 2)])
def test_a_stage_stopped_or_failed_stops_the_experiment_with_its_code(rc, code, capsys):
    def run(a, log):
        run_stage(lambda flags: rc, ["--x"], "train_zero.py", log)

    assert cli(PROG, run, _parser(), ["--out", "x"]) == code
    if code == 2:
        assert f"train_zero.py --x exited with {rc}" in _one_line(capsys)
    with pytest.raises(Terminated if rc == 143 else (KeyboardInterrupt, RuntimeError)):
        run_stage(lambda flags: rc, [], "s", lambda *_: None)


def test_a_refused_run_leaves_no_settings_behind(tmp_path, capsys):
    def fails_after_prepare(a, log):
        out = prepare(a.out, {"max_new_tokens": 100000})
        (out / "iter_1").mkdir()  # an empty stage folder: nothing made yet
        raise ValueError("--max-new-tokens 100000 leaves no room")

    new = tmp_path / "new"
    assert cli(PROG, fails_after_prepare, _parser(), ["--out", str(new)]) == 2
    assert not new.exists()
    old = tmp_path / "old"
    old.mkdir()
    assert cli(PROG, fails_after_prepare, _parser(), ["--out", str(old)]) == 2
    assert old.is_dir() and list(old.iterdir()) == []
    # A folder with work in it, or settings saved by an earlier run, is left as it is.
    kept = tmp_path / "kept"
    prepare(kept, {"max_new_tokens": 100000})
    assert cli(PROG, fails_after_prepare, _parser(), ["--out", str(kept)]) == 2
    assert (kept / "settings.json").is_file()
    capsys.readouterr()


def test_a_file_system_failure_is_one_line(capsys):
    def full(a, log):
        raise OSError(28, "No space left on device", "x/settings.json")

    assert cli(PROG, full, _parser(), ["--out", "x"]) == 1
    assert _one_line(capsys) == f"{PROG}: error: No space left on device: x/settings.json"


def test_running_out_of_memory_is_one_line_and_exit_1(capsys):
    def big(a, log):
        raise MemoryError

    assert cli(PROG, big, _parser(), ["--out", "x"]) == 1
    assert _one_line(capsys) == (f"{PROG}: error: out of host memory; what was done is kept in "
                                 "--out: free some memory and run the same command again to "
                                 "continue")  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_of_a_real_process_exits_143(tmp_path):
    """The module run as a command: SIGTERM while it works is exit 143, one line."""
    import subprocess
    import time

    code = ("import sys, time\n"
            "from grpo.experiments.common import cli\n"
            "from grpo.run.config import OneLineErrorParser\n"
            "p = OneLineErrorParser(prog='x'); p.add_argument('--out')\n"
            "def run(a, log):\n"
            "    print('ready', flush=True); time.sleep(60)\n"
            "sys.exit(cli('x', run, p, ['--out', 'o']))\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip().splitlines() == [
        "x: SIGTERM: stopped; what was done is kept in --out: run the same command again to "
        "continue"]  # fmt: skip
