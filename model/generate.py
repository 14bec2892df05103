"""Batched sampling with a static KV cache: B prompts x G completions each.

    out = generate(model, prompts, num_samples=8, max_new_tokens=256, temperature=1.0,
                   eos_ids=tok.eos_ids, stop_strings=["</answer>"], tokenizer=tok, seed=0)
    out.tokens[i, : out.lengths[i]]      # completion i (rows grouped by prompt)

How it works:
1. Prompts are left-padded into one (B, P) batch and prefilled once. When
   every prompt starts with the same tokens (a template's instructions), that
   common prefix is prefilled once, as a batch of one, and its keys and values
   are kept once in the cache (`KVCache(prefix=...)`), not copied per row;
   only the rest of each prompt is prefilled per row (each row attends
   [prefix | padding | rest of the prompt]; positions skip the padding).
   Under autocast the cache holds the autocast dtype, which is what attention
   reads it as.
2. The prompt's KV cache is copied G times (row b becomes rows b*G .. b*G+G-1),
   so a group's samples share the prompt's computation.
3. Each decode step feeds one token per row, through `model.decode.Decoder`
   (the same function as the model's forward, written for one token per row:
   fused weights, the shared prefix attended once for all rows; `fast=False`
   runs the general forward instead, the oracle). Finished rows keep running (their
   tokens are discarded) until, at a check, at most half of the rows still
   running are unfinished: then the cache keeps only those (`compact`). The
   sampling noise is still drawn for all N rows every step, so the random
   stream, and the output, do not depend on compaction. The loop stops as
   soon as every row has finished.
4. EOS is detected on the device. Whether all rows finished, and stop strings
   (text such as "</answer>" that may span several tokens), are checked on the
   host only every `check_every` steps: the decode step itself has no host
   synchronisation. A stop string found late truncates the row at the token
   that completed it, so the result does not depend on `check_every`.

Sampling: logits / temperature, then top-k, then top-p (nucleus), then one
draw by the exponential-race trick (argmax of p / Exp(1) noise is a sample from
p; on CPU the noise is drawn as float64 uniforms U and -log1p(-U), bit for bit
what torch's `exponential_` draws, see `exponential_noise`). temperature == 0
means greedy. The optional log-probs are those of the
sampled tokens under softmax(logits / temperature) over the full vocabulary
(before top-k/top-p), i.e. the policy's log-probs at that temperature.

Shape legend: B prompts, G samples per prompt, N = B*G rows, P padded prompt
length, T new tokens, V vocab.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from model.decode import Decoder
from model.transformer import KVCache, Transformer


@dataclass
class GenerationOutput:
    tokens: Tensor  # (N, T) completion ids, `pad_id` after each row's end
    lengths: Tensor  # (N,) tokens per completion, EOS / stop-string tokens included
    finish_reasons: list[str]  # "stop" (EOS or stop string) or "length" (truncated)
    prompt_index: Tensor  # (N,) which prompt each row continues
    logprobs: Tensor | None = None  # (N, T) fp32 sampling log-probs, 0 after each row's end
    steps: int = 0  # decode steps actually run

    def completions(self) -> list[list[int]]:
        return [row[:n].tolist() for row, n in zip(self.tokens, self.lengths.tolist())]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str):
    """(B, P) ids and (B, P) bool mask, each prompt right-aligned."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and no prompt may be empty")
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), P, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, P - len(p) :] = True
    return ids.to(device), mask.to(device)


# A common prompt prefix shorter than this is prefilled with the rest (not worth a call).
MIN_SHARED_PREFIX = 16


def common_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Number of leading tokens that every prompt has in common."""
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return n


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Leading tokens worth computing once for all `prompts`: their common prefix,
    leaving at least one token of every prompt; 0 if under MIN_SHARED_PREFIX or one prompt."""
    if len(prompts) < 2:
        return 0
    k = min(common_prefix_len(prompts), min(len(p) for p in prompts) - 1)
    return k if k >= MIN_SHARED_PREFIX else 0


