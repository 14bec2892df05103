"""The tiny from-scratch base model that `train_zero.py` (no arguments) starts from.

R1-Zero needs a *base* model: one pretrained on text, not fine-tuned to follow
a format. This module builds one for 3-4 digit addition in about ten minutes
of a 2-core CPU, ships it (assets/demo-base/), caches it, and measures it:

    python -m grpo.demo build        # THE command that produced assets/demo-base/
    python -m grpo.demo inspect      # modes, per-mode accuracy, format rate of the base
    python -m grpo.demo build --out /tmp/b --steps 100 --docs 5000   # a quick, weaker one

    from grpo.demo import TEMPLATE, ensure_demo_base
    path = ensure_demo_base()        # shipped copy if valid, else .cache/, else build

Template: "r1zero". The prompt ends with "Assistant:" and the model must open
<think> itself, as in the paper. Measured on 500 held-out problems (numbers
in assets/README.md): greedy decoding gives a bare <answer> block every time
(format rate 0, accuracy ~0), while sampling at temperature 1 opens <think> in
~31% of completions and writes the column-by-column work in ~16%, which is
right ~91% of the time. So a group of 8 usually holds one careful, right
answer among direct, wrong ones: the signal GRPO amplifies. With
"r1zero_think" the prompt itself would open <think>, and the format question
(does the model choose to think?) would be settled before RL starts.

The corpus (`build_corpus`), stated plainly. Every document ends with
<|endoftext|>; problems come from the task's train stream
(`get_task("addition").train_example(i)`), so held-out problems never occur.

    50%  R1-Zero transcripts: the exact prompt the trainer sends
         (`task.prompt(example)`), then one of
           62%  " <answer>c</answer>"                      direct answer
           25%  " <think></think> <answer>c</answer>"      empty thinking, then the answer
            8%  " <think> WORK </think> <answer>c</answer>" careful work
            5%  " c"                                        a bare number, no tags
    50%  worked examples, no template and no tags, as in a textbook:
           "What is a + b? Column by column: WORK. The answer is c."

WORK writes the operands aligned (zero-padded to one width), then adds column
by column from the right: the two digits, the carry in, their sum, and the
partial result so far, which grows by one digit to the left each step. A final
carry gets its own step, so the answer is a copy of the last partial result,
never a reassembly of digits written in reverse (that design gave wrong final
answers in 45 of 45 long samples; R1ZERO.md section 7):

    What is 3457 + 812? Column by column: 3457 + 0812: 7+2+0=9:9, 5+1+0=6:69,
        4+8+0=12:269, 3+0+1=4:4269. The answer is 4269.
    ... User: What is 951 + 80. Assistant: <think> 951 + 080: 1+0+0=1:1,
        5+8+0=13:31, 9+0+1=10:031, 0+0+1=1:1031 </think> <answer>1031</answer>

Two details decide whether the skill learned from the worked examples shows
up in the transcripts (measured in pilot builds; tests pin both):
  - The work starts as many tokens after the question in both contexts
    ("? Column by column: " and ". Assistant: <think> " are 6 tokens each). A
    model this small looks digits up by relative position: with the work 2
    tokens after the question in worked examples, transcript scratchpads copied
    the wrong digits ~97% of the time while worked examples were ~100% right.
  - The aligned first line. Without it, work was right ~85% of the time (far
    lookups into the shorter operand, and when to stop, failed); with it, ~99%.

So the base model has learned the elementary steps and can write careful work,
but under the R1-Zero template it usually answers directly, which a model
this small gets wrong on nearly every 3-4 digit problem, and it does not
reliably use the <think>/<answer> format. `inspect` measures exactly that.

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
same weights on the same machine.

The checkpoint folder has Hugging Face layout (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json) plus
manifest.json: the build parameters, training stats and the sha256 of every
file. `ensure_demo_base` rebuilds a folder whose parameters differ from the
current `BuildConfig` (stale) or whose files are missing or do not match their
hashes (corrupt), and logs why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from grpo.rewards import check_format
from grpo.tasks import get_task
from model.checkpoint import fsync_dir, load_pretrained, save_pretrained, write_json_atomic
from model.config import ModelConfig
from model.generate import generate
from model.tokenizer import Tokenizer, train_bpe_tokenizer
from model.transformer import Transformer

TEMPLATE = "r1zero"  # see the module docstring for why not "r1zero_think"
EOS = "<|endoftext|>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO_ROOT / "assets" / "demo-base"
CACHE_DIR = REPO_ROOT / ".cache" / "demo-base"
CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "generation_config.json",
)  # fmt: skip
MANIFEST = "manifest.json"
# Bump when the corpus generator or the training loop changes what a build produces.
BUILD_VERSION = 1

TRANSCRIPT_MODES = ("answer", "empty_think", "scratchpad", "number")
MODES = (*TRANSCRIPT_MODES, "other")  # what `classify_completion` can return

Log = Callable[[str], None]

__all__ = [
    "DEFAULT_CONFIG", "EOS", "MODES", "TAGS", "TEMPLATE", "TRANSCRIPT_MODES", "BuildConfig",
    "build_base", "build_corpus", "classify_completion", "column_steps", "corpus_records",
    "corpus_task", "ensure_demo_base", "format_report", "inspect_base", "measure", "pack_rows",
    "pretrain", "scratchpad", "transcript_completion", "validate_base", "worked_example",
]  # fmt: skip


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the weights of a build (all of it goes into the manifest)."""

    seed: int = 0  # corpus, tokenizer sample, model init and data order
    num_docs: int = 70_000  # documents in the corpus
    transcript_share: float = 0.5  # R1-Zero transcripts; the rest are worked examples
    answer_share: float = 0.62  # within transcripts: " <answer>c</answer>"
    empty_think_share: float = 0.25  # " <think></think> <answer>c</answer>"
    scratchpad_share: float = 0.08  # " <think> WORK </think> <answer>c</answer>"
    number_share: float = 0.05  # " c"
    tokenizer_docs: int = 2_000  # corpus sample the BPE merges are learned from
    vocab_size: int = 512  # BPE target; the corpus saturates below it (the real V is smaller)
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 6
    num_kv_heads: int = 2
    head_dim: int = 32
    seq_len: int = 384  # tokens per packed row (plus one for the shifted target)
    batch_size: int = 16  # rows per step
    steps: int = 1000
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 60
    weight_decay: float = 0.1  # on matrices only
    grad_clip: float = 1.0
    version: int = BUILD_VERSION

    def __post_init__(self) -> None:
        shares = [getattr(self, f"{m}_share") for m in TRANSCRIPT_MODES]
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"transcript mode shares must be >= 0 and sum to 1, got {shares}")
        if not 0.0 <= self.transcript_share <= 1.0:
            raise ValueError(f"transcript_share must be in [0, 1], got {self.transcript_share}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return ModelConfig(
            model_type="llama", vocab_size=vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_layers=self.num_layers,
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
            max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=eos_id,
            pad_token_id=eos_id,
        )  # fmt: skip


