"""The R1-Zero training loop: rollout -> rewards -> advantages -> GRPO update, repeated.

    trainer = Trainer(TrainConfig(steps=100))     # or Trainer(cfg, resume=True)
    trainer.train()

One step (R1ZERO.md section 2):
1. take the next B questions of the task's train stream (the data position is
   an integer, so resuming is exact);
2. sample G completions per question with the current policy (`rollout`) and
   score them with the task's rule-based rewards;
3. group-normalised advantages, one scalar per completion;
4. log-probs under pi_old (only when mu > 1 or several mini-batches: otherwise
   pi_old == pi_theta and the ratio is exactly 1) and under the frozen
   reference (only when beta > 0; with beta = 0 no reference model exists);
5. mu epochs over shuffled mini-batches, each an AdamW step accumulated over
   micro-batches; the loss weights are computed once per mini-batch, so the
   token-mean divides by the token count of the whole mini-batch
   (`grpo.loss.token_weights`);
6. log one JSON line to metrics.jsonl; evaluate on held-out questions every
   `eval_every` steps; checkpoint every `save_every` steps.

Outputs in the run folder: train_config.json, metrics.jsonl (deterministic:
same seed, same file), timings.jsonl (wall-clock seconds, which vary),
samples.jsonl (completions at each evaluation), checkpoints/, plots/.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpo.advantages import group_advantages
from grpo.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    resolve_model_path,
    save_checkpoint,
    set_rng_state,
)
from grpo.config import TrainConfig
from grpo.evaluate import evaluate
from grpo.loss import LossConfig, finalize_metrics, grpo_loss, token_weights
from grpo.rollout import Batch, completion_logprobs, pack, rollout
from grpo.tasks import get_task
from model import PRESETS, Tokenizer, Transformer, load_pretrained, train_bpe_tokenizer
from model.checkpoint import load_state_dict, write_json_atomic

# Keys whose change on --resume would make the continuation differ from a straight run.
RESUME_SAFE_KEYS = {
    "steps", "eval_every", "eval_n", "eval_batch_size", "save_every", "keep_checkpoints",
    "log_every", "plot", "threads", "out", "device", "samples_per_eval",
}  # fmt: skip


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good state was checkpointed."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio (step >= 1)."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return dev


def task_from_config(cfg: TrainConfig):
    opts: dict[str, Any] = dict(
        seed=cfg.seed, template=cfg.template, format_weight=cfg.format_weight,
        accuracy_weight=cfg.accuracy_weight,
    )  # fmt: skip
    if cfg.task == "jsonl":
        opts["path"] = cfg.task_path
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


def load_policy(cfg: TrainConfig, task, device: torch.device, log=print):
    """(model fp32 on device, tokenizer) for cfg.model."""
    if cfg.model in ("demo", "demo-countdown"):
        from grpo.demo import ensure_base

        path = ensure_base(cfg.model, log=log)
    elif cfg.model in PRESETS:
        mcfg = PRESETS[cfg.model]
        tok = task_tokenizer(task, mcfg.vocab_size)
        mcfg = mcfg.with_(vocab_size=tok.vocab_size, eos_token_id=tok.eos_id)
        model = Transformer(mcfg).init_weights(seed=cfg.seed).to(device)
        return model, tok
    else:
        path = resolve_model_path(cfg.model)
    model = load_pretrained(path, device=device, dtype=torch.float32)
    return model, Tokenizer.from_dir(path)


class JsonlWriter:
    """Append-only JSON lines, flushed and fsynced per line: a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after `step` (written after the checkpoint we resume from)."""
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by the kill: it is after the checkpoint
                continue
            if row.get("step", 0) <= step:
                keep.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, log=print) -> None:
        self.cfg, self.log = cfg, log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.run_dir = Path(cfg.out or f"runs/{cfg.task}-{datetime.now():%Y%m%d-%H%M%S}")
        if not resume and (self.run_dir / "metrics.jsonl").exists():
            raise FileExistsError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.task = task_from_config(cfg)
        self.heldout = self.task.heldout(cfg.eval_n)
        self.model, self.tok = load_policy(cfg, self.task, self.device, log)
        self.model.train()
        self.model.gradient_checkpointing = cfg.grad_checkpointing
        # The reference is the initial policy, frozen. beta == 0: none is built.
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False) if cfg.beta > 0 else None
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
            weight_decay=cfg.weight_decay, fused=self.device.type == "cuda",
        )  # fmt: skip
        self.loss_cfg = LossConfig(
            aggregation=cfg.aggregation, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            beta=cfg.beta, entropy_coef=cfg.entropy_coef, max_new_tokens=cfg.max_new_tokens,
        )  # fmt: skip
        self.metrics = JsonlWriter(self.run_dir / "metrics.jsonl")
        self.timings = JsonlWriter(self.run_dir / "timings.jsonl")
        self.samples = JsonlWriter(self.run_dir / "samples.jsonl")
        self.step = 0
        self.data_pos = 0
        self.history: list[dict[str, Any]] = []
        if resume:
            self._resume()
        write_json_atomic(self.run_dir / "train_config.json", cfg.to_dict())

    # ------------------------------------------------------------------ precision
    def autocast(self):
        want = self.cfg.dtype
        if want == "auto":
            want = "bfloat16" if self.device.type == "cuda" else "float32"
        if want == "float32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=getattr(torch, want))

    # ------------------------------------------------------------------ resume / save
    def _resume(self) -> None:
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: {self.run_dir} has no checkpoint to resume from")
        saved = json.loads((self.run_dir / "train_config.json").read_text())
        changed = {k for k, v in self.cfg.to_dict().items() if saved.get(k) != v}
        risky = sorted(changed - RESUME_SAFE_KEYS)
        if risky:
            self.log(f"warning: resuming with changed settings {risky}; the continuation will "
                     "differ from an uninterrupted run")  # fmt: skip
        state = load_trainer_state(ckpt)
        sd = load_state_dict(self.model, ckpt, self.device, torch.float32)
        self.model.load_state_dict(sd, strict=False)
        self.tok = Tokenizer.from_dir(ckpt)  # the run's own tokenizer, whatever built it
        self.opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.step, self.data_pos = state["step"], state["data_pos"]
        self.history = state.get("history", [])
        for w in (self.metrics, self.timings, self.samples):
            w.truncate_after(self.step)
        self.log(f"resumed from {ckpt} (step {self.step})")

    def save(self) -> Path:
        state = {
            "optimizer": self.opt.state_dict(), "data_pos": self.data_pos,
            "config": self.cfg.to_dict(), "history": self.history,
        }  # fmt: skip
        return save_checkpoint(self.run_dir, self.step, self.model, self.tok, state,
                               keep=self.cfg.keep_checkpoints)  # fmt: skip

    # ------------------------------------------------------------------ one GRPO step
    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        step = self.step + 1
        t0 = time.perf_counter()
        examples = [self.task.train_example(self.data_pos + i) for i in range(cfg.prompts_per_step)]
        self.model.eval()
        with self.autocast():
            ro = rollout(
                self.model, self.tok, self.task, examples, group_size=cfg.group_size,
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                top_p=cfg.top_p, top_k=cfg.top_k, stop_strings=cfg.stop_strings,
                truncated=cfg.truncated, seed=cfg.seed * 1_000_003 + step,
            )  # fmt: skip
        self.model.train()
        t_rollout = time.perf_counter() - t0
        adv, adv_stats = group_advantages(
            ro.rewards, cfg.group_size, scale_by_std=cfg.scale_by_std, eps=cfg.adv_eps
        )
        batch = pack(ro, self.tok.pad_id, self.device, cfg.truncated)
        adv = adv.to(self.device)
        t1 = time.perf_counter()
        upd = self._update(batch, adv, step)
        t_update = time.perf_counter() - t1

        lengths = [len(c) for c in ro.completion_ids]
        n = len(lengths)
        rewards = ro.rewards.tolist()
        mean_r = sum(rewards) / n
        row = {
            "step": step,
            "reward": mean_r,
            "reward_std": (sum((r - mean_r) ** 2 for r in rewards) / max(1, n - 1)) ** 0.5,
            "accuracy": sum(s["accuracy"] for s in ro.scores) / n,
            "format_rate": sum(s["format"] for s in ro.scores) / n,
            "completion_len_mean": sum(lengths) / n,
            "completion_len_min": min(lengths),
            "completion_len_max": max(lengths),
            "truncated_frac": sum(ro.truncated) / n,
            "zero_variance_frac": adv_stats["zero_variance_frac"],
            "adv_abs_mean": adv_stats["adv_abs_mean"],
            **upd,
            "lr": lr_at(step, cfg),
            "tokens_generated": sum(lengths),
            "data_pos": self.data_pos + cfg.prompts_per_step,
        }
        self.step, self.data_pos = step, self.data_pos + cfg.prompts_per_step
        self.metrics.write(row)
        if step % cfg.eval_every == 0 or step == 1:
            # The first question's whole group: how the sampled modes shift over training.
            for text, s, reason in zip(ro.texts[: cfg.group_size], ro.scores, ro.finish_reasons):
                self.samples.write({
                    "step": step, "kind": "train", "question": examples[0]["question"],
                    "completion": text, "finish": reason, **s,
                })  # fmt: skip
        timing = {"step": step, "rollout_s": t_rollout, "update_s": t_update,
                  "tokens_per_s": sum(lengths) / max(t_rollout, 1e-9)}  # fmt: skip
        self.timings.write(timing)
        return row | {"_timing": timing}

    def _logprobs(self, model: Transformer, batch: Batch) -> torch.Tensor:
        """Per-token log-probs (N, Tc) of the whole batch, no graph (pi_old or pi_ref)."""
        N = batch.input_ids.shape[0]
        out = []
        with torch.no_grad(), self.autocast():
            for r0 in range(0, N, self.cfg.micro_batch_size):
                rows = slice(r0, r0 + self.cfg.micro_batch_size)
                lp, _ = completion_logprobs(
                    model, batch, rows, self.cfg.temperature, self.cfg.logprob_backend
                )
                out.append(lp)
        return torch.cat(out)

    def _update(self, batch: Batch, adv: torch.Tensor, step: int) -> dict[str, float]:
        cfg = self.cfg
        N = batch.input_ids.shape[0]
        mask = batch.completion_mask
        lr = lr_at(step, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # pi_old differs from pi_theta only after the first optimizer step on this batch.
        several_updates = cfg.mu > 1 or cfg.mini_batches > 1
        old_logp = self._logprobs(self.model, batch) if several_updates else None
        ref_logp = self._logprobs(self.ref, batch) if self.ref is not None else None
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        sums: dict[str, torch.Tensor] = {}
        grad_norms = []
        lengths = mask.sum(1)
        for _epoch in range(cfg.mu):
            perm = torch.randperm(N, generator=g).to(self.device)
            for mb in perm.chunk(cfg.mini_batches):
                # Similar lengths in a micro-batch waste less compute on padding.
                mb = mb[torch.argsort(lengths[mb], stable=True)]
                weights = token_weights(mask[mb], cfg.aggregation, cfg.max_new_tokens)
                for j0 in range(0, len(mb), cfg.micro_batch_size):
                    rows = mb[j0 : j0 + cfg.micro_batch_size]
                    w = weights[j0 : j0 + cfg.micro_batch_size]
                    with self.autocast():
                        logp, ent = completion_logprobs(
                            self.model, batch, rows, cfg.temperature, cfg.logprob_backend
                        )
                    loss, s = grpo_loss(
                        logp, None if old_logp is None else old_logp[rows],
                        None if ref_logp is None else ref_logp[rows], adv[rows], w,
                        mask[rows], self.loss_cfg, entropy=ent,
                    )  # fmt: skip
                    if not torch.isfinite(loss):
                        self._diverged(step, f"loss is {loss.item()}")
                    loss.backward()
                    for k, v in s.items():
                        sums[k] = sums.get(k, 0) + v
                clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                if not torch.isfinite(gn):
                    self._diverged(step, f"gradient norm is {gn.item()}")
                grad_norms.append(float(gn))
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
        m = finalize_metrics(sums)
        m.pop("tokens", None)
        if self.ref is None:
            m.pop("kl", None)  # beta = 0: there is no reference model to compare with
        m["grad_norm"] = sum(grad_norms) / len(grad_norms)
        return m

    def _diverged(self, step: int, what: str) -> None:
        self.opt.zero_grad(set_to_none=True)
        # Nothing of this step was applied: the weights are still those after step - 1.
        path = self.save()
        raise TrainingDiverged(
            f"step {step}: {what}; training stopped. Last good state saved to {path} "
            "(try a lower --lr or --grad-clip)"
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.model.eval()
        res = evaluate(
            self.model, self.tok, self.task, self.heldout, max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.eval_temperature, stop_strings=cfg.stop_strings,
            batch_size=cfg.eval_batch_size, seed=cfg.seed, autocast=self.autocast,
        )  # fmt: skip
        self.model.train()
        row = {"step": self.step, **res.metrics}
        self.metrics.write(row)
        self.timings.write({"step": self.step, "eval_s": time.perf_counter() - t0})
        for rec in res.records[: cfg.samples_per_eval]:
            self.samples.write({
                "step": self.step, "kind": "eval", "question": rec["example"]["question"],
                "completion": rec["completions"][0], **rec["scores"][0],
            })  # fmt: skip
        self.history.append(row)
        return row

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        log = self.log
        nparams = sum(p.numel() for p in self.model.parameters())
        log(f"run folder: {self.run_dir}  |  device {self.device}  |  model {cfg.model} "
            f"({nparams / 1e6:.2f}M params)  |  task {cfg.task}  |  {cfg.steps} steps of "
            f"{cfg.prompts_per_step}x{cfg.group_size}")  # fmt: skip
        start = time.perf_counter()
        if self.step == 0:
            row = self.evaluate()
            log(self._eval_line(row))
        first_step = self.step
        while self.step < cfg.steps:
            row = self.train_step()
            s = self.step
            if s % cfg.log_every == 0 or s == cfg.steps:
                done = s - first_step
                eta = (time.perf_counter() - start) / max(done, 1) * (cfg.steps - s)
                log(self._step_line(row, eta))
            if s % cfg.eval_every == 0 or s == cfg.steps:
                log(self._eval_line(self.evaluate()))
            if (cfg.save_every and s % cfg.save_every == 0) or s == cfg.steps:
                self.save()
        log(f"done in {time.perf_counter() - start:.0f}s; final checkpoint "
            f"{latest_checkpoint(self.run_dir)}")  # fmt: skip
        self._summary()
        if cfg.plot:
            self._plot()
        return self.history[-1] if self.history else {}

    def _step_line(self, r: dict[str, Any], eta: float) -> str:
        t = r["_timing"]
        return (
            f"step {r['step']:>4}/{self.cfg.steps} | reward {r['reward']:.3f} acc "
            f"{r['accuracy']:.3f} fmt {r['format_rate']:.2f} | len {r['completion_len_mean']:5.1f}"
            f" | ent {r.get('entropy', 0):.3f} kl {r.get('kl', 0):.4f} clip "
            f"{r.get('clip_frac', 0):.3f} | gn {r['grad_norm']:.2f} lr {r['lr']:.1e} | "
            f"rollout {t['rollout_s']:.1f}s update {t['update_s']:.1f}s | eta {eta:.0f}s"
        )

    @staticmethod
    def _eval_line(r: dict[str, Any]) -> str:
        return (
            f"eval @ step {r['step']}: accuracy {r['eval_accuracy']:.3f}  format "
            f"{r['eval_format_rate']:.3f}  length {r['eval_completion_len_mean']:.1f}"
        )

    def _summary(self) -> None:
        if len(self.history) < 2:
            return
        a, b = self.history[0], self.history[-1]
        self.log(f"\n{'held-out (' + str(self.cfg.eval_n) + ')':<22}{'base':>10}{'trained':>10}")
        for key, name in (("eval_accuracy", "accuracy"), ("eval_format_rate", "format rate"),
                          ("eval_completion_len_mean", "mean length")):  # fmt: skip
            self.log(f"{name:<22}{a[key]:>10.3f}{b[key]:>10.3f}")
        self.log(f"(step {a['step']} vs step {b['step']}; metrics in "
                 f"{self.run_dir / 'metrics.jsonl'})")  # fmt: skip

    def _plot(self) -> None:
        try:
            from grpo.plot import plot_runs
        except ImportError as e:  # matplotlib missing: the run itself is complete
            self.log(f"plots skipped: {e}")
            return
        try:
            paths = plot_runs([self.run_dir], self.run_dir / "plots")
        except ImportError as e:
            self.log(f"plots skipped: {e}")
            return
        self.log(f"plots: {', '.join(str(p) for p in paths)}")