def sample_next(
    logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
    generator: torch.Generator | None, need_logprobs: bool = True,
    noise_rows: tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """One token per row from logits (N, V). Returns (tokens (N,), log-probs (N,) fp32 or None).

    noise_rows = (start, total): these N rows are rows start .. start+N-1 of a batch
    of `total` rows; noise is drawn for all `total` rows and this slice is used.
    """
    logits = logits.float()
    if temperature == 0:
        tok = logits.argmax(-1)
        if not need_logprobs:
            return tok, None
        return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0]
    if temperature != 1.0:  # (x / 1.0 is x: skipping it changes no value)
        logits = logits / temperature
    filtered = logits
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(filtered, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p.
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        filtered = filtered.masked_fill(drop, float("-inf"))
    probs = torch.softmax(filtered, -1)
    start, total = noise_rows or (0, probs.shape[0])
    noise = exponential_noise((total, probs.shape[1]), probs.device, generator)
    noise = noise[start : start + probs.shape[0]]
    tok = (probs / noise).argmax(-1)
    if not need_logprobs:
        return tok, None
    return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None])[:, 0]


def exponential_noise(shape: tuple[int, ...], device: torch.device,
                      generator: torch.Generator | None) -> Tensor:  # fmt: skip
    """Exp(1) draws (fp32), exactly `torch.empty(shape).exponential_(1.0, generator)`'s.

    On CPU, torch's `exponential_` computes -log1p(-U) from a float64 uniform U,
    one value at a time (about 1 ms for the 128 x 414 draws of a demo step).
    Drawing U with `uniform_` in float64 from the same generator and applying
    log1p to the whole tensor gives the same numbers, about 3x faster: 4e8
    draws compared bit for bit, and tests/test_generate.py compares them on
    every run. On other devices, `exponential_` itself.
    """
    if device.type == "cpu":
        u = torch.empty(shape, dtype=torch.float64).uniform_(generator=generator)
        return u.neg_().log1p_().neg_().float()
    return torch.empty(shape, device=device).exponential_(1.0, generator=generator)


def _find_stop(tokenizer, ids: list[int], stop_strings: Sequence[str]) -> int | None:
    """Smallest k such that decode(ids[:k]) contains a stop string, or None."""
    text = tokenizer.decode(ids)
    if not any(s in text for s in stop_strings):
        return None
    lo, hi = 1, len(ids)  # decode(ids[:hi]) contains one; find the first prefix that does
    while lo < hi:
        mid = (lo + hi) // 2
        if any(s in tokenizer.decode(ids[:mid]) for s in stop_strings):
            hi = mid
        else:
            lo = mid + 1
    return lo