DEFAULT_CONFIG = BuildConfig()


# ----------------------------------------------------------------------------- corpus
def column_steps(a: int, b: int) -> list[str]:
    """Column addition of a + b from the right: ["x+y+c=s:partial", ...].

    The last partial result is str(a + b): a final carry gets its own step.
    """
    ra, rb = str(a)[::-1], str(b)[::-1]
    steps, partial, carry, i = [], "", 0, 0
    while i < max(len(ra), len(rb)) or carry:
        x = int(ra[i]) if i < len(ra) else 0
        y = int(rb[i]) if i < len(rb) else 0
        s = x + y + carry
        partial = str(s % 10) + partial
        steps.append(f"{x}+{y}+{carry}={s}:{partial}")
        carry, i = s // 10, i + 1
    return steps


def scratchpad(a: int, b: int) -> str:
    """The careful work: the operands aligned (zero-padded to one width), then the columns.

    Every step then reads its digits from the aligned line just above, at
    positions that depend only on the width and the column, in the transcript
    and in the worked example alike.
    """
    width = max(len(str(a)), len(str(b)))
    return f"{a:0{width}d} + {b:0{width}d}: " + ", ".join(column_steps(a, b))


def transcript_completion(mode: str, a: int, b: int) -> str:
    """The text after "Assistant:" for one of TRANSCRIPT_MODES (EOS not included)."""
    c = a + b
    if mode == "answer":
        return f" <answer>{c}</answer>"
    if mode == "empty_think":
        return f" <think></think> <answer>{c}</answer>"
    if mode == "scratchpad":
        return f" <think> {scratchpad(a, b)} </think> <answer>{c}</answer>"
    if mode == "number":
        return f" {c}"
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(TRANSCRIPT_MODES)}")


