"""Run safety: stopping on signals, the run-folder lock, divergence, full disks, bad paths.

The signal tests interrupt real processes (train_zero.py in a subprocess) and,
for each phase a signal can land in, the trainer in this process; after every
interruption a resumed run must equal a straight one.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import grpo.trainer as tr
import grpo.update as upd
from grpo.run.checkpoint import latest_checkpoint, load_trainer_state
from grpo.run.config import TrainConfig
from grpo.run.policy import pick_device
from grpo.tasks import in_heldout
from grpo.trainer import Trainer, TrainingDiverged
from model import CheckpointError
from tests.test_trainer import SMALL  # a random tiny model on countdown; mu = 2, 2 mini-batches

ROOT = Path(__file__).resolve().parents[1]
CLI = ["--steps", "6", "--max-new-tokens", "48"] + [
    a for k, v in SMALL.items() if k != "max_new_tokens"
    for a in (f"--{k.replace('_', '-')}", str(v))
]  # fmt: skip


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_zero.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def _start(args: list[str]) -> subprocess.Popen:
    # As a user's shell runs it: PYTHONUNBUFFERED (set in some CI images) would hide buffering.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen([sys.executable, "train_zero.py", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(proc: subprocess.Popen, needle: str, timeout: float) -> str | None:
    """proc's stdout up to `needle`, read while it runs; None if it did not come in time."""
    fd, buf = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None  # EOF: the process ended without printing it
            buf += chunk
            if needle.encode() in buf:
                return buf.decode()
    return None


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, f"expected one line:\n{stderr}"
    return lines[0]


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ at {k}"


def _cfg(out: Path, **changes) -> TrainConfig:
    return TrainConfig(**{**SMALL, "out": str(out), "steps": 3, **changes})


# ----------------------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def straight_cli(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "straight"
    p = _run(["--out", str(run), *CLI])
    assert p.returncode == 0, p.stderr
    return run


@pytest.mark.parametrize(
    "sig,after,code",
    [
        # Ctrl-C once training runs, long before the first --save-every checkpoint.
        (signal.SIGINT, "step    1/6", 130),
        # `kill`/`timeout`, as early as the run starts (the step-0 evaluation or step 1).
        (signal.SIGTERM, "run folder:", 143),
    ],
)
def test_signal_checkpoints_and_resume_is_exact(tmp_path, straight_cli, sig, after, code):
    run = tmp_path / "run"
    proc = _start(["--out", str(run), *CLI])
    seen = _wait_for(proc, after, timeout=120)
    assert seen is not None, f"never printed {after!r}: {proc.communicate()}"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{err}"
    line = _one_line(err)
    assert "--resume" in line and signal.Signals(sig).name in line, line
    ckpt = latest_checkpoint(run)
    if ckpt is not None:
        assert str(ckpt) in line, f"the message does not name the checkpoint {ckpt}: {line}"
        assert int(ckpt.name.split("_")[1]) < 6, "the run finished before the signal"

    p = _run(["--out", str(run), "--resume"])
    assert p.returncode == 0, p.stderr
    assert _rows(run) == _rows(straight_cli), "metrics after stop + resume differ"
    _same_weights(latest_checkpoint(run), latest_checkpoint(straight_cli))


def test_second_writer_is_refused_and_a_dead_ones_lock_is_not(tmp_path):
    run = tmp_path / "run"
    first = _start(["--out", str(run), "--steps", "500", "--save-every", "0", *CLI[2:]])
    try:
        assert _wait_for(first, "run folder:", timeout=120), first.communicate()
        for args in (["--resume"], []):  # a resume, and a fresh run into the same folder
            p = _run(["--out", str(run), *args, *([] if args else CLI)], timeout=60)
            assert p.returncode != 0, f"a second writer ran: {args}"
            line = _one_line(p.stderr)
            assert f"PID {first.pid}" in line, f"the holder's PID is not named: {line}"
        assert first.poll() is None, "the first run did not survive the second writer"
    finally:
        first.kill()
        first.wait()
    assert (run / ".lock").read_text().strip() == str(first.pid)
    # Killed: its lock died with it; a resume (no checkpoint yet: from step 0) may proceed.
    p = _run(["--out", str(run), "--resume", "--steps", "1"])
    assert p.returncode == 0, p.stderr
    assert "starting it again from step 0" in p.stdout, p.stdout
    assert [r["step"] for r in _rows(run)] == [0, 1, 1], "restarted run's metrics"


