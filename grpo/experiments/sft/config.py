"""Every setting of an SFT run, in one dataclass (the flags of train_sft.py).

Checked when built, before any model loads: a bad value is a ConfigError naming
the flag. Saved as sft_config.json in the run folder; --resume reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from typing import Any

from grpo.run.config import ConfigError, _f, _type_problem


@dataclass
class SFTConfig:
    data: str | None = _f(None, "JSONL of {\"prompt\": ..., \"completion\": ...} lines "
                          "(required; python -m grpo.experiments.rejection writes one)")
    model: str = _f("demo", "the base: a checkpoint folder, a run folder (its latest "
                    "checkpoint), or a built-in (demo, demo-countdown, demo-student, "
                    "demo-countdown-student, tiny, small)")
    task: str = _f("addition", "the task of the held-out evaluation: addition, countdown, jsonl")
    task_path: str | None = _f(None, "for --task jsonl: the file of {question, answer} lines")
    template: str = _f("r1zero", "prompt template of the held-out evaluation")
    out: str | None = _f(None, "run folder (default runs/sft-<time>)")
    seed: int = _f(0, "seed for the data order (and a preset's init), 0 to 2**32 - 1")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto (cuda if available)")
    epochs: int = _f(2, "passes over the data")
    steps: int = _f(0, "optimizer steps instead (0 = --epochs passes; more than one pass "
                    "continues into the next epoch's order)")
    batch_size: int = _f(32, "sequences per optimizer step")
    micro_batch_size: int = _f(32, "at most this many sequences per forward/backward")
    lr: float = _f(1e-4, "peak learning rate (AdamW)")
    min_lr_ratio: float = _f(0.1, "cosine schedule ends at lr * min_lr_ratio (0 to 1)")
    warmup_steps: int = _f(10, "linear warmup steps (0 = none)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.99, "AdamW beta2")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0 = off)")
    max_len: int = _f(0, "drop examples longer than this many tokens (0 = the model's context)")
    max_new_tokens: int = _f(128, "held-out evaluation: completion budget in tokens")
    eval_every: int = _f(50, "held-out evaluation every N steps (and at step 0 and the end)")
    eval_n: int = _f(200, "held-out questions per evaluation (0 = no evaluation)")
    eval_batch_size: int = _f(512, "prompts per generation batch during evaluation")
    samples_per_eval: int = _f(4, "held-out completions written to samples.jsonl per evaluation")
    save_every: int = _f(100, "checkpoint every N steps (and at the end); 0 = only at the end")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")
    log_every: int = _f(10, "console progress line every N steps")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)")
    logprob_backend: str = _f("auto", "kernel backend of the loss: auto, triton, torch")
    # Token-level distillation (TRL GKDTrainer's names; grpo/experiments/distill_loss.py):
    teacher: str | None = _f(None, "a teacher checkpoint or run folder: train on the per-token "
                             "divergence from its next-token distribution instead of the NLL "
                             "(it must share the student's vocabulary)")
    beta: float = _f(0.0, "with --teacher: 0 forward KL(teacher || student), 1 reverse KL, "
                     "between: the generalized Jensen-Shannon divergence")
    temperature: float = _f(1.0, "with --teacher: both distributions' temperature, and the "
                            "student's sampling temperature for --lmbda")
    lmbda: float = _f(0.0, "with --teacher: the fraction of each batch's sequences the student "
                      "samples itself from the prompts (1 = on-policy distillation)")

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _type_problem(str(f.type), getattr(self, f.name))
            if problem:
                raise ConfigError(f.name, problem)
        for f in fields(self):
            if f.type == "float":
                setattr(self, f.name, float(getattr(self, f.name)))

        def need(cond: bool, key: str, rule: str) -> None:
            if not cond:
                raise ConfigError(key, f"{rule}, got {getattr(self, key)!r}")

        from grpo.tasks import available_tasks
        from grpo.tasks.templates import TEMPLATES

        need(bool(self.data), "data", "is required: a JSONL file of prompt/completion lines")
        need(self.model != "", "model", "must name a checkpoint folder, run folder or built-in")
        need(self.task in available_tasks(), "task",
             f"must be one of {', '.join(available_tasks())}")  # fmt: skip
        need(self.task != "jsonl" or bool(self.task_path), "task_path",
             "must be given with --task jsonl")  # fmt: skip
        need(self.template in TEMPLATES, "template", f"must be one of {', '.join(TEMPLATES)}")
        need(0 <= self.seed < 2**32, "seed", "must be in 0 .. 2**32 - 1")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device",
             "must be auto, cpu, cuda or cuda:N")  # fmt: skip
        for key in ("epochs", "batch_size", "micro_batch_size", "max_new_tokens", "eval_every",
                    "log_every", "keep_checkpoints"):  # fmt: skip
            need(getattr(self, key) >= 1, key, "must be >= 1")
        for key in ("steps", "warmup_steps", "max_len", "eval_n", "eval_batch_size", "save_every",
                    "samples_per_eval", "threads", "weight_decay", "grad_clip"):  # fmt: skip
            need(getattr(self, key) >= 0, key, "must be >= 0")
        need(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
        need(self.lr > 0, "lr", "must be > 0")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        need(0 <= self.adam_beta1 < 1, "adam_beta1", "must be in [0, 1)")
        need(0 <= self.adam_beta2 < 1, "adam_beta2", "must be in [0, 1)")
        need(self.logprob_backend in ("auto", "triton", "torch"), "logprob_backend",
             "must be auto, triton or torch")  # fmt: skip
        need(self.teacher != "", "teacher", "must name a checkpoint or run folder")
        need(0 <= self.beta <= 1, "beta", "must be in [0, 1]")
        need(0 <= self.lmbda <= 1, "lmbda", "must be in [0, 1]")
        need(math.isfinite(self.temperature) and self.temperature > 0, "temperature",
             "must be a positive number")  # fmt: skip
        if self.teacher is None:
            for key, plain in (("beta", 0.0), ("lmbda", 0.0), ("temperature", 1.0)):
                need(getattr(self, key) == plain, key, "needs --teacher (distillation)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> SFTConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(unknown[0], "is not a setting of train_sft.py", source)
        return cls(**d)
