"""torchrun with 2 gloo processes on CPU equals one process (docs/multi_gpu.md)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
# A tiny random model: the entropy bonus and the KL term give every row a gradient
# (its rewards are all 0), weighted by the aggregation's normaliser.
FLAGS = ["--model", "tiny", "--steps", "2", "--prompts-per-step", "5", "--group-size", "4",
         "--max-new-tokens", "24", "--eval-n", "7", "--eval-every", "1", "--mini-batches", "2",
         "--micro-batch-size", "4", "--entropy-coef", "0.01", "--beta", "0.01", "--mu", "2",
         "--lr", "3e-3", "--warmup-steps", "0", "--plot", "false", "--threads", "1"]  # fmt: skip


def _train(out: Path, nproc: int, *extra: str) -> subprocess.CompletedProcess:
    grads = out.parent / f"{out.name}.grads.pt"
    launcher = [*TORCHRUN, f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
    return subprocess.run(
        [*launcher, "tests/dp_train.py", str(grads), *FLAGS, "--out", str(out), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _same_rows(a: list[dict], b: list[dict], rel: float = 1e-5) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-7), (ra["step"], k)
            else:
                assert ra[k] == rb[k], (ra["step"], k)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "step_000002" / "model.safetensors"))


# The tiny random model writes max-new-tokens tokens every time; the demo's trained base
# stops at varied lengths, so the ranks decode for different numbers of steps (with
# FSDP2, a forward that all-gathered mid-decoding would hang or fail there). Its
# gradients are larger, and AdamW turns their fp32 round-off (1e-6 relative) into
# ~1e-5 in the weights where a gradient is near 0, and a loss that sums terms of both
# signs loses relative precision: its weights and metrics are held to 1e-4.
DEMO = ["--model", "demo", "--lr", "1e-4", "--grad-checkpointing"]


@pytest.mark.parametrize("extra, fsdp, wtol", [
    (["--aggregation", "dapo"], False, 1e-5),
    (["--aggregation", "grpo", "--eval-temperature", "0.7"], False, 1e-5),
    (["--aggregation", "dapo"], True, 1e-5),  # FSDP2: sharded gradients and AdamW state
    (["--aggregation", "grpo", *DEMO], True, 1e-4),
])  # fmt: skip
def test_two_processes_equal_one(tmp_path, extra, fsdp, wtol):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _train(one, 1, *extra)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _train(two, 2, *extra, *(["--fsdp"] if fsdp else []))
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "terminate called" not in r2.stderr and "Traceback" not in r2.stderr
    g1 = torch.load(tmp_path / "one.grads.pt")
    g2 = torch.load(tmp_path / "two.grads.pt")
    assert any(float(g.abs().max()) > 0 for g in g1)  # the test has something to compare
    for a, b in zip(g1, g2, strict=True):
        assert (a - b).abs().max() <= 1e-6 * max(1.0, float(a.abs().max()))
    w1, w2 = _weights(one), _weights(two)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=wtol, rtol=0), k
    _same_rows(_metrics(one), _metrics(two), rel=wtol)
    # Only rank 0 wrote the run folder, once.
    assert (two / "samples.jsonl").read_text() == (one / "samples.jsonl").read_text()


@pytest.mark.parametrize("fsdp", [False, True])
def test_resume_across_world_sizes(tmp_path, fsdp):
    """A run saved after step 1 with N processes, resumed with M (N, M in {1, 2}),
    ends as the straight run does. With --fsdp the 2-process runs shard, and the
    checkpoint is the one-process format all the same."""
    shard = ["--fsdp"] if fsdp else []
    for first, second in ((2, 1), (1, 2)):
        straight = tmp_path / f"straight{first}"
        r = _train(straight, first, "--save-every", "1", *(shard if first == 2 else []))
        assert r.returncode == 0, r.stderr[-3000:]
        # The same run as if stopped after step 1: its checkpoint of step 1 is the latest.
        run = tmp_path / f"r{first}{second}"
        shutil.copytree(straight, run)
        shutil.rmtree(run / "checkpoints" / "step_000002")
        (run / "checkpoints" / "latest").write_text("step_000001\n")
        r = _train(run, second, "--resume", *(shard if second == 2 else []))
        assert r.returncode == 0, r.stderr[-3000:]
        assert "resumed from" in r.stdout and "step 1)" in r.stdout
        w1, w2 = _weights(straight), _weights(run)
        for k in w1:
            assert torch.allclose(w1[k], w2[k], atol=1e-5, rtol=0), (first, second, k)
        _same_rows(_metrics(straight), _metrics(run))


def test_ctrl_c_stops_every_process_with_a_checkpoint(tmp_path):
    """SIGINT to torchrun: both processes stop at the same step boundary, rank 0 saves,
    and the run resumes (here with one process)."""
    import signal
    import time

    run = tmp_path / "run"
    p = subprocess.Popen(
        [*TORCHRUN, "--nproc_per_node=2", "train_zero.py", *FLAGS, "--steps", "60", "--out",
         str(run)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        metrics = run / "metrics.jsonl"
        rows = metrics.read_text().count('"reward"') if metrics.exists() else 0
        if rows >= 2:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert "stopped after step" in err, err[-3000:]
    assert (out + err).count("stopping at the end of this step") == 1  # rank 0 alone says it
    assert "--nproc_per_node=2 train_zero.py --out" in err  # how to resume
    step = int(err.split("stopped after step ")[1].split(";")[0])
    assert (run / "checkpoints" / f"step_{step:06d}").is_dir()
    r = _train(run, 1, "--resume", "--steps", str(step + 1))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {run / 'checkpoints' / f'step_{step:06d}'}" in r.stdout