def test_piped_output_arrives_while_training(tmp_path):
    """stdout is a pipe (| tee, nohup): lines must not wait in a block buffer."""
    run = tmp_path / "run"
    proc = _start(["--out", str(run), "--steps", "1000", *CLI[2:]])
    try:
        seen = _wait_for(proc, "step    1/1000", timeout=60)
        running = proc.poll() is None
        done = len(_rows(run)) - 1 if seen else None  # steps trained when the line came
    finally:
        proc.kill()
        proc.wait()
    assert seen is not None, "no progress line reached the pipe while the run was going"
    assert running and "run folder:" in seen
    # A block buffer (8 KB, ~48 step lines) would deliver step 1's line dozens of steps late.
    assert done < 10, f"step 1's line arrived after {done} steps"


def test_a_closed_pipe_does_not_stop_the_run(tmp_path):
    """`train_zero.py | head -2`: the reader goes away, the run finishes and saves, no traceback."""
    run = tmp_path / "run"
    proc = _start(["--out", str(run), *CLI])
    proc.stdout.readline()
    proc.stdout.close()  # what head does after its lines
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    assert "Traceback" not in err and "Broken pipe" not in err and "BrokenPipe" not in err, err
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == "step_000006", f"final checkpoint: {ckpt}"


# ----------------------------------------------------------------------------- each phase
@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[list[dict], dict]:
    run = tmp_path_factory.mktemp("inproc") / "straight"
    t = Trainer(_cfg(run, eval_every=2, save_every=0), log=lambda *a: None)
    t.train()
    return _rows(run), {k: v.clone() for k, v in t.model.state_dict().items()}


def _kill_self(sig: int = signal.SIGINT, times: int = 1) -> None:
    for _ in range(times):
        os.kill(os.getpid(), sig)


@pytest.mark.parametrize(
    "phase,sig,times,kept,said",
    [
        ("rollout", signal.SIGINT, 1, "step_000001", "the rollout of step 2 was abandoned"),
        ("update", signal.SIGTERM, 1, "step_000002", "stopped after step 2"),
        ("eval", signal.SIGINT, 1, "step_000002", "the evaluation at step 2 was abandoned"),
        ("update", signal.SIGINT, 2, None, "without saving"),
    ],
)
def test_stop_in_each_phase_then_exact_resume(tmp_path, monkeypatch, straight, phase, sig, times,
                                              kept, said):  # fmt: skip
    """A rollout or evaluation is abandoned, an update finishes its step; twice: no save."""
    run = tmp_path / "run"
    t = Trainer(_cfg(run, eval_every=2, save_every=0), log=lambda *a: None)
    target = {"rollout": "rollout", "update": "grpo_loss", "eval": "evaluate"}[phase]
    mod = upd if phase == "update" else tr  # the module that calls it
    real = getattr(mod, target)

    def interrupting(*a, **k):
        if t.step == (1 if phase != "eval" else 2) and not interrupting.sent:
            interrupting.sent = True
            _kill_self(sig, times)
        return real(*a, **k)

    interrupting.sent = False
    monkeypatch.setattr(mod, target, interrupting)
    with pytest.raises(tr.TrainingInterrupted) as info:
        t.train()
    monkeypatch.setattr(mod, target, real)
    assert info.value.exit_code == 128 + sig
    assert said in str(info.value), str(info.value)
    ckpt = latest_checkpoint(run)
    assert (ckpt.name if ckpt else None) == kept, f"checkpoint {ckpt}, expected {kept}"
    steps = [r["step"] for r in _rows(run)]
    assert 2 not in [r["step"] for r in _rows(run) if "eval_accuracy" in r], steps

    resumed = Trainer(_cfg(run, eval_every=2, save_every=0), resume=True, log=lambda *a: None)
    resumed.train()
    rows, weights = straight
    assert _rows(run) == rows, "metrics after stop + resume differ from the straight run"
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, weights[k]), f"weights differ at {k}"


