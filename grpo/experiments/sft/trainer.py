"""The SFT loop: epochs of shuffled optimizer batches, a token-mean NLL, AdamW, evaluations.

    trainer = SFTTrainer(SFTConfig(data="sft.jsonl", out="runs/sft"))   # or resume=True
    trainer.train()

With --teacher it is token-level distillation (TRL GKDTrainer's beta, temperature, lmbda):
the same loop, with the per-token divergence from the frozen teacher's next-token
distribution in place of the NLL (grpo/experiments/sft/loss.py, completion_divergence);
with lmbda > 0, round(lmbda * batch) of each step's sequences are first re-sampled by the
student from their prompts (grpo.experiments.distill_loss.on_policy_rows), so the teacher
scores the student's own completions. Metrics rows then also count the tokens the student
sampled and the teacher scored.

One step: the next optimizer batch of the epoch's seeded order
(grpo/experiments/sft/data.py), cut into length-sorted micro-batches; each micro-batch's
completion NLL divided by the completion tokens of the whole batch, so the
gradient is the batch's token mean (grpo/experiments/sft/loss.py); clip; AdamW with the
R1-Zero trainer's warmup and cosine schedule (grpo.run.config.lr_at). Held-out
evaluation (greedy, the task's rules) at step 0, every `eval_every` steps and
at the end, with the same metric names as train_zero.py's.

The run folder follows train_zero.py's conventions: locked while in use;
sft_config.json; metrics.jsonl (rows {step, epoch, loss, tokens, lr,
grad_norm} and evaluation rows {step, eval_accuracy, ...}), appended and
flushed per line; samples.jsonl; checkpoints/ written atomically, in Hugging
Face layout plus the optimizer state. The step number fixes the data
position, so --resume continues exactly. SIGINT/SIGTERM: an evaluation in
progress is abandoned, an optimizer step finishes, the run checkpoints and
stops (grpo/run/stopping.py).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpo.evaluate import evaluate
from grpo.experiments.sft.config import SFTConfig
from grpo.experiments.sft.data import (
    SFTExample,
    by_length,
    collate,
    read_sft_jsonl,
    step_rows,
    steps_per_epoch,
    tokenize,
)
from grpo.experiments.sft.loss import completion_divergence, completion_nll
from grpo.run.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from grpo.run.config import lr_at
from grpo.run.context import heldout_that_fits
from grpo.run.policy import load_policy, pick_device
from grpo.run.progress import Progress
from grpo.run.report import say
from grpo.run.runfolder import JsonlWriter, RunLock, check_run_dir, remove_stale_tmp
from grpo.run.stopping import Abandon, StopNow, StopRequests
from grpo.tasks import get_task
from model.checkpoint import write_json_atomic

CONFIG_FILE = "sft_config.json"
# Settings whose change on --resume leaves the continuation equal to a straight run.
RESUME_SAFE_KEYS = {"eval_every", "eval_n", "eval_batch_size", "save_every",
                    "keep_checkpoints", "log_every", "threads", "out", "device",
                    "samples_per_eval"}  # fmt: skip


class SFTDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the message names the last good checkpoint."""


