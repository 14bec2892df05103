"""The R1-Zero training loop: rollout -> rewards -> advantages -> GRPO update, repeated.

    trainer = Trainer(TrainConfig(steps=100))     # or Trainer(cfg, resume=True)
    trainer.train()

One step (GRPO: Shao et al. 2024; DeepSeek-R1-Zero's recipe):
1. take the next B questions of the task's train stream (the data position is
   an integer, so resuming is exact; a question whose prompt + max_new_tokens
   exceeds the model's context is skipped, and counted);
2. sample G completions per question with the current policy (`rollout`) and
   score them with the task's rule-based rewards;
3. group-normalised advantages, one scalar per completion;
4. log-probs under pi_old (only when mu > 1 or several mini-batches: otherwise
   pi_old == pi_theta and the ratio is exactly 1) and under the frozen
   reference (only when beta > 0; with beta = 0 no reference model exists);
5. mu epochs over shuffled mini-batches, each an AdamW step accumulated over
   micro-batches (cut to waste little on padding: grpo/microbatch.py); the
   loss weights are computed once per mini-batch, so the token-mean divides by
   the token count of the whole mini-batch (`grpo.loss.token_weights`);
6. log one JSON line to metrics.jsonl; evaluate on held-out questions every
   `eval_every` steps; checkpoint every `save_every` steps.

Outputs in the run folder: train_config.json, metrics.jsonl (deterministic:
same seed, same file), timings.jsonl (wall-clock seconds, which vary, and each
phase's matmul FLOPs, see model/flops.py),
samples.jsonl (completions at each evaluation), checkpoints/, plots/.

Stopping: SIGINT (Ctrl-C) or SIGTERM (`kill`, `timeout`, a scheduler) ends
the run at a consistent point and checkpoints it: a rollout or an evaluation
in progress is abandoned (nothing of it was applied; it is redone on resume),
optimizer updates finish their step first. `train()` then raises
`TrainingInterrupted`. A second signal stops at once, without saving. The
mechanism is in grpo/run/stopping.py; the trainer decides what to save.

Data parallel (`torchrun`): every process runs this loop on the whole step;
each samples and back-propagates its share of the groups (grpo/parallel/distributed.py);
with --fsdp the gradients and AdamW state are sharded (grpo/parallel/fsdp.py).

The update itself (steps 4-5) is in grpo/update.py.

Around the loop: grpo/run/policy.py builds the device, task and model, grpo/run/context.py
checks prompt lengths against the context, grpo/run/runfolder.py locks the run folder
and writes its JSON lines, grpo/run/report.py words the console lines.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpo.advantages import group_advantages
from grpo.evaluate import evaluate, summarise
from grpo.loss import LossConfig
from grpo.parallel.distributed import Dist
from grpo.parallel.fsdp import Sharding
from grpo.rollout import Rollout, pack, rollout
from grpo.run.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from grpo.run.config import TrainConfig, lr_at
from grpo.run.context import check_train_set, draw_examples, heldout_that_fits
from grpo.run.policy import load_policy, pick_device, task_from_config
from grpo.run.progress import Progress
from grpo.run.report import eval_line, plot_run, say, start_lines, step_line, summary_lines
from grpo.run.runfolder import JsonlWriter, RunLock, check_run_dir, remove_stale_tmp
from grpo.run.stopping import Abandon, StopNow, StopRequests, TrainingInterrupted
from grpo.tasks.readability import add_readability_reward
from grpo.tasks.search_metrics import behaviour_means
from grpo.update import TrainingDiverged, Update
from model import Tokenizer
from model.checkpoint import load_state_dict, write_json_atomic
from model.flops import rollout_flops, update_flops

__all__ = ["RESUME_SAFE_KEYS", "Trainer", "TrainingDiverged", "TrainingInterrupted", "lr_at"]

# Keys whose change on --resume would make the continuation differ from a straight run.
# (`steps` is safe: the learning-rate schedule keeps the length the run started with.)
RESUME_SAFE_KEYS = {
    "steps", "eval_every", "eval_n", "eval_batch_size", "save_every", "keep_checkpoints",
    "log_every", "plot", "threads", "out", "device", "samples_per_eval", "fsdp",
}  # fmt: skip


class Trainer(Update):
    def __init__(self, cfg: TrainConfig, resume: bool = False, log=say, dist: Dist | None = None,
                 ) -> None:  # fmt: skip
        # Data parallel (grpo/parallel/distributed.py): every rank runs this; rank 0 alone writes
        # the run folder and prints.
        self.dist = dist or Dist()
        self.cfg, self.log = cfg, log if self.dist.main else (lambda *a, **k: None)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        if self.dist.active and self.device.type == "cuda":  # one device per rank
            self.device = torch.device("cuda", self.dist.local_rank)
        self.run_dir = Path(cfg.out or f"runs/{cfg.task}-{datetime.now():%Y%m%d-%H%M%S}")
        if self.dist.active and not cfg.out:
            raise ValueError("torchrun: give --out (every rank must write the same run folder)")
        if self.dist.world > cfg.prompts_per_step:
            raise ValueError(f"{self.dist.world} processes need --prompts-per-step >= "
                             f"{self.dist.world} (each samples whole groups)")  # fmt: skip
        check_run_dir(self.run_dir)
        # An existing folder is locked at once: a second writer is refused before any work.
        main = self.dist.main
        self._lock = RunLock(self.run_dir) if main and self.run_dir.is_dir() else None
        try:
            self._setup(resume)
        except BaseException:
            self.close()
            raise

    def _setup(self, resume: bool) -> None:
        cfg, log = self.cfg, self.log
        if not resume and (self.run_dir / "metrics.jsonl").exists():
            raise FileExistsError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        ckpt = latest_checkpoint(self.run_dir) if resume else None
        started = any((self.run_dir / f).is_file() for f in ("train_config.json", "metrics.jsonl"))
        if resume and ckpt is None and not started:
            raise FileNotFoundError(f"--resume: {self.run_dir} has no checkpoint to resume from")
        torch.manual_seed(cfg.seed)
        self.task = task_from_config(cfg)
        self.model, self.tok = load_policy(cfg.model, self.task, self.device, log, cfg.seed)
        if ckpt is not None:
            self.tok = Tokenizer.from_dir(ckpt)  # the run's own tokenizer, whatever built it
        self.context = self.model.config.max_position_embeddings
        self.heldout = heldout_that_fits(
            self.task, self.tok, cfg.eval_n, cfg.max_new_tokens, self.context, log
        )
        check_train_set(
            self.task, self.tok, cfg.prompts_per_step, cfg.max_new_tokens, self.context, log
        )
        # Everything is validated (on every rank): only now does the run folder appear.
        self.dist.barrier()
        if self.dist.main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(f"--out {self.run_dir}: cannot create it: {e.strerror}") from None
            if self._lock is None:
                self._lock = RunLock(self.run_dir)
            remove_stale_tmp(self.run_dir)  # no other process writes here: the lock says so
        self.model.train()
        self.model.gradient_checkpointing = cfg.grad_checkpointing
        # The reference is the initial policy, frozen. beta == 0: none is built.
        self.ref = copy.deepcopy(self.model).eval().requires_grad_(False) if cfg.beta > 0 else None
        if ckpt is not None:  # the checkpoint's weights, before they are sharded
            sd = load_state_dict(self.model, ckpt, self.device, torch.float32)
            self.model.load_state_dict(sd, strict=False)
        if cfg.fsdp and not self.dist.active:
            log("--fsdp: one process, nothing to shard (it takes effect under torchrun)")
        self.sharding = Sharding.build([self.model, self.ref], self.dist, cfg.fsdp, self.device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
            weight_decay=cfg.weight_decay, fused=self.device.type == "cuda",
        )  # fmt: skip
        self.loss_cfg = LossConfig(
            aggregation=cfg.aggregation, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
            beta=cfg.beta, entropy_coef=cfg.entropy_coef, max_new_tokens=cfg.max_new_tokens,
        )  # fmt: skip
        main = self.dist.main
        self.metrics = JsonlWriter(self.run_dir / "metrics.jsonl", main)
        self.timings = JsonlWriter(self.run_dir / "timings.jsonl", main)
        self.samples = JsonlWriter(self.run_dir / "samples.jsonl", main)
        self.step = 0
        self.data_pos = 0
        self.history: list[dict[str, Any]] = []
        # The cosine schedule's length: fixed when the run starts, kept when --steps changes.
        self.schedule_steps = cfg.steps
        self._saved_step: int | None = None  # the step of the newest checkpoint this state is in
        self._step_seconds: list[float] = []  # durations of training steps (for the ETA)
        # SIGINT/SIGTERM while train() runs (grpo/run/stopping.py); rank 0 alone says so.
        self.stops = StopRequests(quiet=not self.dist.main)
        if self.dist.active:
            self.stops.command = (f"torchrun --standalone --nproc_per_node={self.dist.world} "
                                  "train_zero.py")  # fmt: skip
        self._rows: range | None = None  # this process's rows of the step (data parallel)
        if resume:
            self._resume(ckpt)
        self._rng = rng_state()  # the RNG state of the last step boundary (for checkpoints)
        if self.dist.main:
            write_json_atomic(self.run_dir / "train_config.json", cfg.to_dict())
        self.dist.barrier()

    def close(self) -> None:
        """Release the run folder's lock (the process ending releases it too)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ precision
    def autocast(self):
        want = self.cfg.dtype
        if want == "auto":
            want = "bfloat16" if self.device.type == "cuda" else "float32"
        if want == "float32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=getattr(torch, want))

    # ------------------------------------------------------------------ resume / save
    def _resume(self, ckpt: Path | None) -> None:
        writers = (self.metrics, self.timings, self.samples)
        if ckpt is None:  # (checked in _setup: the run had started)
            # Stopped before its first checkpoint: start again, as a fresh run would.
            self.log(f"{self.run_dir} has no checkpoint yet (the run stopped before its first "
                     "save): starting it again from step 0")  # fmt: skip
            for w in writers:
                w.truncate_after(-1)
            return
        saved = json.loads((self.run_dir / "train_config.json").read_text())
        # A setting missing from the saved config ran with its default.
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        changed = {k for k, v in self.cfg.to_dict().items() if saved.get(k, defaults[k]) != v}
        risky = sorted(changed - RESUME_SAFE_KEYS)
        if risky:
            self.log(f"warning: resuming with changed settings {risky}; the continuation will "
                     "differ from an uninterrupted run")  # fmt: skip
        state = load_trainer_state(ckpt)  # (the weights were loaded in _setup)
        self.sharding.load_optimizer_state(self.opt, state["optimizer"])
        set_rng_state(state["rng"])
        self.step, self.data_pos = state["step"], state["data_pos"]
        self.history = state.get("history", [])
        # Checkpoints older than `schedule_steps` ran the schedule of their own config.
        self.schedule_steps = state.get("schedule_steps", state["config"]["steps"])
        self._saved_step = self.step
        for w in writers:
            w.truncate_after(self.step)
        self.log(f"resumed from {ckpt} (step {self.step})")
        if self.cfg.steps != self.schedule_steps:
            floor = self.cfg.lr * self.cfg.min_lr_ratio
            tail = (f"steps {self.schedule_steps + 1}-{self.cfg.steps} run at its final "
                    f"learning rate {floor:.1e}" if self.cfg.steps > self.schedule_steps
                    else "the run ends before the learning rate reaches its floor")  # fmt: skip
            self.log(f"--steps {self.cfg.steps}: the learning-rate schedule keeps the run's "
                     f"original length of {self.schedule_steps} steps; {tail}")  # fmt: skip

    def save(self) -> Path:
        """Checkpoint (rank 0 writes: every rank holds the same model and optimizer, or,
        with --fsdp, its shards of them, gathered here)."""
        weights = self.sharding.full_state(self.model)
        optimizer = self.sharding.full_optimizer_state(self.opt)
        if self.dist.main:
            state = {
                "optimizer": optimizer, "data_pos": self.data_pos,
                "config": self.cfg.to_dict(), "history": self.history,
                "schedule_steps": self.schedule_steps, "rng": self._rng,
            }  # fmt: skip
            path = save_checkpoint(self.run_dir, self.step, self.model, self.tok, state,
                                   keep=self.cfg.keep_checkpoints, weights=weights)  # fmt: skip
        self.dist.barrier()
        if not self.dist.main:
            path = latest_checkpoint(self.run_dir)
        self._saved_step = self.step
        return path

    # ------------------------------------------------------------------ one GRPO step
    def train_step(self) -> dict[str, Any]:
        """One GRPO step: rollout, rewards, group advantages, update, log."""
        cfg = self.cfg
        step = self.step + 1
        t0 = time.perf_counter()
        examples, next_pos, skipped = draw_examples(
            self.task, self.tok, self.data_pos, cfg.prompts_per_step, cfg.max_new_tokens,
            self.context, step,
        )  # fmt: skip
        # 1. Rollout: G completions per question, each scored by the task's rules.
        ro = self._rollout(examples, step)
        # 2. Rewards beyond the task's own: R1's consistency reward in miniature.
        if cfg.readability_weight:
            add_readability_reward(ro, self.task, cfg.readability_weight)
        t_rollout = time.perf_counter() - t0
        # 3. Group advantages: each reward against its group's mean (and std).
        adv, adv_stats = group_advantages(
            ro.rewards, cfg.group_size, scale_by_std=cfg.scale_by_std, eps=cfg.adv_eps
        )
        # 4. Update: mu passes of the clipped surrogate (+ KL) over the packed batch.
        batch = pack(ro, self.tok.pad_id, self.device, cfg.truncated)
        t1 = time.perf_counter()
        upd = self._update(batch, adv.to(self.device), step)
        t_update = time.perf_counter() - t1
        # 5. Log: metrics.jsonl, samples.jsonl, timings.jsonl.
        row = self._step_metrics(step, examples, ro, adv_stats, upd, next_pos, skipped)
        self.step, self.data_pos = step, next_pos
        self.metrics.write(row)
        if step % cfg.eval_every == 0 or step == 1:
            self._log_train_samples(step, examples, ro)
        timing = self._step_timing(step, ro, t_rollout, t_update)
        self.timings.write(timing)
        self._rng = rng_state()
        return row | {"_timing": timing}

    def _rollout(self, examples: list[dict], step: int) -> Rollout:
        """Sample and score group_size completions of every question of the step."""
        cfg = self.cfg
        progress = Progress(f"step {step} rollout", cfg.max_new_tokens, self.log, unit="tokens")
        # This rank's groups: a contiguous share, sampled as the whole step would sample them.
        share = self.dist.share(len(examples))
        self.model.eval()
        try:
            with self.autocast(), self._abandonable(f"the rollout of step {step}"), \
                    self.sharding.gathered(self.model):
                ro = rollout(
                    self.model, self.tok, self.task, examples[share.start : share.stop],
                    group_size=cfg.group_size, max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                    stop_strings=cfg.stop_strings, truncated=cfg.truncated,
                    seed=cfg.seed * 1_000_003 + step, progress=lambda t, _n: progress.update(t),
                    first_group=share.start,
                    total_groups=len(examples) if self.dist.active else None,
                )  # fmt: skip
        finally:
            self.model.train()
        if self.dist.active:  # every rank gets the whole step's rollout
            ro = Rollout.concat(self.dist.gather(ro))
        G = cfg.group_size
        # The update trains on this rank's rows only (None: all of them).
        self._rows = range(share.start * G, share.stop * G) if self.dist.active else None
        return ro

    def _step_metrics(self, step: int, examples: list[dict], ro: Rollout,
                      adv_stats: dict[str, float], upd: dict[str, float], next_pos: int,
                      skipped: int) -> dict[str, Any]:  # fmt: skip
        """The step's row of metrics.jsonl: rewards, lengths, behaviour, update statistics."""
        cfg = self.cfg
        lengths = [len(c) for c in ro.completion_ids]
        n = len(lengths)
        rewards = ro.rewards.tolist()
        mean_r = sum(rewards) / n
        # Search behaviour (countdown: tries, giving up, ...); {} for tasks without one.
        behaviour = behaviour_means([
            self.task.behaviour(text, examples[i // cfg.group_size], s["accuracy"] == 1.0)
            for i, (text, s) in enumerate(zip(ro.texts, ro.scores))
        ])  # fmt: skip
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
            **behaviour,
            "zero_variance_frac": adv_stats["zero_variance_frac"],
            "adv_abs_mean": adv_stats["adv_abs_mean"],
            **upd,
            "lr": lr_at(step, cfg, self.schedule_steps),
            "tokens_generated": sum(lengths),
            "data_pos": next_pos,
        }
        if cfg.readability_weight:
            row["readable_rate"] = sum(s["readable"] for s in ro.scores) / n
        if skipped:  # only then: a run that skips nothing has no such key
            row["skipped_overlong"] = skipped
        return row

    def _log_train_samples(self, step: int, examples: list[dict], ro: Rollout) -> None:
        """The first question's whole group: how the sampled modes shift over training."""
        for text, s, reason in zip(ro.texts[: self.cfg.group_size], ro.scores, ro.finish_reasons):
            self.samples.write({
                "step": step, "kind": "train", "question": examples[0]["question"],
                "completion": text, "finish": reason, **s,
            })  # fmt: skip

    def _step_timing(self, step: int, ro: Rollout, t_rollout: float,
                     t_update: float) -> dict[str, Any]:  # fmt: skip
        """The step's row of timings.jsonl, with the matmul FLOPs each phase needed."""
        cfg = self.cfg
        lengths = [len(c) for c in ro.completion_ids]
        p_lens = [len(p) for p in ro.prompt_ids]
        return {
            "step": step, "rollout_s": t_rollout, "update_s": t_update,
            "tokens_per_s": sum(lengths) / max(t_rollout, 1e-9),
            # Matmul FLOPs the phases needed (model.flops): benchmarks/demo_profile.py.
            "rollout_flops": rollout_flops(self.model.config, p_lens, lengths, cfg.group_size),
            "update_flops": cfg.mu * update_flops(self.model.config, p_lens, lengths,
                                                  cfg.group_size),
        }  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        share = self.dist.share(len(self.heldout))  # this rank's questions (all, alone)
        progress = Progress(f"eval @ step {self.step}", len(share), self.log,
                            unit="questions")  # fmt: skip
        self.model.eval()
        try:
            with self._abandonable(f"the evaluation at step {self.step}"), \
                    self.sharding.gathered(self.model):
                res = evaluate(
                    self.model, self.tok, self.task, self.heldout[share.start : share.stop],
                    max_new_tokens=cfg.max_new_tokens, temperature=cfg.eval_temperature,
                    stop_strings=cfg.stop_strings, batch_size=cfg.eval_batch_size,
                    seed=cfg.seed, autocast=self.autocast,
                    progress=lambda done, _n: progress.update(int(done)),
                    share=(share.start, len(self.heldout)) if self.dist.active else None,
                )  # fmt: skip
        finally:
            self.model.train()
        if self.dist.active:  # every rank's questions, gathered, graded as one set
            parts = self.dist.gather((res.records, res.flops))
            records = [r for recs, _ in parts for r in recs]
            res.records, res.flops = records, sum(f for _, f in parts)
            res.metrics = summarise(records, 1)
        progress.done()
        row = {"step": self.step, **res.metrics}
        self.metrics.write(row)
        self.timings.write({"step": self.step, "eval_s": time.perf_counter() - t0,
                            "eval_flops": res.flops})  # fmt: skip
        for rec in res.records[: cfg.samples_per_eval]:
            self.samples.write({
                "step": self.step, "kind": "eval", "question": rec["example"]["question"],
                "completion": rec["completions"][0], **rec["scores"][0],
            })  # fmt: skip
        self.history.append(row)
        self._rng = rng_state()
        return row

    # ------------------------------------------------------------------ stopping on signals
    def _abandonable(self, what: str):
        """A rollout or evaluation that a signal abandons at once (one process); with
        several, every rank finishes it and all stop together at the step boundary."""
        return nullcontext() if self.dist.active else self.stops.abandonable(what)

    def _stopping(self) -> bool:
        """A stop was asked (SIGINT/SIGTERM), on this process or, with several, on any
        (then every rank takes that signal as its own, for the message and exit code)."""
        if not self.dist.active:
            return self.stops.signal is not None
        sig = self.dist.most(self.stops.signal or 0)
        if sig and self.stops.signal is None:
            self.stops.signal = sig
        return bool(sig)

    def _stop(self, abandoned: bool) -> TrainingInterrupted:
        """Checkpoint the last completed step (if not already) and say how to go on."""
        if self.step == 0:
            path = None  # nothing to save: the message says so
        elif self._saved_step == self.step:
            path = latest_checkpoint(self.run_dir)
        else:
            path = self.save()
        return self.stops.stopped_after(self.run_dir, self.step, path, abandoned)

    # ------------------------------------------------------------------ the loop
    def _eval_due(self, s: int) -> bool:
        return s == 0 or s % self.cfg.eval_every == 0 or s == self.cfg.steps

    def _save_due(self, s: int) -> bool:
        return bool(self.cfg.save_every and s % self.cfg.save_every == 0) or s == self.cfg.steps

    def train(self) -> dict[str, Any]:
        """Run to cfg.steps. Raises TrainingInterrupted on SIGINT/SIGTERM (after a checkpoint)."""
        start = time.perf_counter()
        try:
            with self.stops.installed():
                self._train()
        finally:
            self.close()
        self.log(f"done in {time.perf_counter() - start:.0f}s; final checkpoint "
                 f"{latest_checkpoint(self.run_dir)}")  # fmt: skip
        for line in summary_lines(self.history, len(self.heldout), self.run_dir / "metrics.jsonl"):
            self.log(line)
        if self.cfg.plot and self.dist.main:
            plot_run(self.run_dir, self.log)
        return self.history[-1] if self.history else {}

    def _train(self) -> None:
        nparams = sum(p.numel() for p in self.model.parameters())
        for line in start_lines(self.cfg, self.run_dir, self.device, nparams, len(self.heldout)):
            self.log(line)
        abandoned = False
        try:
            try:
                self._loop()
            except Abandon:
                abandoned = True
            if self._stopping():
                raise self._stop(abandoned)
        except StopNow:
            last = latest_checkpoint(self.run_dir)
            raise self.stops.stopped_at_once(self.run_dir, last) from None

    def _loop(self) -> None:
        cfg, log = self.cfg, self.log
        # A fresh run evaluates step 0; a resumed one redoes an evaluation it was stopped in.
        done = bool(self.history) and self.history[-1]["step"] == self.step
        if self._eval_due(self.step) and not done:
            log(eval_line(self.evaluate()))
            if self.step > 0 and self._save_due(self.step):
                self.save()
        while self.step < cfg.steps and not self._stopping():
            t0 = time.perf_counter()
            row = self.train_step()
            self._step_seconds.append(time.perf_counter() - t0)
            s = self.step
            if s % cfg.log_every == 0 or s == cfg.steps:
                log(step_line(row, cfg.steps, self._eta()))
            if self._stopping():
                break  # the evaluation is redone on resume
            if self._eval_due(s):
                log(eval_line(self.evaluate()))
            if self._save_due(s):
                self.save()

    def _eta(self) -> float:
        """Seconds left, from the mean duration of training steps (evaluations excluded)."""
        mean = sum(self._step_seconds) / max(1, len(self._step_seconds))
        return mean * (self.cfg.steps - self.step)