# ----------------------------------------------------------------------------- divergence
def test_divergence_mid_step_keeps_the_true_pre_step_checkpoint(tmp_path, monkeypatch):
    """NaN in the 2nd mini-batch: the 1st already stepped the optimizer; nothing is saved."""
    t = Trainer(_cfg(tmp_path / "run", steps=5, save_every=0, mu=1), log=lambda *a: None)
    t.train_step()
    t.save()
    weights = {k: v.clone() for k, v in t.model.state_dict().items()}
    opt = copy.deepcopy(t.opt.state_dict())
    real, calls = upd.grpo_loss, []

    def nan_in_second_minibatch(*a, **k):
        calls.append(1)  # 16 rows, 2 mini-batches of 8, micro-batches of 5: call 3 is in the 2nd
        loss, sums = real(*a, **k)
        return (loss * float("nan") if len(calls) >= 3 else loss), sums

    monkeypatch.setattr(upd, "grpo_loss", nan_in_second_minibatch)
    with pytest.raises(TrainingDiverged) as info:
        t.train_step()
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt.name == "step_000001"
    assert str(ckpt) in str(info.value), f"the last good checkpoint is not named: {info.value}"
    saved = load_file(ckpt / "model.safetensors")
    for k, v in weights.items():
        if k in saved:
            assert torch.equal(saved[k], v), f"checkpointed {k} is not the pre-step weight"
    state = load_trainer_state(ckpt)["optimizer"]["state"]
    for i, s in opt["state"].items():
        for name, v in s.items():
            assert torch.equal(state[i][name], v), f"optimizer {name} of param {i} moved"


# ----------------------------------------------------------------------------- full disk
def _enospc_torch_save(real):
    def save(obj, f, *a, **k):
        real(obj, f, *a, **k)
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return save


def test_full_disk_save_leaves_no_debris_and_says_why(tmp_path, monkeypatch):
    t = Trainer(_cfg(tmp_path / "run"), log=lambda *a: None)
    t.step = 1
    first = t.save()
    monkeypatch.setattr(torch, "save", _enospc_torch_save(torch.save))
    t.step = 2
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        t.save()
    monkeypatch.undo()
    assert "could not write checkpoint" in str(info.value) and str(first) in str(info.value)
    root = t.run_dir / "checkpoints"
    assert not list(root.glob(".tmp-*")), f"debris left: {list(root.iterdir())}"
    assert latest_checkpoint(t.run_dir) == first
    # Debris of a killed save (which cannot clean up) is removed at the next start.
    stale = root / ".tmp-step_000002-99999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    (t.run_dir / "metrics.jsonl").write_text("")
    t.close()
    Trainer(_cfg(t.run_dir), resume=True, log=lambda *a: None).close()
    assert not stale.exists(), "a stale temporary checkpoint survived the start"


def test_full_disk_at_the_entry_point_is_one_line(tmp_path, monkeypatch, capsys):
    import train_zero

    monkeypatch.setattr(torch, "save", _enospc_torch_save(torch.save))
    rc = train_zero.main(["--out", str(tmp_path / "run"), "--steps", "1", *CLI[2:]])
    err = capsys.readouterr().err
    assert rc == 1  # the machine's failure; a bad input exits 2
    line = _one_line(err)
    assert "could not write checkpoint" in line and "No space left on device" in line, line
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp-*"))


def test_a_corrupt_model_is_bad_input_at_the_entry_point(tmp_path, capsys):
    import shutil

    import train_zero

    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "assets" / "demo-base", bad)
    (bad / "model.safetensors").write_bytes(b"cut short")
    rc = train_zero.main(["--out", str(tmp_path / "run"), *CLI, "--model", str(bad),
                          "--task", "addition"])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "model.safetensors: corrupt or truncated" in line, (rc, line)


