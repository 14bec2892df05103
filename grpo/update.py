"""The update half of the Trainer: one GRPO update on a step's rollout batch.

    upd = trainer._update(batch, adv, step)   # mu epochs x mini-batches x micro-batches

Steps 4-5 of a GRPO step (grpo/trainer.py): log-probs under pi_old (only when mu > 1 or
several mini-batches) and under the frozen reference (only when beta > 0);
then mu epochs over shuffled mini-batches, each one AdamW step accumulated over
micro-batches (grpo/microbatch.py). The loss weights are computed once per
mini-batch, so the token-mean divides by the token count of the whole
mini-batch (`grpo.loss.token_weights`), whatever the micro-batches and, under
torchrun, whatever the processes (grpo/parallel/distributed.py, grpo/parallel/fsdp.py).

A mixin: grpo/trainer.py's Trainer holds the state (cfg, model, ref, opt,
dist, sharding) and runs the loop around it.
"""

from __future__ import annotations

import torch

from grpo.loss import finalize_metrics, grpo_loss, token_weights
from grpo.microbatch import micro_batches
from grpo.rollout import Batch, completion_logprobs
from grpo.run.checkpoint import latest_checkpoint
from grpo.run.config import lr_at
from model import Transformer


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the message names the last good checkpoint."""


class Update:
    def _logprobs(self, model: Transformer, batch: Batch, rows: range | None = None,
                  ) -> torch.Tensor:  # fmt: skip
        """Per-token log-probs (N, Tc), no graph (pi_old or pi_ref), of the batch's rows in
        `rows` (a data-parallel share; the others stay 0), or of all of them."""
        N, Tc = batch.completion_mask.shape
        rows = range(N) if rows is None else rows
        out = None
        with torch.no_grad(), self.autocast(), self.sharding.gathered(model):
            for r0 in range(rows.start, rows.stop, self.cfg.micro_batch_size):
                r = slice(r0, min(r0 + self.cfg.micro_batch_size, rows.stop))
                lp, _ = completion_logprobs(
                    model, batch, r, self.cfg.temperature, self.cfg.logprob_backend,
                    self.cfg.share_prompt,
                )
                if out is None:
                    out = lp.new_zeros(N, lp.shape[1])
                out[r] = lp
        return out if out is not None else torch.zeros(N, Tc, device=batch.input_ids.device)

    def _update(self, batch: Batch, adv: torch.Tensor, step: int) -> dict[str, float]:
        cfg = self.cfg
        N = batch.input_ids.shape[0]
        mask = batch.completion_mask
        lr = lr_at(step, cfg, self.schedule_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # pi_old differs from pi_theta only after the first optimizer step on this batch.
        several_updates = cfg.mu > 1 or cfg.mini_batches > 1
        old_logp = self._logprobs(self.model, batch, self._rows) if several_updates else None
        ref_logp = self._logprobs(self.ref, batch, self._rows) if self.ref is not None else None
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        sums: dict[str, torch.Tensor] = {}
        grad_norms = []
        applied = 0  # optimizer steps of this GRPO step already taken
        for _epoch in range(cfg.mu):
            perm = torch.randperm(N, generator=g).to(self.device)
            for mb in perm.chunk(cfg.mini_batches):
                # The loss weights of the WHOLE mini-batch (its normaliser), before its
                # rows are split into this process's share and into micro-batches.
                weights = token_weights(mask[mb], cfg.aggregation, cfg.max_new_tokens)
                with self.sharding.gathered(self.model):
                    s = self._backward(batch, adv, mb, weights, old_logp, ref_logp, self._rows)
                bad = s.pop("_bad", None)
                if self.dist.any(bad is not None):
                    self._diverged(step, bad or "the loss is not finite on another process",
                                   applied)  # fmt: skip
                if not self.sharding.on:  # (FSDP2 summed them in its reduce-scatter)
                    self.dist.sum_grads(self.model.parameters())
                for k, v in s.items():
                    sums[k] = sums.get(k, 0) + v
                clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                gn = self.sharding.clip(self.model.parameters(), clip)
                if not torch.isfinite(gn):
                    self._diverged(step, f"gradient norm is {gn.item()}", applied)
                grad_norms.append(float(gn))
                self.opt.step()
                applied += 1
                self.opt.zero_grad(set_to_none=True)
        if self.dist.active:  # metric sums over every process's rows (a rank may have none)
            keys = sorted(set().union(*self.dist.gather(sorted(sums))))
            sums = self.dist.sum({k: sums.get(k, 0.0) for k in keys})
        m = finalize_metrics(sums)
        m.pop("tokens", None)
        if self.ref is None:
            m.pop("kl", None)  # beta = 0: there is no reference model to compare with
        m["grad_norm"] = sum(grad_norms) / len(grad_norms)
        return m

    def _backward(
        self, batch: Batch, adv: torch.Tensor, mb: torch.Tensor, weights: torch.Tensor,
        old_logp: torch.Tensor | None, ref_logp: torch.Tensor | None, rows: range | None = None,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Accumulate the gradient of mini-batch `mb` (row indices into the batch), whose
        loss weights `weights` were computed over the whole mini-batch; returns the
        metric sums. With `rows`, only the mini-batch's rows in that range (a
        data-parallel share) run: summing the gradients of shares that cover the
        batch gives the whole mini-batch's gradient, since the weights carry the
        global normaliser (tests/test_data_parallel.py).

        With FSDP2 every backward is a collective: a rank with fewer micro-batches
        than another runs zero-weight ones (its first row, loss x 0) to match, and on
        a non-finite loss it goes on with zero losses so that no rank waits alone."""
        cfg = self.cfg
        mask = batch.completion_mask
        if rows is not None:
            keep = (mb >= rows.start) & (mb < rows.stop)
            mb, weights = mb[keep], weights[keep]
        sums: dict[str, torch.Tensor] = {}
        cuts = micro_batches(mb, mask.sum(1), batch, cfg.micro_batch_size, cfg.share_prompt)
        if self.sharding.on:
            cuts += [None] * (self.dist.most(len(cuts)) - len(cuts))
        bad = None
        for pos in cuts:
            if pos is None:  # a zero-weight micro-batch (FSDP2): same backward count on every rank
                r = torch.tensor([rows.start], device=mb.device)
                w = weights.new_zeros(1, *weights.shape[1:])
            else:
                r, w = mb[pos], weights[pos]
            with self.autocast():
                logp, ent = completion_logprobs(
                    self.model, batch, r, cfg.temperature, cfg.logprob_backend, cfg.share_prompt,
                )  # fmt: skip
            loss, s = grpo_loss(
                logp, None if old_logp is None else old_logp[r],
                None if ref_logp is None else ref_logp[r], adv[r], w, mask[r], self.loss_cfg,
                entropy=ent,
            )  # fmt: skip
            if bad is None and not torch.isfinite(loss):  # _update stops every process
                bad = f"loss is {loss.item()}"
                if not self.sharding.on:
                    break
            if pos is None or bad is not None:
                (loss * 0).backward()
                continue
            loss.backward()
            for k, v in s.items():
                sums[k] = sums.get(k, 0) + v
        return {"_bad": bad} if bad is not None else sums

    def _diverged(self, step: int, what: str, applied: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        hint = "(try a lower --lr or --grad-clip)"
        if not applied:
            # Nothing of this step was applied: the weights are still those after step - 1.
            path = self.save()
            raise TrainingDiverged(f"step {step}: {what}; training stopped. Last good state "
                                   f"saved to {path} {hint}")  # fmt: skip
        # Earlier mini-batches of this step already moved the weights and the optimizer:
        # the current state is no good one, so the checkpoints on disk are left as they are.
        last = latest_checkpoint(self.run_dir)
        where = (f"the last good checkpoint is {last}" if last else
                 "no checkpoint was saved before it; start again")  # fmt: skip
        raise TrainingDiverged(
            f"step {step}: {what} after {applied} optimizer step(s) of this step; training "
            f"stopped with nothing saved, {where} {hint}"
        )
