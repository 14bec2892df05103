"""Pretraining a base: corpus -> tokenizer -> packed rows -> a trained `model.Transformer`.

    from grpo.bases.pretrain import pretrain
    model, tok, stats = pretrain(config, log=print, device="cpu")   # what `build_base` saves

Pretraining: byte-level BPE (`train_bpe_tokenizer`: digits one token each, the
four tags atomic) trained on the first 2,000 documents, which saturates at
~414 tokens, so the 96-token prompt is one token per word or punctuation
mark; a 1.65M-parameter Llama-style `model.Transformer` (`BuildConfig`),
random init; whole documents packed into rows of 385 tokens (first-fit
decreasing, none split across rows); next-token loss on every token of every
document, because this is a language model of the corpus, not an SFT run (the
template's tokens are predictable and soon cost next to nothing);
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices) with linear warmup and
cosine decay; fp32; seeded model init and data order, so one seed gives the
same weights on the same machine. (Numbers for the "demo" base; the
countdown base's are in grpo/bases/countdown.py.)

Shapes: B rows per step, T = seq_len tokens per row, V vocabulary.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from grpo.bases.addition import BuildConfig, build_corpus
from grpo.bases.common import EOS, TAGS, Log
from grpo.bases.countdown import CountdownBuildConfig, countdown_corpus_records
from grpo.bases.countdown_demo import CountdownDemoConfig, demo_countdown_records
from model.tokenizer import Tokenizer, train_bpe_tokenizer
from model.transformer import Transformer

AnyConfig = BuildConfig | CountdownBuildConfig | CountdownDemoConfig


def pack_rows(docs: Sequence[Sequence[int]], row_len: int, pad_id: int, window: int = 512):
    """Pack whole documents into rows of `row_len` ids: (rows (R, row_len), is_real (R, row_len)).

    First-fit decreasing within windows of `window` documents (deterministic).
    A row starts with a document, as a prompt does at inference; later
    documents in the row can attend to earlier ones, as in GPT pretraining.
    """
    rows: list[list[int]] = []
    for start in range(0, len(docs), window):
        chunk = sorted(docs[start : start + window], key=len, reverse=True)
        open_rows: list[list[int]] = []
        for ids in chunk:
            if len(ids) > row_len:
                raise ValueError(f"a document of {len(ids)} tokens exceeds the row of {row_len}")
            for row in open_rows:
                if len(row) + len(ids) <= row_len:
                    row.extend(ids)
                    break
            else:
                open_rows.append(list(ids))
        rows.extend(open_rows)
    out = torch.full((len(rows), row_len), pad_id, dtype=torch.long)
    real = torch.zeros(len(rows), row_len, dtype=torch.bool)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
        real[i, : len(row)] = True
    return out, real


def train_tokenizer(corpus: Sequence[str], config: AnyConfig) -> Tokenizer:
    return train_bpe_tokenizer(
        corpus[: config.tokenizer_docs], config.vocab_size, special_tokens=(EOS,),
        atomic_strings=TAGS,
    )  # fmt: skip


def lr_at(step: int, config: AnyConfig) -> float:
    """Linear warmup to lr, then cosine to lr * min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def corpus_for(config: AnyConfig) -> list[str]:
    """The pretraining documents of a build: addition, or one of the two countdown corpora."""
    if isinstance(config, CountdownDemoConfig):
        records = demo_countdown_records(config.num_docs, config.seed, config)
        return [text for _, _, text in records]
    if config.task == "countdown":
        records = countdown_corpus_records(config.num_docs, config.seed, config)
        return [text for _, _, text in records]
    return build_corpus(config.num_docs, config.seed, config)


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """The device a build runs on: "auto" is cuda when available, else cpu.

    Anything but cpu, cuda, cuda:N (an existing N) or auto is a ValueError.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:  # torch's message for "gpu" lists every device type it knows
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: expected cpu, cuda, cuda:N or auto")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return dev


def pretrain(
    config: AnyConfig, log: Log = print, log_every: int = 50, device: str | torch.device = "cpu"
):
    """Corpus -> tokenizer -> packed rows -> trained model. Returns (model, tokenizer, stats).

    On CPU: fp32 throughout (the shipped addition base was built so, and the
    same seed reproduces it byte for byte). On CUDA: fp32 master weights and
    AdamW state, the forward under bf16 autocast (loss and RMSNorm in fp32),
    TF32 for what autocast leaves in fp32; not bitwise reproducible.
    """
    t0 = time.time()
    device = resolve_device(device)
    cuda = device.type == "cuda"
    corpus = corpus_for(config)
    tok = train_tokenizer(corpus, config)
    ids: list[list[int]] = []
    for i in range(0, len(corpus), 4096):  # chunked: Encoding objects are large
        ids.extend(tok.encode_batch(corpus[i : i + 4096]))
    del corpus
    rows, real = pack_rows(ids, config.seq_len + 1, tok.pad_id)
    n_tokens = sum(map(len, ids))
    del ids
    log(
        f"corpus: {config.num_docs} documents, {n_tokens} tokens, {len(rows)} rows of "
        f"{config.seq_len + 1} ({n_tokens / real.numel():.0%} filled); vocab {tok.vocab_size} "
        f"({time.time() - t0:.1f}s)"
    )

    torch.manual_seed(config.seed)
    cfg = config.model_config(tok.vocab_size, tok.eos_id)
    model = Transformer(cfg).init_weights(seed=config.seed).to(device)  # init on CPU: same seed
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}),
    )  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_step = config.batch_size * config.seq_len
    epochs = config.steps * config.batch_size / len(rows)
    log(
        f"model: {n_params / 1e6:.2f}M params; {config.steps} steps x {config.batch_size} rows x "
        f"{config.seq_len} = {config.steps * tokens_per_step / 1e6:.1f}M tokens "
        f"({epochs:.2f} epochs); "
        + (f"{device}, bf16 autocast" if cuda else f"{torch.get_num_threads()} threads")
    )
    rows, real = rows.to(device), real.to(device)  # no-ops on CPU
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or cuda

    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(rows), generator=g)
    cursor = 0
    start = time.time()
    # Summed on the device in float64 (== Python's sum of loss.item()), read at log
    # lines only: no host sync per step on CUDA.
    window_loss, window_n = torch.zeros((), dtype=torch.float64, device=device), 0
    loss_history: list[tuple[int, float]] = []
    try:
        for step in range(config.steps):
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(rows), generator=g), 0
            idx = order[cursor : cursor + config.batch_size].to(device)
            cursor += config.batch_size
            batch, mask = rows[idx], real[idx]
            inputs = batch[:, :-1]  # (B, T)
            targets = batch[:, 1:].masked_fill(~mask[:, 1:], -100)  # (B, T), padding ignored
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            with autocast:
                logits = model(inputs)  # (B, T, V); padding sits at row ends: causality hides it
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            window_loss += loss.detach().double()
            window_n += 1
            if (step + 1) % log_every == 0 or step + 1 == config.steps:
                elapsed = time.time() - start
                rate = (step + 1) * tokens_per_step / elapsed
                eta = elapsed / (step + 1) * (config.steps - step - 1)
                mean = window_loss.item() / window_n
                loss_history.append((step + 1, round(mean, 4)))
                log(
                    f"step {step + 1:5d}/{config.steps}  loss {mean:.4f}  "
                    f"lr {lr_at(step, config):.2e}  {rate:,.0f} tok/s  elapsed {elapsed:5.0f}s  "
                    f"eta {eta:5.0f}s"
                )
                window_loss.zero_()
                window_n = 0
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    model.eval()
    if cuda:
        torch.cuda.synchronize(device)
    model = model.cpu()  # the checkpoint is written from CPU tensors, fp32
    stats = {
        "params": n_params,
        "corpus_tokens": n_tokens,
        "train_seconds": round(time.time() - start, 1),
        "total_seconds": round(time.time() - t0, 1),
        "tokens_per_second": round(config.steps * tokens_per_step / (time.time() - start)),
        "loss_history": loss_history,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
    }
    return model, tok, stats