# ----------------------------------------------------------------------------- schedule
def test_extending_a_finished_run_continues_at_the_floor_lr(tmp_path):
    run = tmp_path / "run"
    Trainer(_cfg(run, steps=2), log=lambda *a: None).train()
    logs: list[str] = []
    Trainer(_cfg(run, steps=4), resume=True, log=logs.append).train()
    lrs = {r["step"]: r["lr"] for r in _rows(run) if "lr" in r}
    floor = SMALL["lr"] * TrainConfig().min_lr_ratio
    assert lrs[3] == pytest.approx(floor) and lrs[4] == pytest.approx(floor), (
        f"lr of the added steps {lrs[3]}, {lrs[4]}; the schedule ended at {floor}"
    )
    assert any("schedule" in line and "original length of 2 steps" in line for line in logs), logs


# ----------------------------------------------------------------------------- held-out count
def test_real_heldout_count_and_warnings(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + {i}", "answer": 2 * i}) + "\n"
                            for i in range(20)))  # fmt: skip
    logs: list[str] = []
    cfg = _cfg(tmp_path / "run", task="jsonl", task_path=str(data), eval_n=500, steps=1,
               top_p=0.9)  # fmt: skip
    t = Trainer(cfg, log=logs.append)
    n = len(t.task.heldout(500))
    assert n < 20 and len(t.heldout) == n
    t.train()
    text = "\n".join(logs)
    start = next(line for line in logs if line.startswith("run folder:"))
    assert f"held-out {n}" in start, start
    assert f"held-out ({n})" in text and "held-out (500)" not in text, text
    assert f"warning: held-out accuracy on {n} questions is noise" in text, text
    assert "warning: top_p=0.9" in text, "config_warnings were not logged"


# ----------------------------------------------------------------------------- context length
def _digits(rng: random.Random, n: int) -> str:
    return " ".join(str(rng.randrange(10**6)) for _ in range(n))


def _jsonl_with_long_questions(path: Path, long_train: int, long_heldout: int,
                               short_train: int = 20) -> None:  # fmt: skip
    """Short and over-long questions, each chosen to land in the train or held-out split."""
    rng = random.Random(0)
    want = {("long", True): long_heldout, ("long", False): long_train,
            ("short", True): 2, ("short", False): short_train}  # fmt: skip
    lines, i = [], 0
    while any(want.values()):
        i += 1
        kind = "long" if i % 2 else "short"
        q = f"What is {_digits(rng, 250)}" if kind == "long" else f"What is {i} + {i}"
        key = (kind, in_heldout(f"jsonl:{q}", 0.1))
        if want[key]:
            want[key] -= 1
            lines.append(json.dumps({"question": q, "answer": 1}))
    path.write_text("\n".join(lines) + "\n")


def test_overlong_questions_are_dropped_and_skipped(tmp_path):
    data = tmp_path / "q.jsonl"
    _jsonl_with_long_questions(data, long_train=5, long_heldout=2)
    logs: list[str] = []
    t = Trainer(_cfg(tmp_path / "run", task="jsonl", task_path=str(data), eval_n=50, steps=8),
                log=logs.append)  # fmt: skip
    assert len(t.heldout) == 2, [len(ex["question"]) for ex in t.heldout]
    assert any("dropped 2 of 4 held-out" in line or "dropped 2 of 4 questions" in line
               for line in logs), logs  # fmt: skip
    assert any("train: 5 of 25 questions will be skipped" in line for line in logs), logs
    rows = [t.train_step() for _ in range(8)]
    consumed = rows[-1]["data_pos"]
    long = sum(len(t.task.train_example(i)["question"]) > 1000 for i in range(consumed))
    assert sum(r.get("skipped_overlong", 0) for r in rows) == long > 0
    assert all(r.get("skipped_overlong", 1) > 0 for r in rows), "a key of 0 was written"
    assert consumed == 8 * 4 + long, "the data position must count skipped questions"


def test_nothing_fits_is_refused_before_the_run_folder_exists(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="context of 1024 positions"):
        Trainer(_cfg(run, max_new_tokens=1100), log=lambda *a: None)
    data = tmp_path / "q.jsonl"
    _jsonl_with_long_questions(data, long_train=3, long_heldout=0, short_train=0)
    with pytest.raises(ValueError, match="none of the 3 training questions"):
        Trainer(_cfg(run, task="jsonl", task_path=str(data)), log=lambda *a: None)
    assert not run.exists(), "a refused start left a run folder"