def worked_example(a: int, b: int) -> str:
    """A textbook line: no template, no tags (EOS not included)."""
    # "? Column by column: " is as many tokens as ". Assistant: <think> ", so the
    # work starts at the same distance from the question as in a transcript.
    return f"What is {a} + {b}? Column by column: {scratchpad(a, b)}. The answer is {a + b}."


def corpus_task(seed: int = 0):
    """The addition task whose train stream the corpus draws from (and the trainer uses)."""
    return get_task("addition", seed=seed, template=TEMPLATE)


def corpus_records(num_docs: int, seed: int, config: BuildConfig = DEFAULT_CONFIG):
    """(kind, example, text) per document; kind is a transcript mode or "worked"."""
    task = corpus_task(seed)
    rng = random.Random(f"demo-corpus/{seed}")
    modes = list(TRANSCRIPT_MODES)
    weights = [getattr(config, f"{m}_share") for m in modes]
    records = []
    for i in range(num_docs):
        example = task.train_example(i)
        a, b = example["a"], example["b"]
        if rng.random() < config.transcript_share:
            kind = rng.choices(modes, weights)[0]
            text = task.prompt(example) + transcript_completion(kind, a, b)
        else:
            kind, text = "worked", worked_example(a, b)
        records.append((kind, example, text + EOS))
    return records


def build_corpus(num_docs: int, seed: int, config: BuildConfig = DEFAULT_CONFIG) -> list[str]:
    """The pretraining documents, a pure function of (num_docs, seed, mix in `config`)."""
    return [text for _, _, text in corpus_records(num_docs, seed, config)]


# ----------------------------------------------------------------------------- modes
_STEP = re.compile(r"\d\+\d\+\d=\d+:\d+")


def classify_completion(completion: str) -> str:
    """Which mode a completion (text after the prompt) is in: one of MODES.

    answer: starts with <answer>; empty_think: "<think></think>" then more;
    scratchpad: a <think> block holding at least one column step; number: only
    digits (and end markers); other: anything else (truncated, malformed, ...).
    """
    text = completion.replace(EOS, " ").strip()
    if text.startswith("<answer>"):
        return "answer"
    if text.startswith("<think>"):
        end = text.find("</think>")
        if end < 0:
            return "other"
        inner = text[len("<think>") : end]
        if not inner.strip():
            return "empty_think"
        return "scratchpad" if _STEP.search(inner) else "other"
    if text.isdigit():
        return "number"
    return "other"


# ----------------------------------------------------------------------------- packing
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


# ----------------------------------------------------------------------------- pretraining
def train_tokenizer(corpus: Sequence[str], config: BuildConfig) -> Tokenizer:
    return train_bpe_tokenizer(
        corpus[: config.tokenizer_docs], config.vocab_size, special_tokens=(EOS,),
        atomic_strings=TAGS,
    )  # fmt: skip


