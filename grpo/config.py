"""Every hyperparameter of a run, in one dataclass: the single source of truth.

`train_zero.py` turns each field into a dashed flag (`max_new_tokens` ->
`--max-new-tokens`) whose help text is the field's `help` metadata. A config
file (`--config run.json` or `.toml`) holds the same keys; flags given on the
command line override it. The resolved config is saved as
`train_config.json` in the run folder.

The defaults are the built-in CPU demo: a ~2M-parameter base model trained
from scratch on synthetic text, then R1-Zero on 3-4 digit addition.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- what to train
    model: str = _f("demo", "a Hugging Face checkpoint folder, a run folder, or a built-in: "
                    "demo (the CPU demo's base model), demo-countdown (the GPU preset's base, "
                    "built on first use), tiny, small (random init)")
    task: str = _f("addition", "task name: addition, countdown, jsonl")
    task_path: str | None = _f(None, "for --task jsonl: the file of {question, answer} lines")
    template: str = _f("r1zero", "prompt template: r1zero (ends with 'Assistant:') or "
                       "r1zero_think (adds a '<think>' primer)")
    format_weight: float = _f(0.1, "reward weight of the format check (0 disables it)")
    accuracy_weight: float = _f(1.0, "reward weight of the accuracy check")
    out: str | None = _f(None, "run folder (default runs/<task>-<time>)")
    seed: int = _f(0, "seed for data order, sampling and init; same seed, same run")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto (cuda if available)")
    dtype: str = _f("auto", "compute dtype: float32, bfloat16 or auto (bf16 autocast on CUDA, "
                    "fp32 on CPU); parameters and optimizer state stay fp32")
    # --- rollout
    steps: int = _f(50, "GRPO steps (one rollout batch each)")
    prompts_per_step: int = _f(16, "questions per step (B)")
    group_size: int = _f(8, "completions sampled per question (G)")
    max_new_tokens: int = _f(128, "completion budget in tokens")
    temperature: float = _f(1.0, "sampling temperature (also applied to training log-probs)")
    top_p: float = _f(1.0, "nucleus sampling threshold (1 = off)")
    top_k: int = _f(0, "top-k sampling (0 = off)")
    stop: str = _f("</answer>", "stop string(s), comma-separated; generation also stops at EOS")
    truncated: str = _f("zero", "completions cut at max_new_tokens: 'zero' = reward 0, "
                        "'mask' = excluded from the loss, 'keep' = scored as they are")
    # --- advantages and loss
    scale_by_std: bool = _f(True, "divide advantages by the group std (Dr. GRPO: off)")
    adv_eps: float = _f(1e-4, "epsilon added to the group std")
    aggregation: str = _f("dapo", "loss aggregation: grpo (seq-mean), dapo (token-mean), "
                          "dr_grpo (sum / (num_seqs * max_new_tokens))")
    eps_low: float = _f(0.2, "clip ratio below at 1 - eps_low")
    eps_high: float = _f(0.2, "clip ratio above at 1 + eps_high (DAPO clip-higher: 0.28)")
    beta: float = _f(0.0, "k3 KL coefficient to the frozen initial policy (0: no reference "
                     "model is built at all)")
    entropy_coef: float = _f(0.0, "entropy bonus coefficient")
    # --- optimisation
    mu: int = _f(1, "inner epochs over each rollout batch (clipping only acts when > 1 or "
                 "with several mini-batches)")
    mini_batches: int = _f(1, "optimizer steps per epoch (the rollout batch is split)")
    micro_batch_size: int = _f(64, "sequences per forward/backward (gradient accumulation)")
    lr: float = _f(1e-4, "peak learning rate (AdamW); the demo's tiny model takes 1e-4, "
                   "billion-parameter checkpoints want ~1e-6")
    min_lr_ratio: float = _f(0.1, "cosine schedule ends at lr * min_lr_ratio")
    warmup_steps: int = _f(10, "linear warmup steps")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.99, "AdamW beta2")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0 = off)")
    grad_checkpointing: bool = _f(False, "recompute each block in backward to save memory")
    logprob_backend: str = _f("auto", "log-prob/entropy backend: auto, triton, torch")
    # --- evaluation, logging, checkpoints
    eval_every: int = _f(5, "held-out evaluation every N steps (and at step 0 and the end)")
    eval_n: int = _f(500, "held-out problems per evaluation")
    eval_temperature: float = _f(0.0, "evaluation sampling temperature (0 = greedy)")
    eval_batch_size: int = _f(512, "prompts per generation batch during evaluation")
    samples_per_eval: int = _f(4, "held-out completions written to samples.jsonl per evaluation "
                               "(plus one training group at step 1 and every eval step)")
    save_every: int = _f(25, "checkpoint every N steps (and at the end); 0 = only at the end")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")
    log_every: int = _f(1, "console progress line every N steps")
    plot: bool = _f(True, "write plots at the end (needs matplotlib: pip install .[plot])")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        need(self.prompts_per_step >= 1, "--prompts-per-step must be >= 1")
        need(self.group_size >= 2, f"--group-size must be >= 2 (GRPO compares samples within "
             f"a group), got {self.group_size}")  # fmt: skip
        need(self.max_new_tokens >= 1, "--max-new-tokens must be >= 1")
        need(self.temperature > 0, "--temperature must be > 0 for training rollouts")
        need(0 < self.top_p <= 1, "--top-p must be in (0, 1]")
        need(self.top_k >= 0, "--top-k must be >= 0")
        need(self.truncated in ("zero", "mask", "keep"), "--truncated must be zero, mask or keep")
        need(self.aggregation in ("grpo", "dapo", "dr_grpo"),
             f"--aggregation must be grpo, dapo or dr_grpo, got {self.aggregation!r}")  # fmt: skip
        need(self.mu >= 1 and self.mini_batches >= 1, "--mu and --mini-batches must be >= 1")
        rows = self.prompts_per_step * self.group_size
        need(rows % self.mini_batches == 0,
             f"prompts_per_step * group_size ({rows}) must divide into --mini-batches "
             f"({self.mini_batches})")  # fmt: skip
        need(self.micro_batch_size >= 1, "--micro-batch-size must be >= 1")
        need(self.lr > 0, "--lr must be > 0")
        need(self.eval_every >= 1 and self.eval_n >= 1, "--eval-every and --eval-n must be >= 1")
        need(self.save_every >= 0, "--save-every must be >= 0")
        need(self.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1")
        need(self.dtype in ("auto", "float32", "bfloat16", "float16"),
             "--dtype must be auto, float32, bfloat16 or float16")  # fmt: skip
        need(self.logprob_backend in ("auto", "triton", "torch"),
             "--logprob-backend must be auto, triton or torch")  # fmt: skip
        need(self.task != "jsonl" or bool(self.task_path), "--task jsonl needs --task-path FILE")

    @property
    def stop_strings(self) -> list[str]:
        return [s for s in self.stop.split(",") if s]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}")
        return cls(**d)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Keys of a JSON or TOML config file (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        if sys.version_info < (3, 11):
            raise ValueError(f"{path}: TOML configs need Python 3.11+; use JSON")
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: invalid TOML: {e}") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table/object of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _bool(s: str) -> bool:
    v = s.lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def add_config_flags(ap: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """One dashed flag per field; defaults are SUPPRESSed so only given flags are seen."""
    parsers = {"int": int, "float": float, "bool": _bool}
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        # Annotations are strings here ("int", "str | None"): the first word names the type.
        kind = parsers.get(str(f.type).split(" ")[0], str)
        ap.add_argument(
            flag, type=kind, default=argparse.SUPPRESS, metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {f.default})",
        )  # fmt: skip


def config_from_args(ns: argparse.Namespace, file: str | None = None) -> tuple[TrainConfig, dict]:
    """Defaults < config file < flags. Returns the config and the keys set on the command line."""
    given = {f.name: getattr(ns, f.name) for f in fields(TrainConfig) if hasattr(ns, f.name)}
    merged: dict[str, Any] = {}
    if file:
        merged.update(read_config_file(file))
    merged.update(given)
    return TrainConfig.from_dict(merged, source=file or "flags"), given
