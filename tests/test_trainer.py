"""The trainer: smoke run, exact resume, crash safety, micro-batching, divergence, CLI errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.rollout import completion_logprobs, pack, rollout
from grpo.run.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from grpo.run.config import TrainConfig
from grpo.trainer import Trainer, TrainingDiverged, lr_at
from model import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
# A random tiny model on countdown; an entropy bonus and a KL term give nonzero
# gradients even when every reward is 0, and mu = 2 exercises pi_old and clipping.
SMALL = dict(
    model="tiny", task="countdown", prompts_per_step=4, group_size=4, max_new_tokens=20,
    eval_n=8, eval_every=100, plot=False, log_every=1, entropy_coef=0.01, beta=0.01, mu=2,
    mini_batches=2, micro_batch_size=5, lr=3e-3, warmup_steps=1,
)  # fmt: skip


def _flags(d: dict) -> list[str]:
    out = []
    for k, v in d.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_zero.py", *args], cwd=ROOT, capture_output=True,
                          text=True, **kw)  # fmt: skip


def _rows(run: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [json.loads(x) for x in (run / name).read_text().splitlines()]


def test_lr_schedule():
    cfg = TrainConfig(steps=10, lr=1.0, warmup_steps=2, min_lr_ratio=0.1)
    assert [lr_at(s, cfg, 10) for s in (1, 2)] == [0.5, 1.0]
    assert lr_at(10, cfg, 10) == pytest.approx(0.1)
    mid = 2 + 8 / 2  # half-way through the cosine: (1 + 0.1) / 2
    assert lr_at(int(mid), cfg, 10) == pytest.approx(0.55)
    # Past the schedule's end (a run extended on resume): the floor, not a new cosine.
    assert [lr_at(s, cfg, 10) for s in (11, 20)] == pytest.approx([0.1, 0.1])


def test_end_to_end_smoke(tmp_path):
    """train_zero.py on a random tiny model, countdown, 2 steps, CPU, under 60 s."""
    t0 = time.perf_counter()
    p = _run(["--out", str(tmp_path / "run"), "--steps", "2", *_flags(SMALL)], timeout=120)
    elapsed = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    assert elapsed < 60, f"smoke run took {elapsed:.0f}s"
    run = tmp_path / "run"
    rows = _rows(run)
    train = [r for r in rows if "reward" in r and "eval_accuracy" not in r]
    evals = [r for r in rows if "eval_accuracy" in r]
    assert [r["step"] for r in train] == [1, 2]
    assert [r["step"] for r in evals] == [0, 2]
    for key in ("reward", "accuracy", "format_rate", "completion_len_mean", "entropy", "kl",
                "clip_frac_low", "clip_frac_high", "grad_norm", "lr", "zero_variance_frac"):
        assert all(math.isfinite(r[key]) for r in train), key  # fmt: skip
    for key in ("eval_accuracy", "eval_format_rate", "eval_completion_len_mean"):
        assert all(key in r for r in evals), key
    assert (run / "samples.jsonl").read_text().strip()
    assert json.loads((run / "train_config.json").read_text())["steps"] == 2
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == "step_000002"
    m = load_pretrained(ckpt)
    assert m(torch.tensor([[1, 2, 3]])).shape[-1] == m.config.vocab_size
    assert "step    2/2" in p.stdout and "accuracy" in p.stdout


def test_resume_after_kill_equals_straight_run(tmp_path):
    common = ["--steps", "4", "--save-every", "2", "--max-new-tokens", "48", *_flags(
        {k: v for k, v in SMALL.items() if k != "max_new_tokens"})]  # fmt: skip
    straight = tmp_path / "straight"
    assert _run(["--out", str(straight), *common], timeout=300).returncode == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "train_zero.py", "--out", str(killed), *common]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = killed / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if pointer.is_file() and pointer.read_text().strip() == "step_000002":
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert latest_checkpoint(killed).name == "step_000002"

    p = _run(["--out", str(killed), "--resume"], timeout=300)
    assert p.returncode == 0, p.stderr
    assert "resumed from" in p.stdout
    a, b = _rows(straight), _rows(killed)
    assert a == b, "metrics after kill + resume differ from the straight run"
    wa = load_file(latest_checkpoint(straight) / "model.safetensors")
    wb = load_file(latest_checkpoint(killed) / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ at {k}"
    # The run did learn something, so the comparison is not between two untouched models.
    init = load_file(latest_checkpoint(straight).parent / "step_000002" / "model.safetensors")
    assert any(not torch.equal(init[k], wa[k]) for k in wa)


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    sys.path.insert(0, {root!r})
    from grpo.run.checkpoint import save_checkpoint
    from model import Transformer, train_bpe_tokenizer
    from model.config import PRESETS
    import model.checkpoint as mc

    tok = train_bpe_tokenizer(["a b c 1 2 3"] * 10, 280)
    m = Transformer(PRESETS["tiny"].with_(vocab_size=tok.vocab_size)).init_weights()
    save_checkpoint({run!r}, 1, m, tok, {{"data_pos": 4}})
    with torch.no_grad():
        m.lm_head.weight.add_(1.0)
    real = mc.save_file
    def dying_save(tensors, path, metadata=None):
        real(tensors, path, metadata=metadata)
        with open(path, "r+b") as f:      # half-written file, then the process dies
            f.truncate(os.path.getsize(path) // 2)
        os._exit(9)
    mc.save_file = dying_save
    save_checkpoint({run!r}, 2, m, tok, {{"data_pos": 8}})
""")


