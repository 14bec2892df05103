"""Every hyperparameter of a run, in one dataclass: the single source of truth.

`train_zero.py` turns each field into a dashed flag (`max_new_tokens` ->
`--max-new-tokens`) whose help text is the field's `help` metadata. A config
file (`--config run.json` or `.toml`) holds the same keys; flags given on the
command line override it. The resolved config is saved as
`train_config.json` in the run folder.

Every field's type and range is checked when a TrainConfig is built
(`validate`), before any model is loaded; a bad setting is a ConfigError (a
ValueError) naming the flag, or the file and its key. `config_warnings(cfg)`
lists settings that are legal but risky (the trainer logs them).

The defaults are the built-in CPU demo: a ~2M-parameter base model trained
from scratch on synthetic text, then R1-Zero on 3-4 digit addition.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- what to train
    model: str = _f("demo", "a Hugging Face checkpoint folder, a run folder, or a built-in: "
                    "demo (the chosen task's CPU demo base: demo-countdown for countdown, "
                    "else the addition base), demo-countdown, gpu-countdown (the GPU "
                    "preset's base, built on first use), demo-student, "
                    "demo-countdown-student (the addition and countdown bases at a quarter "
                    "of the size), tiny, small (random init)")
    task: str = _f("addition", "task name: addition, countdown, jsonl")
    task_path: str | None = _f(None, "for --task jsonl: the file of {question, answer} lines")
    # countdown's variant; None = the task's own default (grpo/tasks/countdown.py: CountdownTask)
    min_numbers: int | None = _f(None, "countdown: fewest numbers in a problem")
    max_numbers: int | None = _f(None, "countdown: most numbers in a problem")
    min_number: int | None = _f(None, "countdown: smallest number drawn")
    max_number: int | None = _f(None, "countdown: largest number drawn")
    min_target: int | None = _f(None, "countdown: smallest target")
    max_target: int | None = _f(None, "countdown: largest target (TinyZero's ranges: "
                                "--max-numbers 4 --max-number 99 --min-target 1 --max-target 999)")
    template: str = _f("r1zero", "prompt template: r1zero (ends with 'Assistant:') or "
                       "r1zero_think (adds a '<think>' primer)")
    format_weight: float = _f(0.1, "reward weight of the format check (0 disables it)")
    accuracy_weight: float = _f(1.0, "reward weight of the accuracy check (0 disables it)")
    readability_weight: float = _f(0.0, "reward weight of a readable trace "
                                   "(grpo/tasks/readability.py; R1's consistency reward in "
                                   "miniature; addition only)")
    out: str | None = _f(None, "run folder (default runs/<task>-<time>)")
    seed: int = _f(0, "seed for data order, sampling and init, 0 to 2**32 - 1; same seed, "
                   "same run")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto (cuda if available)")
    dtype: str = _f("auto", "compute dtype: float32, bfloat16 or auto (bf16 autocast on CUDA, "
                    "fp32 on CPU); parameters and optimizer state stay fp32. float16 is "
                    "refused (it would need loss scaling): use bfloat16")
    # --- rollout
    steps: int = _f(50, "GRPO steps (one rollout batch each)")
    prompts_per_step: int = _f(16, "questions per step (B)")
    group_size: int = _f(8, "completions sampled per question (G), at least 2")
    max_new_tokens: int = _f(128, "completion budget in tokens")
    temperature: float = _f(1.0, "sampling temperature (also applied to training log-probs)")
    # Truncation acts in the sampler only (model/generate.py); completion_logprobs
    # scores with the full softmax. Hence the warning here and in config_warnings.
    top_p: float = _f(1.0, "nucleus sampling threshold (1 = off). Below 1 rollouts come from "
                      "the truncated distribution but log-probs use the full softmax, so the "
                      "update is off-policy and uncorrected, even with --mu 1")
    top_k: int = _f(0, "top-k sampling (0 = off). Above 0 rollouts come from the truncated "
                    "distribution but log-probs use the full softmax, so the update is "
                    "off-policy and uncorrected, even with --mu 1")
    stop: str = _f("</answer>", "stop string(s), comma-separated; generation also stops at EOS")
    truncated: str = _f("zero", "completions cut at max_new_tokens: 'zero' = reward 0, "
                        "'mask' = excluded from the loss, 'keep' = scored as they are")
    # --- advantages and loss
    scale_by_std: bool = _f(True, "divide advantages by the group std (Dr. GRPO: off)")
    adv_eps: float = _f(1e-4, "epsilon added to the group std (> 0)")
    aggregation: str = _f("dapo", "loss aggregation: grpo (seq-mean), dapo (token-mean), "
                          "dr_grpo (sum / (num_seqs * max_new_tokens))")
    eps_low: float = _f(0.2, "clip ratio below at 1 - eps_low (0 <= eps_low < 1)")
    eps_high: float = _f(0.2, "clip ratio above at 1 + eps_high (DAPO clip-higher: 0.28)")
    beta: float = _f(0.0, "k3 KL coefficient to the frozen initial policy (0: no reference "
                     "model is built at all)")
    entropy_coef: float = _f(0.0, "entropy bonus coefficient (0 = off)")
    # --- optimisation
    mu: int = _f(1, "inner epochs over each rollout batch (clipping only acts when > 1 or "
                 "with several mini-batches)")
    mini_batches: int = _f(1, "optimizer steps per epoch (the rollout batch is split)")
    micro_batch_size: int = _f(64, "at most this many sequences per forward/backward (gradient "
                               "accumulation; grpo/microbatch.py plans the cuts)")
    lr: float = _f(1e-4, "peak learning rate (AdamW); the demo's tiny model takes 1e-4, "
                   "billion-parameter checkpoints want ~1e-6")
    min_lr_ratio: float = _f(0.1, "cosine schedule ends at lr * min_lr_ratio (0 to 1)")
    warmup_steps: int = _f(10, "linear warmup steps (0 = no warmup)")
    weight_decay: float = _f(0.0, "AdamW weight decay (0 = off)")
    adam_beta1: float = _f(0.9, "AdamW beta1 (0 <= beta1 < 1)")
    adam_beta2: float = _f(0.99, "AdamW beta2 (0 <= beta2 < 1)")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this (0 = off)")
    grad_checkpointing: bool = _f(False, "recompute each block in backward to save memory")
    fsdp: bool = _f(False, "torchrun: shard gradients and AdamW state over the processes "
                    "(FSDP2); the weights are gathered whole for each phase")
    share_prompt: bool = _f(
        True, "update: run each group's prompt once and its G completions on top (off: the "
        "unshared oracle, every row runs its own prompt)"
    )
    logprob_backend: str = _f("auto", "log-prob/entropy backend: auto, triton, torch")
    # --- evaluation, logging, checkpoints
    eval_every: int = _f(5, "held-out evaluation every N steps (and at step 0 and the end)")
    eval_n: int = _f(500, "held-out problems per evaluation")
    eval_temperature: float = _f(0.0, "evaluation sampling temperature (0 = greedy)")
    eval_batch_size: int = _f(512, "prompts per generation batch during evaluation")
    samples_per_eval: int = _f(4, "held-out completions written to samples.jsonl per evaluation "
                               "(plus one training group at step 1 and every eval step); "
                               "0 = none")
    save_every: int = _f(25, "checkpoint every N steps (and at the end); 0 = only at the end")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")
    log_every: int = _f(1, "console progress line every N steps")
    plot: bool = _f(True, "write plots at the end (needs matplotlib: pip install .[plot])")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)")

    def __post_init__(self) -> None:
        self.validate()
        # `lr = 1` in a file is a fine float; store it as one, so train_config.json is uniform.
        for f in fields(self):
            if f.type == "float":
                setattr(self, f.name, float(getattr(self, f.name)))

    def validate(self) -> None:
        """Check every field's type, then its range; ConfigError names the first bad field.

        Runs before anything expensive (a model load, a run folder), so a typo
        costs one line on stderr and nothing else. Whether CUDA is present is
        checked later, by the trainer.
        """
        for f in fields(self):
            problem = _type_problem(str(f.type), getattr(self, f.name))
            if problem:
                raise ConfigError(f.name, problem)

        def need(cond: bool, key: str, rule: str, show: bool = True) -> None:
            if not cond:
                raise ConfigError(key, f"{rule}, got {getattr(self, key)!r}" if show else rule)

        # Names checked against the registries (cheap: no model, no data is built).
        from grpo.tasks import available_tasks
        from grpo.tasks.templates import TEMPLATES

        need(self.model != "", "model", "must name a checkpoint folder, run folder or built-in")
        need(self.task in available_tasks(), "task",
             f"must be one of {', '.join(available_tasks())}")  # fmt: skip
        need(self.task != "jsonl" or bool(self.task_path), "task_path",
             "must be given with --task jsonl (the file of {question, answer} lines)")  # fmt: skip
        options = task_options(self)
        if options and self.task == "countdown":
            from grpo.tasks import get_task

            try:  # the task checks its own ranges (cheap: nothing is generated)
                get_task("countdown", **options)
            except ValueError as e:
                key = next(iter(options))
                raise ConfigError(key, f"(countdown variant {options}): {e}") from None
        need(self.template in TEMPLATES, "template",
             f"must be one of {', '.join(sorted(TEMPLATES))}")  # fmt: skip
        need(self.format_weight >= 0, "format_weight", "must be >= 0")
        need(self.accuracy_weight >= 0, "accuracy_weight", "must be >= 0")
        need(self.readability_weight >= 0, "readability_weight", "must be >= 0")
        need(self.readability_weight == 0 or self.task == "addition", "readability_weight",
             "must be 0 unless --task addition (the only task with a readability "
             "measure)")  # fmt: skip
        need(self.format_weight > 0 or self.accuracy_weight > 0, "accuracy_weight",
             "must be > 0 when format_weight is 0 (with both 0 every reward is 0 and nothing "
             "trains)")  # fmt: skip
        need(0 <= self.seed < 2**32, "seed", f"must be in {SEED_RANGE}")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device",
             "must be auto, cpu, cuda or cuda:N")  # fmt: skip
        need(self.dtype != "float16", "dtype",
             "float16 is not supported: fp16 without loss scaling corrupts small gradients; "
             "use bfloat16 (or auto)", show=False)  # fmt: skip
        need(self.dtype in ("auto", "float32", "bfloat16"), "dtype",
             "must be auto, float32 or bfloat16")  # fmt: skip
        # rollout
        need(self.steps >= 1, "steps", "must be >= 1")
        need(self.prompts_per_step >= 1, "prompts_per_step", "must be >= 1")
        need(self.group_size >= 2, "group_size",
             "must be >= 2 (GRPO compares samples within a group)")  # fmt: skip
        need(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        need(self.temperature > 0, "temperature", "must be > 0 for training rollouts")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1] (1 = off)")
        need(self.top_k >= 0, "top_k", "must be >= 0 (0 = off)")
        need(self.truncated in ("zero", "mask", "keep"), "truncated", "must be zero, mask or keep")
        # advantages and loss
        need(self.adv_eps > 0, "adv_eps", "must be > 0")
        need(self.aggregation in ("grpo", "dapo", "dr_grpo"), "aggregation",
             "must be grpo, dapo or dr_grpo")  # fmt: skip
        need(0 <= self.eps_low < 1, "eps_low", "must be in [0, 1)")
        need(self.eps_high >= 0, "eps_high", "must be >= 0")
        need(self.beta >= 0, "beta", "must be >= 0 (0 = no KL term)")
        need(self.entropy_coef >= 0, "entropy_coef", "must be >= 0 (0 = off)")
        # optimisation
        need(self.mu >= 1, "mu", "must be >= 1")
        need(self.mini_batches >= 1, "mini_batches", "must be >= 1")
        rows = self.prompts_per_step * self.group_size
        need(rows % self.mini_batches == 0, "mini_batches",
             f"must divide prompts_per_step * group_size ({rows})")  # fmt: skip
        need(self.micro_batch_size >= 1, "micro_batch_size", "must be >= 1")
        need(self.lr > 0, "lr", "must be > 0")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        need(self.warmup_steps >= 0, "warmup_steps", "must be >= 0 (0 = no warmup)")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(0 <= self.adam_beta1 < 1, "adam_beta1", "must be in [0, 1)")
        need(0 <= self.adam_beta2 < 1, "adam_beta2", "must be in [0, 1)")
        need(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)")
        need(self.logprob_backend in ("auto", "triton", "torch"), "logprob_backend",
             "must be auto, triton or torch")  # fmt: skip
        # evaluation, logging, checkpoints
        need(self.eval_every >= 1, "eval_every", "must be >= 1")
        need(self.eval_n >= 1, "eval_n", "must be >= 1")
        need(self.eval_temperature >= 0, "eval_temperature", "must be >= 0 (0 = greedy)")
        need(self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1")
        need(self.samples_per_eval >= 0, "samples_per_eval", "must be >= 0 (0 = none)")
        need(self.save_every >= 0, "save_every", "must be >= 0 (0 = only at the end)")
        need(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = torch's default)")

    @property
    def stop_strings(self) -> list[str]:
        return [s for s in self.stop.split(",") if s]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], source: str | None = "config", flag_keys: Iterable[str] = ()
    ) -> TrainConfig:
        """Build from a dict of settings read from `source` (a file name, for messages).

        An error about a key in `flag_keys` names the flag (`--log-every must be
        >= 1, got 0`); one about any other key names the key and the source
        (`run.toml: steps must be an integer, got 2.5`). `source=None`: all flags.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{source or 'flags'}: unknown key(s) {', '.join(unknown)}")
        try:
            return cls(**d)
        except ConfigError as e:
            if source is None or e.key in set(flag_keys):
                raise
            raise ConfigError(e.key, e.problem, source) from None