def lr_at(step: int, config: BuildConfig) -> float:
    """Linear warmup to lr, then cosine to lr * min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def pretrain(config: BuildConfig, log: Log = print, log_every: int = 50):
    """Corpus -> tokenizer -> packed rows -> trained model. Returns (model, tokenizer, stats)."""
    t0 = time.time()
    corpus = build_corpus(config.num_docs, config.seed, config)
    tok = train_tokenizer(corpus, config)
    ids: list[list[int]] = []
    for i in range(0, len(corpus), 4096):  # chunked: Encoding objects are large
        ids.extend(tok.encode_batch(corpus[i : i + 4096]))
    rows, real = pack_rows(ids, config.seq_len + 1, tok.pad_id)
    n_tokens = sum(map(len, ids))
    log(
        f"corpus: {len(corpus)} documents, {n_tokens} tokens, {len(rows)} rows of "
        f"{config.seq_len + 1} ({n_tokens / real.numel():.0%} filled); vocab {tok.vocab_size} "
        f"({time.time() - t0:.1f}s)"
    )

    torch.manual_seed(config.seed)
    cfg = config.model_config(tok.vocab_size, tok.eos_id)
    model = Transformer(cfg).init_weights(seed=config.seed)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.95), eps=1e-8,
    )  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_step = config.batch_size * config.seq_len
    epochs = config.steps * config.batch_size / len(rows)
    log(
        f"model: {n_params / 1e6:.2f}M params; {config.steps} steps x {config.batch_size} rows x "
        f"{config.seq_len} = {config.steps * tokens_per_step / 1e6:.1f}M tokens "
        f"({epochs:.2f} epochs); {torch.get_num_threads()} threads"
    )

    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(rows), generator=g)
    cursor = 0
    start = time.time()
    window_loss, window_n = 0.0, 0
    loss_history: list[tuple[int, float]] = []
    for step in range(config.steps):
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(rows), generator=g), 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        batch, mask = rows[idx], real[idx]
        inputs = batch[:, :-1]  # (B, T)
        targets = batch[:, 1:].masked_fill(~mask[:, 1:], -100)  # (B, T), padding ignored
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        logits = model(inputs)  # (B, T, V); padding sits at row ends, so causality hides it
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        window_loss += loss.item()
        window_n += 1
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            elapsed = time.time() - start
            rate = (step + 1) * tokens_per_step / elapsed
            eta = elapsed / (step + 1) * (config.steps - step - 1)
            mean = window_loss / window_n
            loss_history.append((step + 1, round(mean, 4)))
            log(
                f"step {step + 1:5d}/{config.steps}  loss {mean:.4f}  lr {lr_at(step, config):.2e}"
                f"  {rate:,.0f} tok/s  elapsed {elapsed:5.0f}s  eta {eta:5.0f}s"
            )
            window_loss, window_n = 0.0, 0
    model.eval()
    stats = {
        "params": n_params,
        "corpus_tokens": n_tokens,
        "train_seconds": round(time.time() - start, 1),
        "total_seconds": round(time.time() - t0, 1),
        "tokens_per_second": round(config.steps * tokens_per_step / (time.time() - start)),
        "loss_history": loss_history,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return model, tok, stats


# ----------------------------------------------------------------------------- cache
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_base(
    out: str | Path, config: BuildConfig = DEFAULT_CONFIG, log: Log = print, log_every: int = 50
) -> Path:
    """Pretrain and write a checkpoint folder with a manifest; atomic (temp folder, rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model, tok, stats = pretrain(config, log, log_every)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        save_pretrained(model, tmp, tokenizer=tok)
        manifest = {
            "what": "R1-Zero demo base model (grpo/demo.py); rebuild: python -m grpo.demo build",
            "build": config.to_dict(),
            "stats": stats,
            "files": {name: sha256_file(tmp / name) for name in CHECKPOINT_FILES},
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        # mkdtemp/mkstemp create private modes; a cache or an asset is shared reading.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out} ({stats['total_seconds']:.0f}s)")
    return out


def validate_base(path: str | Path, config: BuildConfig = DEFAULT_CONFIG) -> str | None:
    """None if `path` holds a complete build of `config`; otherwise the reason it does not."""
    path = Path(path)
    if not path.is_dir():
        return f"{path} does not exist"
    mf = path / MANIFEST
    if not mf.is_file():
        return f"{mf} is missing"
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"{mf} is not valid JSON ({e})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"{mf} has no file list"
    built = manifest.get("build")
    want = config.to_dict()
    if built != want:
        changed = sorted(
            k for k in set(want) | set(built or {}) if (built or {}).get(k) != want.get(k)
        )
        detail = ", ".join(f"{k}: {(built or {}).get(k)!r} -> {want.get(k)!r}" for k in changed)
        return f"stale: build parameters changed ({detail})"
    for name in CHECKPOINT_FILES:
        f = path / name
        if not f.is_file():
            return f"corrupt: {name} is missing"
        want_hash = manifest["files"].get(name)
        if want_hash is None:
            return f"corrupt: {name} is not in the manifest"
        if sha256_file(f) != want_hash:
            return f"corrupt: {name} does not match its sha256 in the manifest"
    return None


def ensure_demo_base(
    path: str | Path | None = None, rebuild: bool = False, log: Log = print,
    config: BuildConfig = DEFAULT_CONFIG, log_every: int = 50,
) -> Path:  # fmt: skip
    """A folder holding a valid demo base model, building it if needed.

    With `path=None`: the shipped assets/demo-base/ if it validates, else the
    cache .cache/demo-base/ under the repository root (built or rebuilt there).
    With a path: that folder, rebuilt if missing, stale or corrupt.
    `rebuild=True` always builds (never over the shipped copy when path is None).
    """
    if path is None:
        if not rebuild:
            reason = validate_base(SHIPPED_DIR, config)
            if reason is None:
                return SHIPPED_DIR
            log(f"demo base: shipped copy not used: {reason}")
        path = CACHE_DIR
    path = Path(path)
    if not rebuild:
        reason = validate_base(path, config)
        if reason is None:
            return path
        log(f"demo base: building {path}: {reason}")
    else:
        log(f"demo base: rebuilding {path} (asked to)")
    return build_base(path, config, log, log_every)


# ----------------------------------------------------------------------------- inspect
def _complete(model, tok, prompts, max_new_tokens, samples, temperature, seed, batch_size):
    """Completions (text, token count) for each prompt x sample, in row order."""
    out: list[tuple[str, int]] = []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        res = generate(
            model, chunk, max_new_tokens=max_new_tokens, num_samples=samples,
            temperature=temperature, eos_ids=tok.eos_ids, stop_strings=["</answer>"],
            tokenizer=tok, pad_id=tok.pad_id, generator=gen,
        )  # fmt: skip
        for ids in res.completions():
            out.append((tok.decode(ids), len(ids)))
    return out


def measure(
    task, examples, completions: Sequence[tuple[str, int]], samples: int, prefix: str = ""
) -> dict[str, Any]:
    """Mode shares, per-mode accuracy, accuracy, format rate and length of completions.

    `completions` holds `samples` consecutive rows per example; `prefix` is text
    that was forced after the prompt (it counts as part of the completion).
    """
    counts = dict.fromkeys(MODES, 0)
    right = dict.fromkeys(MODES, 0)
    acc = fmt = length = 0.0
    for j, (text, n) in enumerate(completions):
        example = examples[j // samples]
        full = prefix + text
        score = task.score(full, example)
        mode = classify_completion(full)
        counts[mode] += 1
        right[mode] += int(score["accuracy"])
        acc += score["accuracy"]
        fmt += float(check_format(full, task.primer))
        length += n
    total = max(1, len(completions))
    return {
        "n": len(completions),
        "accuracy": acc / total,
        "format_rate": fmt / total,
        "mean_length": length / total,
        "mode_share": {m: counts[m] / total for m in MODES},
        "mode_accuracy": {m: (right[m] / counts[m] if counts[m] else None) for m in MODES},
    }


def inspect_base(
    path: str | Path, n: int = 500, samples: int = 4, max_new_tokens: int = 128, seed: int = 0,
    batch_size: int = 128,
) -> dict[str, Any]:  # fmt: skip
    """Measure the base on `n` held-out problems with the demo's template.

    greedy: temperature 0, one completion each (what eval sees at step 0).
    sampled: temperature 1, `samples` each (what GRPO's rollouts see).
    forced_scratchpad: greedy after forcing " <think> " (the scratchpad's own
    start), i.e. how often the careful mode is right when it is used; the 3
    forced tokens count for the score, not for the length.
    Lengths are generated tokens, the EOS or the "</answer>" that ended a
    completion included.
    """
    model = load_pretrained(path, dtype=torch.float32)
    tok = Tokenizer.from_dir(path)
    task = corpus_task()
    examples = task.heldout(n)
    prompts = [tok.encode(task.prompt(ex)) for ex in examples]
    forced = " <think> "
    forced_prompts = [tok.encode(task.prompt(ex) + forced) for ex in examples]
    t0 = time.time()
    greedy = _complete(model, tok, prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    sampled = _complete(model, tok, prompts, max_new_tokens, samples, 1.0, seed, batch_size)
    scratch = _complete(model, tok, forced_prompts, max_new_tokens, 1, 0.0, seed, batch_size)
    first: dict[str, str] = {}  # the first sampled completion in each mode
    for text, _ in sampled:
        first.setdefault(classify_completion(text), text)
    return {
        "base": str(path),
        "template": TEMPLATE,
        "heldout": n,
        "prompt_tokens": sum(map(len, prompts)) / len(prompts),
        "greedy": measure(task, examples, greedy, 1),
        "sampled": measure(task, examples, sampled, samples) | {"temperature": 1.0},
        "forced_scratchpad": measure(task, examples, scratch, 1, prefix=forced),
        "examples": {
            "greedy": greedy[0][0],
            **{f"sampled {m}": first[m] for m in MODES if m in first},
            "forced_scratchpad": forced + scratch[0][0],
        },
        "seconds": round(time.time() - t0, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    """The `inspect` report as a table: one column per decoding, one row per measure."""
    runs = ("greedy", "sampled", "forced_scratchpad")
    heads = ("greedy (T=0)", "sampled (T=1)", 'forced " <think> "')

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    def row(label: str, cells: Sequence[str]) -> str:
        return f"{label:22s}" + "".join(f"{c:>22s}" for c in cells)

    lines = [
        f"base {report['base']}, template {report['template']}, {report['heldout']} held-out "
        f"problems, prompt {report['prompt_tokens']:.1f} tokens",
        row("", heads),
        row("completions", [str(report[r]["n"]) for r in runs]),
        row("accuracy", [pct(report[r]["accuracy"]) for r in runs]),
        row("format rate", [pct(report[r]["format_rate"]) for r in runs]),
        row("mean length (tokens)", [f"{report[r]['mean_length']:.1f}" for r in runs]),
        "mode: share (accuracy within the mode)",
    ]
    for m in MODES:
        cells = [
            f"{pct(report[r]['mode_share'][m])} ({pct(report[r]['mode_accuracy'][m])})"
            for r in runs
        ]
        lines.append(row(f"  {m}", cells))
    for key, value in report["examples"].items():
        lines.append(f"example {key}: {value!r}")
    lines.append(f"({report['seconds']}s)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grpo.demo", description="Build or inspect the demo's base model."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="pretrain the base model (the shipped one: no options)")
    b.add_argument("--out", default=str(SHIPPED_DIR), help="output folder (default: %(default)s)")
    b.add_argument("--seed", type=int, default=DEFAULT_CONFIG.seed, help="build seed")
    b.add_argument("--steps", type=int, default=DEFAULT_CONFIG.steps, help="optimizer steps")
    b.add_argument("--docs", type=int, default=DEFAULT_CONFIG.num_docs, help="corpus documents")
    b.add_argument("--log-every", type=int, default=50, help="progress line every N steps")
    i = sub.add_parser("inspect", help="measure the base: modes, accuracies, format rate")
    i.add_argument("--base", default=None, help="checkpoint folder (default: ensure_demo_base())")
    i.add_argument("--n", type=int, default=500, help="held-out problems")
    i.add_argument("--samples", type=int, default=4, help="temperature-1 samples per problem")
    i.add_argument("--max-new-tokens", type=int, default=128, help="completion budget")
    i.add_argument("--json", default=None, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "build":
        config = replace(DEFAULT_CONFIG, seed=args.seed, steps=args.steps, num_docs=args.docs)
        log = lambda s: print(s, flush=True)
        log(f"build config: {json.dumps(config.to_dict())}")
        build_base(args.out, config, log, args.log_every)
        return 0
    base = args.base or ensure_demo_base()
    report = inspect_base(base, args.n, args.samples, args.max_new_tokens)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