def test_kill_mid_checkpoint_leaves_previous_loadable(tmp_path):
    run = tmp_path / "run"
    script = CRASH_SCRIPT.format(root=str(ROOT), run=str(run))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert p.returncode == 9, p.stderr
    ckpt = latest_checkpoint(run)
    assert ckpt.name == "step_000001"
    assert load_trainer_state(ckpt)["data_pos"] == 4
    load_pretrained(ckpt)  # loads: the complete previous checkpoint
    assert list((run / "checkpoints").glob(".tmp-*")), "expected the dead save's debris"
    assert not (run / "checkpoints" / "step_000002").exists()


def test_kill_at_random_moments_never_breaks_latest(tmp_path):
    run = tmp_path / "run"
    loop = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from grpo.run.checkpoint import save_checkpoint
        from model import Transformer, train_bpe_tokenizer
        from model.config import PRESETS
        tok = train_bpe_tokenizer(["a b c 1 2 3"] * 10, 280)
        m = Transformer(PRESETS["small"].with_(vocab_size=tok.vocab_size, num_layers=2))
        step = 0
        while True:
            step += 1
            save_checkpoint({str(run)!r}, step, m, tok, {{"data_pos": step}})
            print(step, flush=True)
    """)
    for delay in (1.5, 2.3, 3.1):
        proc = subprocess.Popen([sys.executable, "-c", loop], stdout=subprocess.PIPE)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        ckpt = latest_checkpoint(run)
        if ckpt is not None:
            assert load_trainer_state(ckpt)["data_pos"] == int(ckpt.name.split("_")[1])
            load_pretrained(ckpt)


def _trainer(tmp_path, name, **changes) -> Trainer:
    cfg = TrainConfig(**{**SMALL, "out": str(tmp_path / name), "steps": 3, **changes})
    return Trainer(cfg, log=lambda *a: None)


def test_micro_batching_matches_full_batch_update(tmp_path):
    """One step with micro-batches of 1 row equals one step with the whole batch at once."""
    ref = _trainer(tmp_path, "full", micro_batch_size=64, mini_batches=1, mu=1, beta=0.0,
                   entropy_coef=0.0, task="addition", format_weight=1.0)  # fmt: skip
    # A model whose samples vary in format so that advantages are nonzero.
    micro = _trainer(tmp_path, "micro", micro_batch_size=1, mini_batches=1, mu=1, beta=0.0,
                     entropy_coef=0.0, task="addition", format_weight=1.0)  # fmt: skip
    micro.model.load_state_dict(ref.model.state_dict())
    for t in (ref, micro):
        t.model.double()
    ra, rb = ref.train_step(), micro.train_step()
    assert ra["reward"] == rb["reward"]
    for (n, a), b in zip(ref.model.named_parameters(), micro.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), f"{n} differs after the update"


def test_loss_logprobs_equal_plain_log_softmax(tmp_path):
    t = _trainer(tmp_path, "lp")
    ro = rollout(t.model, t.tok, t.task, [t.task.train_example(i) for i in range(3)],
                 group_size=2, max_new_tokens=12, temperature=0.7, seed=1)  # fmt: skip
    batch = pack(ro, t.tok.pad_id, "cpu")
    logp, ent = completion_logprobs(t.model, batch, slice(None), temperature=0.7)
    with torch.no_grad():
        logits = t.model(batch.input_ids, batch.attention_mask).double() / 0.7
    P = batch.prompt_len
    lsm = torch.log_softmax(logits[:, P - 1 : -1], -1)
    ref = lsm.gather(-1, batch.completion_ids[..., None])[..., 0]
    ref_ent = -(lsm.exp() * lsm).sum(-1)
    m = batch.completion_mask
    assert torch.allclose(logp[m].double(), ref[m], atol=1e-5)
    assert torch.allclose(ent[m].double(), ref_ent[m], atol=1e-4)
    assert (logp[~m] == 0).all()


def test_divergence_stops_with_a_good_checkpoint(tmp_path, monkeypatch):
    t = _trainer(tmp_path, "nan", steps=5, save_every=0)
    t.train_step()
    import grpo.update as tr  # where the update calls grpo_loss

    real = tr.grpo_loss

    def nan_loss(*a, **k):
        loss, sums = real(*a, **k)
        return loss * float("nan"), sums

    monkeypatch.setattr(tr, "grpo_loss", nan_loss)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="step 2: loss is nan"):
        t.train_step()
    ckpt = latest_checkpoint(tmp_path / "nan")
    assert ckpt.name == "step_000001"
    saved = load_pretrained(ckpt).state_dict()
    for k, v in before.items():
        assert torch.equal(saved[k], v), f"checkpointed {k} is not the last good weight"


@pytest.mark.parametrize(
    "args,match",
    [
        (["--lr", "abc"], "--lr"),
        (["--no-such-flag", "1"], "unrecognized arguments"),
        (["--model", "/nonexistent/ckpt"], "/nonexistent/ckpt"),
        (["--config", "/nonexistent.json"], "nonexistent.json"),
        (["--group-size", "1"], "group-size"),
        (["--task", "nope"], "nope"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_bad_flags_give_one_clear_line(args, match):
    p = _run(args, timeout=60)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.strip().splitlines() if ln]
    assert len(lines) == 1, f"expected one line, got:\n{p.stderr}"
    assert match in lines[0] and "Traceback" not in p.stderr


def test_config_file_then_flags(tmp_path):
    from grpo.run.config import read_config_file

    f = tmp_path / "c.toml"
    f.write_text('lr = 0.5\nmax-new-tokens = 7\ntask = "countdown"\n')
    assert read_config_file(f) == {"lr": 0.5, "max_new_tokens": 7, "task": "countdown"}
    (tmp_path / "bad.json").write_text('{"lr": 1, "nope": 2}')
    with pytest.raises(ValueError, match="nope"):
        TrainConfig.from_dict(read_config_file(tmp_path / "bad.json"))


def test_existing_run_needs_resume(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(TrainConfig(**{**SMALL, "out": str(tmp_path)}))


def test_checkpoint_pruning(tmp_path):
    t = _trainer(tmp_path, "prune")
    for s in range(1, 5):
        t.step = s
        save_checkpoint(t.run_dir, s, t.model, t.tok, {"data_pos": s}, keep=2)
    names = sorted(p.name for p in (t.run_dir / "checkpoints").glob("step_*"))
    assert names == ["step_000003", "step_000004"]
    assert os.path.exists(t.run_dir / "checkpoints" / "latest")


def test_beta_zero_builds_no_reference_model(tmp_path):
    t = _trainer(tmp_path, "nokl", beta=0.0, mu=1, mini_batches=1)
    assert t.ref is None
    row = t.train_step()
    assert "kl" not in row and "entropy" in row
    t2 = _trainer(tmp_path, "kl", beta=0.01)
    assert t2.ref is not None and not any(p.requires_grad for p in t2.ref.parameters())


def test_truncate_after_drops_later_and_torn_lines(tmp_path):
    from grpo.run.runfolder import JsonlWriter

    w = JsonlWriter(tmp_path / "m.jsonl")
    for s in (0, 1, 2, 3):
        w.write({"step": s})
    with open(w.path, "a") as f:
        f.write('{"step": 4, "rew')  # the process died mid-line
    w.truncate_after(2)
    assert [json.loads(x)["step"] for x in w.path.read_text().splitlines()] == [0, 1, 2]