SEED_RANGE = "0 .. 2**32 - 1"  # every --seed (numpy's generators take 32 bits)
MAX_THREADS = 4096  # torch overflows at 2**31; far more than any machine has


def check_seed_and_threads(seed: int, threads: int) -> None:
    """ValueError naming the flag unless --seed is in SEED_RANGE and --threads in
    0 .. MAX_THREADS: for the commands with plain argparse flags (rejection, verifiers);
    TrainConfig and SFTConfig check their own fields."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be in {SEED_RANGE}, got {seed}")
    if not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"--threads must be in 0 .. {MAX_THREADS} (0 = torch's default), "
                         f"got {threads}")  # fmt: skip


class ConfigError(ValueError):
    """A setting with the wrong type or out of range; `key` is the field's name."""

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key, self.problem, self.source = key, problem, source
        name = f"{source}: {key}" if source else "--" + key.replace("_", "-")
        super().__init__(f"{name} {problem}")


def _type_problem(kind: str, value: Any) -> str | None:
    """What is wrong with `value` for a field annotated `kind` ("int", "str | None", ...)."""
    if kind.endswith(" | None") and value is None:
        return None
    kind = kind.removesuffix(" | None") if kind == "int | None" else kind
    hint = ""
    if isinstance(value, str) and kind != "str":
        hint = f" (a string: write {value} without quotes)"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, got {value!r}{hint}"
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}{hint}"
        return None if math.isfinite(value) else f"must be finite, got {value!r}"
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}{hint}"
    if kind in ("str", "str | None"):
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    raise TypeError(f"no type rule for annotation {kind!r}")  # a new field type needs one