# ----------------------------------------------------------------------------- bad paths
def test_pick_device_refuses_in_one_line():
    for name in ("gpu", "mps", "xla", "cuda:x"):
        if name == "mps" and torch.backends.mps.is_available():
            continue
        with pytest.raises(ValueError, match=f"--device {name}|--device '{name}'"):
            pick_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.parametrize("model,said", [
    ("dmeo", "did you mean demo?"),
    ("/no/such/dir", "no such folder"),
])  # fmt: skip
def test_unknown_model_lists_the_builtins(tmp_path, capsys, model, said):
    import train_zero

    rc = train_zero.main(["--out", str(tmp_path / "run"), "--model", model])
    line = _one_line(capsys.readouterr().err)
    builtins = ("demo, demo-countdown, gpu-countdown, demo-student, demo-countdown-student, "
                "tiny, small")
    assert rc == 2 and said in line and builtins in line, line
    assert not (tmp_path / "run").exists()


def test_unusable_out_is_one_line(tmp_path, capsys):
    import train_zero

    f = tmp_path / "file"
    f.write_text("")
    ro = tmp_path / "ro"
    ro.mkdir()
    # /proc refuses new files even to root, whom permission bits do not stop
    cases = [(f, "is a file, not a folder"), (f / "sub", "is a file, not a folder"),
             (Path("/proc/r1zero-run"), "--out /proc/r1zero-run: cannot write there (/proc: ")]
    if os.geteuid() != 0:
        ro.chmod(0o555)
        cases.append((ro / "run", f"cannot write there ({ro}: Permission denied)"))
    for out, said in cases:
        rc = train_zero.main(["--out", str(out), "--model", "tiny"])
        line = _one_line(capsys.readouterr().err)
        assert rc == 2 and said in line, f"--out {out}: rc {rc}: {line}"
    assert not (ro / "run").exists()


# ----------------------------------------------------------------------------- progress, ETA
def test_progress_lines_and_an_eta_without_evaluation_time(tmp_path, monkeypatch):
    class Eager(tr.Progress):
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "every_s": 0.0})

    clock = SimpleNamespace(now=0.0)

    def perf_counter():
        clock.now += 1.0  # every reading of the clock: one second
        return clock.now

    real_eval = tr.evaluate

    def slow_eval(*a, **k):
        clock.now += 1000.0  # an evaluation takes 1000 s
        return real_eval(*a, **k)

    monkeypatch.setattr(tr, "Progress", Eager)
    monkeypatch.setattr(tr, "time", SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(tr, "evaluate", slow_eval)
    logs: list[str] = []
    Trainer(_cfg(tmp_path / "run", eval_every=1), log=logs.append).train()
    assert any(line.startswith("eval @ step 0 ") and "/8 questions" in line for line in logs), logs
    assert any(line.startswith("step 1 rollout ") and "/20 tokens" in line for line in logs), logs
    step1 = next(line for line in logs if line.startswith("step    1/3"))
    eta = float(step1.rsplit("eta ", 1)[1].rstrip("s"))
    assert eta < 100, f"the ETA counts evaluation time: {step1}"


# ----------------------------------------------------------------------------- folder, modes
def test_failed_start_without_out_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {k: v for k, v in SMALL.items()}
    for bad in (dict(model="/no/such/dir"), dict(max_new_tokens=1100)):
        with pytest.raises((FileNotFoundError, ValueError)):
            Trainer(TrainConfig(**{**cfg, **bad}), log=lambda *a: None)
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))


def test_files_follow_the_umask(tmp_path):
    from model.checkpoint import write_json_atomic

    old = os.umask(0o027)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        t = Trainer(_cfg(tmp_path / "run"), log=lambda *a: None)
        ckpt = t.save()
    finally:
        os.umask(old)
    for f in (tmp_path / "a.json", tmp_path / "run" / "train_config.json",
              ckpt / "model.safetensors", ckpt / "config.json"):  # fmt: skip
        mode = f.stat().st_mode & 0o777
        assert mode == 0o640, f"{f.name}: mode {oct(mode)}, umask 027 gives 0o640"