@torch.no_grad()
def generate(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_ids: Sequence[int] = (),
    stop_strings: Sequence[str] = (),
    tokenizer=None,
    pad_id: int = 0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    return_logprobs: bool = False,
    check_every: int = 8,
    progress: Callable[[int, int], None] | None = None,
    compact: bool = True,
    logit_filter: Callable[[Tensor, Tensor], Tensor] | None = None,
    share_prefix: bool = True,
    noise_rows: tuple[int, int] | None = None,
    fast: bool = True,
) -> GenerationOutput:
    """Sample `num_samples` completions for each prompt (token id lists).

    `logit_filter(logits (N, V), generated (N, t))`, if given, returns the
    logits to sample step t from (a probe's constraint, e.g. a banned token);
    the log-probs are then those of the filtered logits.

    `progress(tokens_decoded, max_new_tokens)`, if given, is called after every
    decode step (the caller throttles what it prints; see grpo.run.progress).

    `share_prefix`: prefill the prompts' common leading tokens once (step 1 of
    the module docstring); False prefills every prompt whole (the oracle).
    `compact`: drop finished rows from the cache (step 3); False keeps them.
    `fast`: decode with `model.decode.Decoder` (step 3); False runs `model(...)`.

    `noise_rows=(start, total)`: this call's N rows are rows start .. start+N-1
    of a batch of `total` rows (the prompts are a contiguous slice of a larger
    batch, with the same num_samples). The noise is drawn for all `total` rows
    every step, from the same seed, and this slice is used, so each row samples
    what it would in the whole batch: data-parallel ranks that each generate
    their slice reproduce the one-process rollout.
    """
    _check_settings(model, prompts, max_new_tokens, num_samples, temperature, top_p,
                    stop_strings, tokenizer, noise_rows)  # fmt: skip
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    if torch.is_autocast_enabled(device.type):
        # Under autocast, attention reads the cache in the autocast dtype: storing it so
        # gives the same values, and no step re-casts the whole cache.
        dtype = torch.get_autocast_dtype(device.type)
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    B, G = len(prompts), num_samples
    N = B * G
    was_training = model.training
    model.eval()
    try:
        cache, logits, P = _prefill(model, prompts, G, max_new_tokens, pad_id, share_prefix,
                                    device, dtype)  # fmt: skip
        if fast:
            step = Decoder(model, P + max_new_tokens)
        else:  # the general forward pass: the oracle the fast step is tested against
            step = lambda ids, c: model(ids[:, None], None, c)[:, -1]  # noqa: E731
        eos = torch.as_tensor(list(eos_ids), dtype=torch.long, device=device)
        tokens = torch.full((N, max_new_tokens), pad_id, dtype=torch.long, device=device)
        logps = torch.zeros(N, max_new_tokens, device=device) if return_logprobs else None
        finished = torch.zeros(N, dtype=torch.bool, device=device)
        lengths = torch.full((N,), max_new_tokens, dtype=torch.long, device=device)
        stopped = torch.zeros(N, dtype=torch.bool, device=device)
        max_stop = max((len(s) for s in stop_strings), default=0)
        checked = 0  # tokens already searched for stop strings
        searchable = ~finished  # rows unfinished at the last check (EOS may have ended some since)
        active = None  # rows the model still runs on (None: all N)
        steps = 0
        for t in range(max_new_tokens):
            if logit_filter is not None:
                logits = logit_filter(logits, tokens[:, :t])
            tok, lp = sample_next(logits, temperature, top_k, top_p, generator, logps is not None,
                                  noise_rows)  # fmt: skip
            live = ~finished
            tokens[:, t] = torch.where(live, tok, pad_id)
            if logps is not None:
                logps[:, t] = torch.where(live, lp, 0.0)
            hit = live & torch.isin(tok, eos) if eos.numel() else torch.zeros_like(live)
            lengths = torch.where(hit, t + 1, lengths)
            stopped |= hit
            finished |= hit
            steps = t + 1
            last = t == max_new_tokens - 1
            if (t + 1) % check_every == 0 or last:
                if stop_strings:
                    _apply_stop_strings(
                        tokenizer, stop_strings, tokens, lengths, finished, stopped, logps,
                        pad_id, searchable, checked, t + 1, max_stop,
                    )  # fmt: skip
                    checked = t + 1
                    searchable = ~finished
                if last or bool(finished.all()):
                    break
                if compact:
                    running = N if active is None else len(active)
                    unfinished = (~finished).nonzero().flatten()
                    if 2 * len(unfinished) <= running:
                        keep = unfinished if active is None else (
                            torch.searchsorted(active, unfinished))  # positions in the cache
                        cache, active = cache.select(keep), unfinished
            if progress is not None:
                progress(t + 1, max_new_tokens)
            if active is None:
                logits = step(tok, cache)
            else:
                # Finished rows get zero logits: what they sample is discarded, but
                # they still consume their share of the noise.
                logits = logits.new_zeros(N, logits.shape[-1])
                logits[active] = step(tok[active], cache)
    finally:
        model.train(was_training)
    T = steps
    reasons = ["stop" if s else "length" for s in stopped.tolist()]
    prompt_index = torch.arange(B, device=device).repeat_interleave(G)
    return GenerationOutput(
        tokens=tokens[:, :T], lengths=lengths, finish_reasons=reasons,
        prompt_index=prompt_index, logprobs=logps[:, :T] if logps is not None else None,
        steps=steps,
    )  # fmt: skip