class SFTTrainer:
    def __init__(self, cfg: SFTConfig, resume: bool = False, log=say) -> None:
        self.cfg, self.log = cfg, log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.run_dir = Path(cfg.out or f"runs/sft-{datetime.now():%Y%m%d-%H%M%S}")
        check_run_dir(self.run_dir)
        self._lock = RunLock(self.run_dir) if self.run_dir.is_dir() else None
        try:
            self._setup(resume)
        except BaseException:
            self.close()
            raise

    def _setup(self, resume: bool) -> None:
        cfg, log = self.cfg, self.log
        if not resume and (self.run_dir / "metrics.jsonl").exists():
            raise FileExistsError(f"{self.run_dir} already holds a run; pass --resume to "
                                  "continue it or choose another --out")  # fmt: skip
        ckpt = latest_checkpoint(self.run_dir) if resume else None
        # before the model: a bad file costs one line (with --lmbda 1 it needs prompts only)
        rows = read_sft_jsonl(cfg.data, prompts_only=bool(cfg.teacher) and cfg.lmbda == 1.0)
        opts: dict[str, Any] = {"seed": cfg.seed, "template": cfg.template}
        if cfg.task == "jsonl":
            opts["path"] = cfg.task_path
        self.task = get_task(cfg.task, **opts)
        source = ckpt if ckpt is not None else cfg.model
        self.model, self.tok = load_policy(str(source), self.task, self.device, log, cfg.seed)
        self.teacher = self._load_teacher() if cfg.teacher else None
        self.context = self.model.config.max_position_embeddings
        max_len = min(cfg.max_len or self.context, self.context)
        self.examples, dropped = tokenize(rows, self.tok, max_len)
        if not self.examples:
            raise ValueError(f"--data {cfg.data}: all {len(rows)} examples are longer than "
                             f"{max_len} tokens (--max-len)")  # fmt: skip
        if dropped:
            log(f"data: dropped {dropped} of {len(rows)} examples longer than {max_len} tokens")
        self.per_epoch = steps_per_epoch(len(self.examples), cfg.batch_size)
        self.total_steps = cfg.steps or cfg.epochs * self.per_epoch
        if cfg.warmup_steps > self.total_steps:
            log(f"warning: warmup_steps={cfg.warmup_steps} > {self.total_steps} steps: the "
                f"learning rate never reaches lr={cfg.lr}")  # fmt: skip
        self.heldout = (heldout_that_fits(self.task, self.tok, cfg.eval_n, cfg.max_new_tokens,
                                          self.context, log) if cfg.eval_n else [])  # fmt: skip
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = RunLock(self.run_dir)
        remove_stale_tmp(self.run_dir)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
            weight_decay=cfg.weight_decay, fused=self.device.type == "cuda",
        )  # fmt: skip
        self.metrics = JsonlWriter(self.run_dir / "metrics.jsonl")
        self.samples = JsonlWriter(self.run_dir / "samples.jsonl")
        self.step, self.history = 0, []
        self._saved_step: int | None = None
        self.stops = StopRequests()
        self.stops.command = "python train_sft.py"
        if ckpt is not None:
            self._resume(ckpt)
        elif resume:
            if not (self.run_dir / CONFIG_FILE).is_file():
                raise FileNotFoundError(f"--resume: {self.run_dir} has no SFT run to resume")
            log(f"{self.run_dir} has no checkpoint yet: starting it again from step 0")
            for w in (self.metrics, self.samples):
                w.truncate_after(-1)
        self._rng = rng_state()
        write_json_atomic(self.run_dir / CONFIG_FILE, cfg.to_dict())
        self.model.train()

    def _load_teacher(self):
        """The frozen teacher; VocabularyMismatch (one line) if it scores other tokens."""
        from grpo.experiments.distill_loss import check_vocabularies

        teacher, ttok = load_policy(self.cfg.teacher, self.task, self.device, self.log,
                                    self.cfg.seed)  # fmt: skip
        check_vocabularies(self.model.config.vocab_size, teacher.config.vocab_size, self.tok,
                           ttok)  # fmt: skip
        teacher.eval().requires_grad_(False)
        return teacher

    def _sample_own(self, rows: list[int], step: int) -> tuple[dict[int, SFTExample], int]:
        """The student's own completions for round(lmbda * len(rows)) of the step's rows
        ({row: example}, the tokens it sampled); the others keep the data's completion."""
        from grpo.experiments.distill_loss import on_policy_rows
        from model import generate

        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        chosen = [r for r, own in zip(rows, on_policy_rows(len(rows), cfg.lmbda, g).tolist())
                  if own]  # fmt: skip
        if not chosen:
            return {}, 0
        prompts = [self.examples[r].prompt_ids for r in chosen]
        budget = min(cfg.max_new_tokens, self.context - max(len(p) for p in prompts))
        self.model.eval()
        try:
            with torch.no_grad():
                out = generate(self.model, prompts, max_new_tokens=budget,
                               temperature=cfg.temperature, eos_ids=self.tok.eos_ids,
                               stop_strings=["</answer>"], tokenizer=self.tok,
                               pad_id=self.tok.pad_id,
                               seed=cfg.seed * 1_000_003 + step)  # fmt: skip
        finally:
            self.model.train()
        own = {r: SFTExample(list(p), list(c)) for r, p, c in zip(chosen, prompts,
                                                                 out.completions())}  # fmt: skip
        return own, sum(len(c) for c in out.completions())

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _resume(self, ckpt: Path) -> None:
        saved = json.loads((self.run_dir / CONFIG_FILE).read_text())
        risky = sorted(k for k, v in self.cfg.to_dict().items()
                       if saved.get(k) != v and k not in RESUME_SAFE_KEYS)  # fmt: skip
        if risky:
            self.log(f"warning: resuming with changed settings {risky}; the continuation will "
                     "differ from an uninterrupted run")  # fmt: skip
        state = load_trainer_state(ckpt)
        self.opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.step, self.history = state["step"], state.get("history", [])
        self._saved_step = self.step
        for w in (self.metrics, self.samples):
            w.truncate_after(self.step)
        self.log(f"resumed from {ckpt} (step {self.step})")

    def save(self) -> Path:
        state = {"optimizer": self.opt.state_dict(), "config": self.cfg.to_dict(),
                 "history": self.history, "rng": self._rng, "kind": "sft"}  # fmt: skip
        path = save_checkpoint(self.run_dir, self.step, self.model, self.tok, state,
                               keep=self.cfg.keep_checkpoints)  # fmt: skip
        self._saved_step = self.step
        return path

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        step = self.step + 1
        epoch, i = divmod(step - 1, self.per_epoch)
        rows = step_rows(len(self.examples), cfg.batch_size, cfg.seed, epoch)[i]
        own, sampled = self._sample_own(rows, step) if self.teacher and cfg.lmbda else ({}, 0)
        examples = {r: own.get(r, self.examples[r]) for r in rows}
        lengths = {r: len(ex) for r, ex in examples.items()}
        # The divisor: every completion token of the step (each micro-batch's share of the mean).
        tokens = sum(len(ex.completion_ids) for ex in examples.values())
        lr = lr_at(step, cfg, self.total_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        nll = 0.0
        for part in by_length(rows, lengths, cfg.micro_batch_size):
            batch = collate([examples[r] for r in part], self.tok.pad_id, self.device)
            if self.teacher is None:
                s, _ = completion_nll(self.model, batch, cfg.logprob_backend)
            else:
                s, _ = completion_divergence(self.model, self.teacher, batch, cfg.beta,
                                             cfg.temperature, cfg.logprob_backend)  # fmt: skip
            if not torch.isfinite(s):
                self._diverged(step, f"loss is {s.item()}")
            (s / max(tokens, 1)).backward()
            nll += float(s.detach())
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if not torch.isfinite(gn):
            self._diverged(step, f"gradient norm is {gn.item()}")
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step = step
        row = {"step": step, "epoch": epoch + 1, "loss": nll / max(tokens, 1), "tokens": tokens,
               "sequences": len(rows), "lr": lr, "grad_norm": float(gn)}  # fmt: skip
        if self.teacher is not None:  # the compute of a distillation step
            row.update(sampled_tokens=sampled, on_policy_sequences=len(own),
                       teacher_tokens=tokens)  # fmt: skip
        self.metrics.write(row)
        self._rng = rng_state()
        return row

    def _diverged(self, step: int, what: str) -> None:
        self.opt.zero_grad(set_to_none=True)
        last = latest_checkpoint(self.run_dir)
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was saved"
        raise SFTDiverged(f"step {step}: {what}; training stopped with nothing saved, {where} "
                          "(try a lower --lr)")  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        progress = Progress(f"eval @ step {self.step}", len(self.heldout), self.log,
                            unit="questions")  # fmt: skip
        self.model.eval()
        try:
            with self.stops.abandonable(f"the evaluation at step {self.step}"):
                res = evaluate(
                    self.model, self.tok, self.task, self.heldout,
                    max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size,
                    seed=cfg.seed, progress=lambda done, _n: progress.update(int(done)),
                )  # fmt: skip
        finally:
            self.model.train()
        progress.done()
        row = {"step": self.step, **res.metrics}
        self.metrics.write(row)
        for rec in res.records[: cfg.samples_per_eval]:
            self.samples.write({
                "step": self.step, "kind": "eval", "question": rec["example"]["question"],
                "completion": rec["completions"][0], **rec["scores"][0],
            })  # fmt: skip
        self.history.append(row)
        self._rng = rng_state()
        return row

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        """Run to the last step; TrainingInterrupted on SIGINT/SIGTERM (after a checkpoint)."""
        cfg, log = self.cfg, self.log
        start = time.perf_counter()
        nparams = sum(p.numel() for p in self.model.parameters())
        log(f"run folder: {self.run_dir}  |  device {self.device.type}  |  {nparams / 1e6:.2f}M "
            f"params  |  {len(self.examples)} examples, {self.total_steps} steps of "
            f"{cfg.batch_size} ({self.total_steps / self.per_epoch:.1f} epochs)  |  held-out "
            f"{len(self.heldout)}")
        try:
            with self.stops.installed():
                self._train()
        finally:
            self.close()
        log(f"done in {time.perf_counter() - start:.0f}s; final checkpoint "
            f"{latest_checkpoint(self.run_dir)}")  # fmt: skip
        return self.history[-1] if self.history else {}

    def _train(self) -> None:
        """The loop; on a signal, checkpoint the last step (grpo/run/stopping.py, as the GRPO
        trainer does) and raise TrainingInterrupted."""
        abandoned = False
        try:
            try:
                self._loop()
            except Abandon:
                abandoned = True
            if self.stops.signal is not None:
                if self.step == 0:
                    path = None
                elif self._saved_step == self.step:
                    path = latest_checkpoint(self.run_dir)
                else:
                    path = self.save()
                raise self.stops.stopped_after(self.run_dir, self.step, path, abandoned)
        except StopNow:
            last = latest_checkpoint(self.run_dir)
            raise self.stops.stopped_at_once(self.run_dir, last) from None

    def _eval_due(self, s: int) -> bool:
        return bool(self.heldout) and (s == 0 or s % self.cfg.eval_every == 0
                                       or s == self.total_steps)  # fmt: skip

    def _loop(self) -> None:
        cfg, log = self.cfg, self.log
        done = bool(self.history) and self.history[-1]["step"] == self.step
        if self._eval_due(self.step) and not done:
            log(_eval_line(self.evaluate()))
        t0 = time.perf_counter()
        first = self.step
        while self.step < self.total_steps and self.stops.signal is None:
            row = self.train_step()
            s = self.step
            if s % cfg.log_every == 0 or s == self.total_steps:
                rate = (time.perf_counter() - t0) / (s - first)
                log(f"step {s:4d}/{self.total_steps} | epoch {row['epoch']} | loss "
                    f"{row['loss']:.4f} | gn {row['grad_norm']:.2f} lr {row['lr']:.1e} | "
                    f"eta {rate * (self.total_steps - s):.0f}s")  # fmt: skip
            if self.stops.signal is not None:
                break
            if self._eval_due(s):
                log(_eval_line(self.evaluate()))
            if (cfg.save_every and s % cfg.save_every == 0) or s == self.total_steps:
                self.save()


def _eval_line(row: dict[str, Any]) -> str:
    return (f"eval @ step {row['step']}: accuracy {row['eval_accuracy']:.3f}  format "
            f"{row['eval_format_rate']:.3f}  length {row['eval_completion_len_mean']:.1f}")



__all__ = ["CONFIG_FILE", "SFTDiverged", "SFTTrainer"]
