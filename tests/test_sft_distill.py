"""train_sft.py --teacher: token-level distillation in the SFT loop (forward KL, reverse KL,
JSD; on-policy rows sampled by the student), against a hand computation on full logits."""

import json
from pathlib import Path

import pytest
import torch

from grpo.experiments.distill_loss import VocabularyMismatch, divergence
from grpo.experiments.sft.config import SFTConfig
from grpo.experiments.sft.data import SFTExample, collate, read_sft_jsonl
from grpo.experiments.sft.loss import completion_divergence
from grpo.experiments.sft.trainer import SFTTrainer
from grpo.run.config import ConfigError
from grpo.tasks import get_task
from model import Transformer
from model.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("beta, temp", [(0.0, 1.0), (1.0, 1.0), (0.5, 0.7)])
def test_completion_divergence_equals_a_hand_computation(beta, temp):
    """Sum over completion tokens (prompts masked) of D(teacher, student) at the position
    before each, from full fp64 logits of each sequence alone; gradients too."""
    student = Transformer(PRESETS["tiny"].with_(vocab_size=50)).init_weights(seed=3)
    bigger = PRESETS["tiny"].with_(vocab_size=50, hidden_size=48, intermediate_size=96)
    teacher = Transformer(bigger).init_weights(seed=4)
    teacher.requires_grad_(False)
    examples = [SFTExample([5, 6, 7], [8, 9, 49]), SFTExample([10], [11, 49]),
                SFTExample([12, 13, 14, 15, 16], [17, 18, 19, 49])]  # fmt: skip
    batch = collate(examples, pad_id=0, device="cpu")
    s, n = completion_divergence(student, teacher, batch, beta, temp, backend="torch")
    assert n == 9
    s.backward()
    ours = {k: p.grad.clone() for k, p in student.named_parameters()}
    student.zero_grad()
    total = 0.0
    for ex in examples:
        ids = torch.tensor([ex.prompt_ids + ex.completion_ids])
        P, T = len(ex.prompt_ids), ids.shape[1]
        zs, zt = student(ids)[0].double(), teacher(ids)[0].double()
        total = total + divergence(zs[P - 1 : T - 1], zt[P - 1 : T - 1], beta, temp).sum()
    assert float(s.detach()) == pytest.approx(float(total.detach()), rel=1e-5)
    total.backward()
    for k, p in student.named_parameters():
        assert torch.allclose(ours[k], p.grad.float(), atol=1e-6, rtol=1e-4), k


def _records(n: int) -> list[dict]:
    task = get_task("addition")
    return [{"prompt": task.prompt(ex := task.train_example(1000 + i)),
             "completion": f" <think> {ex['a']} + {ex['b']} </think> <answer>{ex['target']}"
                           "</answer>"} for i in range(n)]  # fmt: skip


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(tmp_path, data, name, **kw) -> SFTConfig:
    base = dict(data=str(data), model="tiny", out=str(tmp_path / name), epochs=1,
                batch_size=4, micro_batch_size=3, lr=3e-3, warmup_steps=1, eval_n=0,
                max_new_tokens=8, threads=1, log_every=1, logprob_backend="torch")  # fmt: skip
    return SFTConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny model trained 3 SFT steps: the tokenizer and vocabulary of `--model tiny`."""
    tmp = tmp_path_factory.mktemp("teacher")
    data = _write(tmp / "d.jsonl", _records(12))
    SFTTrainer(_cfg(tmp, data, "t", seed=7), log=lambda *a: None).train()
    return tmp / "t"


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_distillation_counts_its_compute_and_is_reproducible(tmp_path, teacher):
    data = _write(tmp_path / "d.jsonl", _records(10))
    for name in ("a", "b"):
        cfg = _cfg(tmp_path, data, name, teacher=str(teacher), beta=0.5, lmbda=0.5)
        SFTTrainer(cfg, log=lambda *a: None).train()
    rows = [r for r in _rows(tmp_path / "a") if "loss" in r]
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (
        tmp_path / "b" / "metrics.jsonl").read_text()  # fmt: skip
    assert [r["on_policy_sequences"] for r in rows] == [2, 2, 1]  # round(0.5 x 4, 4, 2)
    assert all(0 < r["sampled_tokens"] <= r["on_policy_sequences"] * 8 for r in rows)
    assert all(r["teacher_tokens"] == r["tokens"] and r["loss"] >= 0 for r in rows)


def test_on_policy_needs_prompts_only_and_forward_kl_none(tmp_path, teacher):
    prompts = _write(tmp_path / "p.jsonl", [{"prompt": r["prompt"]} for r in _records(6)])
    cfg = _cfg(tmp_path, prompts, "on", teacher=str(teacher), beta=1.0, lmbda=1.0)
    SFTTrainer(cfg, log=lambda *a: None).train()
    rows = [r for r in _rows(tmp_path / "on") if "loss" in r]
    assert [r["on_policy_sequences"] for r in rows] == [4, 2]
    assert all(r["tokens"] == r["sampled_tokens"] for r in rows)  # every completion its own
    data = _write(tmp_path / "d.jsonl", _records(6))
    SFTTrainer(_cfg(tmp_path, data, "kd", teacher=str(teacher)), log=lambda *a: None).train()
    rows = [r for r in _rows(tmp_path / "kd") if "loss" in r]
    assert all(r["sampled_tokens"] == 0 and r["on_policy_sequences"] == 0 for r in rows)
    with pytest.raises(ValueError, match="'completion'"):
        read_sft_jsonl(prompts)  # without --lmbda 1 a line needs its completion


def test_a_teacher_of_another_vocabulary_is_refused_in_one_line(tmp_path):
    data = _write(tmp_path / "d.jsonl", _records(4))
    cfg = _cfg(tmp_path, data, "x", model=str(ROOT / "assets" / "demo-base"),
               teacher=str(ROOT / "assets" / "demo-countdown-base"))  # fmt: skip
    with pytest.raises(VocabularyMismatch) as e:
        SFTTrainer(cfg, log=lambda *a: None)
    assert "\n" not in str(e.value) and "vocabular" in str(e.value)


def test_distillation_settings_need_a_teacher():
    for key, value in (("beta", 0.5), ("lmbda", 1.0), ("temperature", 2.0)):
        with pytest.raises(ConfigError, match="needs --teacher"):
            SFTConfig(data="d.jsonl", **{key: value})
    with pytest.raises(ConfigError, match="lmbda"):
        SFTConfig(data="d.jsonl", teacher="t", lmbda=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        SFTConfig(data="d.jsonl", teacher="t", temperature=0.0)