def _check_settings(model: Transformer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    num_samples: int, temperature: float, top_p: float | None,
                    stop_strings: Sequence[str], tokenizer,
                    noise_rows: tuple[int, int] | None) -> None:  # fmt: skip
    """generate's settings, refused with a ValueError before anything is allocated."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if noise_rows is not None:
        start, total = noise_rows
        if not 0 <= start <= start + len(prompts) * num_samples <= total:
            raise ValueError(f"noise_rows {noise_rows}: {len(prompts) * num_samples} rows do "
                             f"not fit in a batch of {total} from row {start}")  # fmt: skip
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if stop_strings and tokenizer is None:
        raise ValueError("stop_strings need a tokenizer to decode the completions")
    longest = max((len(p) for p in prompts), default=0)
    context = model.config.max_position_embeddings
    if longest + max_new_tokens > context:
        # Checked before the KV cache is allocated from these lengths.
        raise ValueError(
            f"prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's context of {context} positions"
        )


def _prefill(model: Transformer, prompts: Sequence[Sequence[int]], G: int, max_new_tokens: int,
             pad_id: int, share_prefix: bool, device: torch.device,
             dtype: torch.dtype) -> tuple[KVCache, Tensor, int]:  # fmt: skip
    """Run the prompts through the model once: the common prefix once for all of them
    (share_prefix), each prompt once on top of it, and the cache copied to its G rows.

    Returns the cache (B*G rows, room for max_new_tokens more), the next-token logits
    (B*G, V), and P, the padded prompt length.
    """
    B = len(prompts)
    k = shared_prefix_len(prompts) if share_prefix else 0
    ids, mask = left_pad([p[k:] for p in prompts], pad_id, device)
    P = k + ids.shape[1]
    prefix = None
    if k:
        prefix = KVCache(model.config, 1, k, device, dtype)
        model.hidden_states(torch.tensor([list(prompts[0][:k])], device=device), None, prefix)
    cache = KVCache(model.config, B, P - k + max_new_tokens, device, dtype, prefix=prefix)
    logits = model(ids, mask, cache)[:, -1]  # (B, V): next-token logits per prompt
    if G > 1:
        cache = cache.repeat_interleave(G)
        logits = logits.repeat_interleave(G, dim=0)
    return cache, logits, P


def _apply_stop_strings(
    tokenizer, stop_strings, tokens, lengths, finished, stopped, logps, pad_id,
    searchable: Tensor, checked: int, upto: int, max_stop: int,
) -> None:  # fmt: skip
    """Search tokens [checked - overlap, upto) of `searchable` rows for stop strings.

    Rows that hit EOS since the last check are searched too (up to their EOS),
    since a stop string before the EOS ends them earlier. A stop string of n
    characters spans at most n tokens, so looking back `max_stop` tokens before
    the unchecked part catches one that straddles the previous check.
    """
    rows = searchable.nonzero().flatten().tolist()
    if not rows:
        return
    lo = max(0, checked - max_stop)
    window = tokens[rows, lo:upto].tolist()
    ends = lengths[rows].tolist()
    for r, ids, n in zip(rows, window, ends):
        k = _find_stop(tokenizer, ids[: max(0, n - lo)], stop_strings)
        if k is None:
            continue
        end = lo + k  # the row ends after token end - 1
        tokens[r, end:] = pad_id
        if logps is not None:
            logps[r, end:] = 0.0
        lengths[r] = end
        finished[r] = True
        stopped[r] = True
