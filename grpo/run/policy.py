"""What a run trains: the device, the task, and the policy model with its tokenizer.

    device = pick_device(cfg.device)               # "auto", "cpu", "cuda:1", ...
    task = task_from_config(cfg)
    model, tok = load_policy(cfg.model, task, device, seed=cfg.seed)   # fp32, on `device`

`cfg.model` is a built-in demo base (built once and cached by `grpo.bases`),
a random-init preset (`model.PRESETS`, with a BPE tokenizer trained on the
task's own text), or a checkpoint or run folder. Used by the trainer and,
for the device, by `eval.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from grpo.run.checkpoint import resolve_model_path
from grpo.run.config import TrainConfig, task_options
from grpo.run.report import say
from grpo.tasks import get_task
from model import PRESETS, Tokenizer, Transformer, load_pretrained, train_bpe_tokenizer


def pick_device(name: str) -> torch.device:
    """auto, cpu, cuda, cuda:N (mps where available); ValueError with one line otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:  # torch.device("gpu")
        raise ValueError(f"--device {name!r}: no such device; use auto, cpu, cuda or cuda:N") \
            from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s), numbered from 0")  # fmt: skip
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple's MPS backend is not available on this "
                             "machine; use cpu")  # fmt: skip
    elif dev.type != "cpu":
        raise ValueError(f"--device {name}: {dev.type} devices are not supported; use auto, cpu, "
                         "cuda or cuda:N")  # fmt: skip
    return dev


def task_from_config(cfg: TrainConfig):
    """The task cfg.task names, with the run's seed, template and reward weights."""
    opts: dict[str, Any] = dict(
        seed=cfg.seed, template=cfg.template, format_weight=cfg.format_weight,
        accuracy_weight=cfg.accuracy_weight,
    )  # fmt: skip
    if cfg.task == "jsonl":
        opts["path"] = cfg.task_path
    if cfg.task == "countdown":
        opts.update(task_options(cfg))
    return get_task(cfg.task, **opts)


def task_tokenizer(task, vocab_size: int, n: int = 2000) -> Tokenizer:
    """A BPE tokenizer for a randomly initialised preset, trained on the task's own text."""
    texts = []
    for i in range(n):
        ex = task.train_example(i)
        texts.append(task.prompt(ex) + " <think> </think> <answer> " + str(ex.get("target", "")))
    return train_bpe_tokenizer(
        texts, vocab_size, atomic_strings=["<think>", "</think>", "<answer>", "</answer>"]
    )


def load_policy(model: str, task, device: torch.device, log=say, seed: int = 0):
    """(model fp32 on device, tokenizer) for `model`: a built-in base (the task's, for
    "demo"), a random-init preset (initialised from `seed`), or a checkpoint or run folder."""
    if model in ("demo", "demo-countdown", "gpu-countdown", "demo-student",
                 "demo-countdown-student"):  # fmt: skip
        from grpo.bases import demo_base_name, ensure_base

        path = ensure_base(demo_base_name(model, task.name), log=log)
    elif model in PRESETS:
        log(f"model: building {model} (random init) and a tokenizer on the task's text")
        mcfg = PRESETS[model]
        tok = task_tokenizer(task, mcfg.vocab_size)
        mcfg = mcfg.with_(vocab_size=tok.vocab_size, eos_token_id=tok.eos_id)
        return Transformer(mcfg).init_weights(seed=seed).to(device), tok
    else:
        path = resolve_model_path(model)
    log(f"model: loading {path}")
    return load_pretrained(path, device=device, dtype=torch.float32), Tokenizer.from_dir(path)