COUNTDOWN_OPTIONS = ("min_numbers", "max_numbers", "min_number", "max_number", "min_target",
                     "max_target")  # fmt: skip


# Each task's demo: the settings `python train_zero.py --task TASK` runs with,
# where neither a flag nor a config file sets them (`config_from_args`; a
# TrainConfig built in code gets the dataclass defaults). Fields not listed
# keep TrainConfig's defaults (the addition demo's). The countdown demo starts
# from the shipped "demo-countdown" base on the task's default variant
# (grpo/tasks/countdown.py); what it does: docs/countdown.md.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "countdown": {
        "steps": 30, "prompts_per_step": 16, "group_size": 8, "max_new_tokens": 480,
        "lr": 6e-5, "warmup_steps": 3, "eval_every": 10, "eval_n": 500, "save_every": 10,
        "micro_batch_size": 32,
    },
}  # fmt: skip


def task_defaults(task: str) -> dict[str, Any]:
    """The demo settings of `task` that differ from TrainConfig's defaults ({} if none)."""
    return dict(TASK_DEFAULTS.get(task, {}))


def task_options(cfg: TrainConfig) -> dict[str, int]:
    """The task variant options the config sets (countdown's ranges), for get_task."""
    return {k: getattr(cfg, k) for k in COUNTDOWN_OPTIONS if getattr(cfg, k) is not None}


def config_warnings(cfg: TrainConfig) -> list[str]:
    """Legal but risky settings, one human-readable line each (the trainer logs them)."""
    out = []
    truncation = [s for s, on in ((f"top_p={cfg.top_p}", cfg.top_p < 1),
                                  (f"top_k={cfg.top_k}", cfg.top_k > 0)) if on]  # fmt: skip
    if truncation:
        out.append(
            f"{' and '.join(truncation)}: rollouts are sampled from a truncated distribution "
            "but log-probs use the full softmax, so the update is off-policy and uncorrected "
            "(even with mu = 1); use top_p = 1 and top_k = 0 for on-policy GRPO"
        )
    if cfg.aggregation == "dr_grpo" and cfg.scale_by_std:
        out.append(
            "aggregation=dr_grpo with scale_by_std=true: Dr. GRPO also drops the division by "
            "the group std (--no-scale-by-std); this combination is neither GRPO nor Dr. GRPO"
        )
    if task_options(cfg) and cfg.task != "countdown":
        out.append(f"{', '.join(task_options(cfg))} ignored: only --task countdown reads them")
    if cfg.task_path and cfg.task != "jsonl":
        out.append(f"task_path={cfg.task_path!r} is ignored: it is only read by --task jsonl")
    if cfg.warmup_steps > cfg.steps:
        out.append(
            f"warmup_steps={cfg.warmup_steps} > steps={cfg.steps}: the learning rate never "
            f"reaches lr={cfg.lr}"
        )
    return out


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
    """One dashed flag per field; defaults are SUPPRESSed so only given flags are seen.

    A bool field `plot` gives `--plot` (true), `--plot false` / `--plot true`
    and `--no-plot`.
    """
    parsers = {"int": int, "float": float}
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help = f.metadata["help"]
        if "(default" not in help and f.default is not None:
            shown = str(f.default).lower() if isinstance(f.default, bool) else f.default
            help += f" (default: {shown})"
        # Annotations are strings here ("int", "str | None"): the first word names the type.
        kind = str(f.type).split(" ")[0]
        if kind == "bool":
            ap.add_argument(flag, type=_bool, nargs="?", const=True, default=argparse.SUPPRESS,
                            metavar="BOOL", help=help)  # fmt: skip
            ap.add_argument("--no-" + flag[2:], dest=f.name, action="store_false",
                            default=argparse.SUPPRESS, help=f"same as {flag} false")  # fmt: skip
        else:
            ap.add_argument(flag, type=parsers.get(kind, str), default=argparse.SUPPRESS,
                            metavar=f.name.upper(), help=help)  # fmt: skip


def given_flags(ns: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set on the command line (nothing is validated yet)."""
    return {f.name: getattr(ns, f.name) for f in fields(TrainConfig) if hasattr(ns, f.name)}


def config_from_args(ns: argparse.Namespace, file: str | None = None) -> tuple[TrainConfig, dict]:
    """Defaults < the task's demo defaults < config file < flags.

    Returns the config and the keys set on the command line. ValueError (a
    ConfigError for a bad setting) names the flag, or the file and its key.
    """
    given = given_flags(ns)
    merged: dict[str, Any] = {}
    if file:
        merged.update(read_config_file(file))
    merged.update(given)
    task = merged.get("task", TrainConfig.task)
    merged = {**task_defaults(task if isinstance(task, str) else ""), **merged}
    return TrainConfig.from_dict(merged, source=file or None, flag_keys=given), given


def lr_at(step: int, cfg: TrainConfig, schedule_steps: int) -> float:
    """Linear warmup to cfg.lr, then cosine decay over `schedule_steps` to the floor (step >= 1).

    `schedule_steps` is the run's original length: a run extended past it on
    resume continues at the floor, cfg.lr * cfg.min_lr_ratio.
    """
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    span = max(1, schedule_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
