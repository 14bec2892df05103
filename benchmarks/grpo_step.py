"""One full GRPO step, ours against TRL's `GRPOTrainer`, on the same tiny Qwen2 checkpoint.

    pip install -e ".[bench]"                      # TRL: only this benchmark needs it
    python benchmarks/grpo_step.py                 # CPU, both rows, 1 warm-up + 5 timed steps
    python benchmarks/grpo_step.py --threads 2 --steps 3 --rows r1zero
    python benchmarks/grpo_step.py --device cuda   # on a CUDA machine (bf16 autocast)

A step is everything between two optimizer updates: sampling 16 prompts x 8
completions (G = 8, 128 completions, at most 64 new tokens, temperature 1),
the rewards, the group advantages, the loss, the backward and one AdamW step.
Ours is `grpo.trainer.Trainer.train_step()`, the call `python train_zero.py`
makes once per step; TRL's is one optimizer step of `GRPOTrainer.train()`,
timed from one `on_step_end` callback to the next. Each side runs in a child
process of its own, ours first, with the same `torch.set_num_threads`; the
first `--warmup` steps are discarded and the median of the next `--steps` is
reported. Two rows: `short` (the bare addition question, ~13 tokens) and
`r1zero` (the same questions in the R1-Zero template, ~96 tokens: exactly the
prompts `python train_zero.py` trains on). The R1-Zero row runs last, so its
`ratio TRL / ours: X.XXx` is the last such line printed (the headline).

The checkpoint: a random-weight `Qwen2ForCausalLM` (hidden 192, 4 layers, 6
heads, 2 KV heads, MLP 512, qkv bias, tied embeddings: 1.66M parameters, the
shape of our demo base) with the demo base's tokenizer (`assets/demo-base`,
vocabulary 414), written once with `save_pretrained` to a temporary folder and
loaded by both sides from there. TRL gets the tokenizer as
`PreTrainedTokenizerFast` (same EOS/pad ids as ours, left padding); the prompt
token ids of both sides are asserted identical before anything is timed.

Aligned (ours / TRL):
- data: the same questions in the same order (our train stream, `rl_example`;
  TRL with `shuffle_dataset=False`), 16 per step, `num_generations=8`,
  `per_device_train_batch_size=128` (TRL counts completions),
  `gradient_accumulation_steps=1`, `num_iterations=1` / `mu=1`: one optimizer
  step per GRPO step and no extra old-log-prob pass on either side;
- sampling: each side's own generation (`model.generate` with a KV cache / HF
  `generate`), temperature 1, no top-p/top-k, 64 new tokens, stopping at EOS
  only (see below); fp32 on CPU, bf16 autocast with fp32 weights on CUDA;
- reward: our addition task's `task.score` on both sides (TRL gets two reward
  functions, format and accuracy, with `reward_weights=[0.1, 1.0]`, the same
  weighted sum); truncated completions are scored as they are (ours
  `truncated="keep"`, TRL's default);
- advantages: (r - group mean) / (unbiased group std + 1e-4)
  (`scale_rewards="group"`, our `group_advantages`);
- loss: token mean (`aggregation="dapo"` / `loss_type="dapo"`), clip 0.2 both
  ways, beta = 0 (no reference model on either side), no entropy bonus;
- update: at most 128 rows per forward/backward (TRL: all 128 in one pass;
  ours `micro_batch_size=128`, whatever cuts our trainer then makes within
  that cap are part of our step), gradient clipping at 1.0, AdamW lr 1e-4,
  betas (0.9, 0.99), no weight decay, constant learning rate (fused AdamW on
  CUDA only, as in our trainer); no gradient checkpointing;
- nothing else in the timed loop: TRL with `report_to="none"`, no logging
  step inside the run, `save_strategy="no"`, no evaluation; ours calls
  `train_step()` directly (evaluation and checkpoints live in the training
  loop, not in `train_step`), with `--out` in a temporary folder.

Not aligned (what still differs):
- our real runs also stop a completion at the stop string "</answer>"; TRL's
  transformers path has no stop strings, so the stop string is switched off
  here and both stop at EOS only. With random weights a row meets EOS about
  once in 414 tokens, so most completions run the full 64 tokens on both sides;
  the mean completion lengths are printed, with a note if they differ by more
  than 15%;
- the random streams differ, so the completions differ token for token;
- ours still writes its metrics.jsonl/timings.jsonl lines every step (its
  real step does); TRL accumulates its metrics in memory;
- each side computes its own extras: ours the per-token entropy (fused
  kernel) and its step metrics; TRL its entropy (via `fused_lm_head`),
  clip-ratio and length statistics;
- the implementations differ in everything the benchmark measures: our
  sampler (static KV cache, one prompt prefill per group, compaction of
  finished rows) and our update (prompt shared across a group's rows, fused
  log-prob kernel) against HF generate and a full-sequence forward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = ("short", "r1zero")  # run order: the R1-Zero row last (its ratio line is the headline)
TEMPLATE = {"short": "bench_bare", "r1zero": "r1zero"}
ROW_NAME = {"short": "short prompts (bare question)", "r1zero": "R1-Zero prompts (demo)"}
TOKENIZER_DIR = ROOT / "assets" / "demo-base"
PROMPTS, GROUP, NEW_TOKENS, LR = 16, 8, 64, 1e-4
FORMAT_WEIGHT, ACCURACY_WEIGHT = 0.1, 1.0
QWEN2_SHAPE = dict(
    hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=6,
    num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=1024,
    rms_norm_eps=1e-6, rope_theta=10000.0,
)  # fmt: skip
MISSING_TRL = 'TRL is not installed: pip install -e ".[bench]"'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from grpo.run.config import OneLineErrorParser

    ap = OneLineErrorParser(
        prog="grpo_step.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side (median taken)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first, per side")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads for both sides (0: torch's default)")  # fmt: skip
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="comma-separated: short, r1zero (always run short first)")  # fmt: skip
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="auto: float32 on CPU, bf16 autocast (fp32 weights) on CUDA")  # fmt: skip
    # Internal: one side of one row in a child process.
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads < 0:
        ap.error(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        ap.error(f"--rows must name one or both of {', '.join(ROWS)}, got {args.rows!r}")
    args.rows = [r for r in ROWS if r in rows]
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    if args.worker and not (args.row and args.ckpt and args.result):
        ap.error("--worker needs --row, --ckpt and --result")
    return args


# ---------------------------------------------------------------------- shared helpers
def register_template() -> None:
    """The short row's template: the bare question (a benchmark-only registry entry)."""
    from grpo.tasks.templates import TEMPLATES, Template

    TEMPLATES.setdefault("bench_bare", Template("{question}", ""))


def make_task(row: str):
    from grpo.tasks import get_task

    register_template()
    return get_task("addition", seed=0, template=TEMPLATE[row], format_weight=FORMAT_WEIGHT,
                    accuracy_weight=ACCURACY_WEIGHT)  # fmt: skip


def step_examples(task, n_steps: int) -> list[list[dict]]:
    """The questions of each step: our trainer's train stream, in order (none is skipped:
    every prompt fits the 1024-position context beside 64 new tokens)."""
    from grpo.run.context import rl_example

    return [[rl_example(task, s * PROMPTS + i) for i in range(PROMPTS)] for s in range(n_steps)]


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def hf_tokenizer(ckpt: str):
    from grpo.run.imports import import_transformers
    from model import Tokenizer

    PreTrainedTokenizerFast = import_transformers().PreTrainedTokenizerFast

    ours = Tokenizer.from_dir(ckpt)
    eos, pad = ours.tok.id_to_token(ours.eos_id), ours.tok.id_to_token(ours.pad_id)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(ckpt) / "tokenizer.json"),
                                  eos_token=eos, pad_token=pad, padding_side="left")  # fmt: skip
    assert (tok.eos_token_id, tok.pad_token_id) == (ours.eos_id, ours.pad_id)
    return tok, ours


def build_checkpoint(path: Path) -> int:
    """Random-weight Qwen2 of the demo base's shape, with the demo base's tokenizer."""
    import torch

    from grpo.run.imports import import_transformers
    from model import Tokenizer

    tf = import_transformers()
    tok = Tokenizer.from_dir(TOKENIZER_DIR)
    cfg = tf.Qwen2Config(**QWEN2_SHAPE, vocab_size=tok.vocab_size, eos_token_id=tok.eos_id,
                         pad_token_id=tok.pad_id, bos_token_id=None)  # fmt: skip
    torch.manual_seed(0)
    # transformers' own init (normal, std 0.02): near-uniform next-token distributions,
    # so a row meets EOS about once in vocab_size tokens and most run the full budget.
    model = tf.Qwen2ForCausalLM(cfg)
    tf.utils.logging.disable_progress_bar()
    model.save_pretrained(path)
    tok.save(path)  # tokenizer.json, tokenizer_config.json, generation_config.json (EOS, pad)
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- the two sides
def run_ours(args: argparse.Namespace) -> dict:
    import torch

    from grpo.run.config import TrainConfig
    from grpo.trainer import Trainer

    register_template()
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            model=args.ckpt, task="addition", template=TEMPLATE[args.row],
            format_weight=FORMAT_WEIGHT, accuracy_weight=ACCURACY_WEIGHT,
            out=str(Path(out) / "run"), seed=0, device=args.device, dtype=args.dtype,
            steps=total, prompts_per_step=PROMPTS, group_size=GROUP,
            max_new_tokens=NEW_TOKENS, temperature=1.0, stop="", truncated="keep",
            aggregation="dapo", beta=0.0, scale_by_std=True, adv_eps=1e-4, mu=1,
            mini_batches=1, micro_batch_size=PROMPTS * GROUP, lr=LR, min_lr_ratio=1.0,
            warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.99,
            grad_clip=1.0, eval_every=10**6, eval_n=1, samples_per_eval=0, save_every=0,
            log_every=10**6, plot=False, threads=args.threads,
        )  # fmt: skip
        trainer = Trainer(cfg, log=lambda *a, **k: None)
        times, lengths, rollout = [], [], []
        try:
            for _ in range(total):
                sync(args.device)
                t0 = time.perf_counter()
                row = trainer.train_step()
                sync(args.device)
                times.append(time.perf_counter() - t0)
                lengths.append(row["completion_len_mean"])
                rollout.append(row["_timing"]["rollout_s"])
                # The questions TRL gets are the train stream's in order: none may be skipped.
                if row["data_pos"] != PROMPTS * row["step"] or row.get("skipped_overlong"):
                    raise SystemExit(f"FAIL: step {row['step']} skipped questions")
        finally:
            trainer.close()
    return {"times": times, "lengths": lengths, "rollout": rollout,
            "threads": torch.get_num_threads()}  # fmt: skip


def run_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    total = args.warmup + args.steps
    task = make_task(args.row)
    steps = step_examples(task, total)
    tok, ours = hf_tokenizer(args.ckpt)
    flat = [ex for s in steps for ex in s]
    prompts = [task.prompt(ex) for ex in flat]
    # TRL tokenizes plain-text prompts as processing_class(text=prompts)["input_ids"].
    if tok(text=prompts)["input_ids"] != ours.encode_batch(prompts):
        raise SystemExit("FAIL: TRL's tokenizer and ours give different prompt token ids")
    data = Dataset.from_list([
        {"prompt": p, "question": ex["question"], "a": ex["a"], "b": ex["b"],
         "target": ex["target"]} for p, ex in zip(prompts, flat)
    ])  # fmt: skip

    seen_prompts: list[list[str]] = []
    lengths: list[float] = []
    cache: dict = {}

    def scores(prompts, completions, completion_ids, question, a, b, target, **_kw):
        # Both reward functions get the same lists: score each completion once.
        if cache.get("ids") is not completion_ids:
            exs = [{"question": q, "a": x, "b": y, "target": t}
                   for q, x, y, t in zip(question, a, b, target)]  # fmt: skip
            cache["ids"] = completion_ids
            cache["scores"] = [task.score(c, ex) for c, ex in zip(completions, exs)]
            seen_prompts.append(list(dict.fromkeys(prompts)))
            lengths.append(sum(len(c) for c in completion_ids) / len(completion_ids))
        return cache["scores"]

    def format_reward(**kw):
        return [s["format"] for s in scores(**kw)]

    def accuracy_reward(**kw):
        return [s["accuracy"] for s in scores(**kw)]

    ends: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args_, state, control, **kw):
            if not ends:
                sync(args.device)
                ends.append(time.perf_counter())  # the start of the first step

        def on_step_end(self, args_, state, control, **kw):
            sync(args.device)
            ends.append(time.perf_counter())

    cuda = args.device == "cuda"
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, report_to="none", logging_steps=10**6, save_strategy="no",
            eval_strategy="no", disable_tqdm=True, max_steps=total, seed=0,
            use_cpu=not cuda, bf16=args.dtype == "bfloat16", fp16=False,
            gradient_checkpointing=False, per_device_train_batch_size=PROMPTS * GROUP,
            gradient_accumulation_steps=1, num_generations=GROUP, num_iterations=1,
            max_completion_length=NEW_TOKENS, temperature=1.0, top_p=1.0, top_k=0,
            shuffle_dataset=False, beta=0.0, loss_type="dapo", scale_rewards="group",
            epsilon=0.2, reward_weights=[FORMAT_WEIGHT, ACCURACY_WEIGHT],
            learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.99, max_grad_norm=1.0,
            optim="adamw_torch_fused" if cuda else "adamw_torch",
            model_init_kwargs={"dtype": "float32"}, dataloader_num_workers=0,
            dataloader_pin_memory=False, save_only_model=True,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=args.ckpt, reward_funcs=[format_reward, accuracy_reward], args=config,
            train_dataset=data, processing_class=tok, callbacks=[StepTimer()],
        )  # fmt: skip
        generate, gen_times = trainer._generate, []

        def timed_generate(prompts):  # measures only: the call itself is TRL's
            sync(args.device)
            t0 = time.perf_counter()
            result = generate(prompts)
            sync(args.device)
            gen_times.append(time.perf_counter() - t0)
            return result

        trainer._generate = timed_generate
        trainer.train()
    expected = [[task.prompt(ex) for ex in s] for s in steps]
    if seen_prompts != expected:
        raise SystemExit("FAIL: TRL did not see the same prompts, in the same order, as ours")
    times = [b - a for a, b in zip(ends, ends[1:])]
    if len(times) != total:
        raise SystemExit(f"FAIL: timed {len(times)} TRL steps, expected {total}")
    return {"times": times, "lengths": lengths, "rollout": gen_times,
            "threads": torch.get_num_threads()}  # fmt: skip


def worker(args: argparse.Namespace) -> None:
    from grpo.run.imports import import_transformers

    import_transformers()  # before TRL or the model code import it: see grpo/run/imports.py
    result = run_ours(args) if args.worker == "ours" else run_trl(args)
    Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------------- the parent
def child(side: str, row: str, ckpt: Path, args: argparse.Namespace, tmp: Path) -> dict:
    result = tmp / f"{side}-{row}.json"
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", side, "--row", row,
        "--ckpt", str(ckpt), "--result", str(result), "--device", args.device,
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--dtype", args.dtype,
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not result.is_file():
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-25:])
        raise SystemExit(f"{side} ({row} row) failed with exit status {p.returncode}:\n{tail}")
    return json.loads(result.read_text())


def versions(args: argparse.Namespace) -> list[str]:
    from importlib.metadata import version

    import torch

    if args.device == "cuda":
        dev = torch.cuda.get_device_name()
    else:
        dev = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    dev = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    v = {k: version(k) for k in ("transformers", "trl", "accelerate")}
    return [
        f"python {platform.python_version()}  torch {torch.__version__}  transformers "
        f"{v['transformers']}  trl {v['trl']}  accelerate {v['accelerate']}",
        f"device: {args.device} ({dev}), {args.threads} threads, dtype {args.dtype}"
        + ("" if args.device == "cpu" else " autocast, fp32 weights")
        + (f"; r1zero at {commit}" if commit else "")
        + (f"; load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes: a run takes minutes
    if args.worker:
        worker(args)
        return
    from grpo.run.imports import UnsupportedTransformersError, import_transformers

    try:
        import_transformers()  # TRL imports it: see grpo/run/imports.py
        import trl  # noqa: F401  (only this benchmark needs it; never a runtime dependency)
    except UnsupportedTransformersError as e:
        print(f"grpo_step.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except ImportError:
        print(MISSING_TRL, file=sys.stderr)
        raise SystemExit(2) from None
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("grpo_step.py: error: --device cuda: CUDA is not available here")
    if not args.threads:
        args.threads = torch.get_num_threads()  # pinned, so both children use the same count

    from model import Tokenizer

    for line in versions(args):
        print(line)
    print(f"step: {PROMPTS} prompts x G={GROUP} = {PROMPTS * GROUP} completions, <= "
          f"{NEW_TOKENS} new tokens, T=1, stop at EOS only, token-mean (dapo) loss, beta 0, "
          f"1 AdamW step (lr {LR:g}); ours micro_batch_size {PROMPTS * GROUP}")  # fmt: skip
    print(f"timing: {args.warmup} warm-up + {args.steps} timed steps per side, median; each "
          "side in its own child process, ours first")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = tmp / "qwen2-tiny"
        n_params = build_checkpoint(ckpt)
        tok = Tokenizer.from_dir(ckpt)
        print(
            f"model: random-weight Qwen2ForCausalLM, {n_params / 1e6:.2f}M parameters "
            "(hidden 192, 4 layers, 6 heads, 2 KV heads, MLP 512, qkv bias, tied), vocab "
            f"{tok.vocab_size} (assets/demo-base tokenizer), saved once, loaded by both"
        )
        for row in args.rows:
            task = make_task(row)
            steps = step_examples(task, args.warmup + args.steps)
            lens = [len(tok.encode(task.prompt(ex))) for s in steps for ex in s]
            print()
            print(f"== {ROW_NAME[row]}: e.g. {task.prompt(steps[0][0])[-40:]!r}")
            ours = child("ours", row, ckpt, args, tmp)
            theirs = child("trl", row, ckpt, args, tmp)  # asserts the prompt ids match ours
            print(f"prompt tokens: mean {statistics.mean(lens):.1f} (min {min(lens)}, max "
                  f"{max(lens)}); the same token ids on both sides (asserted)")  # fmt: skip
            w = args.warmup
            t_ours = statistics.median(ours["times"][w:])
            t_trl = statistics.median(theirs["times"][w:])
            l_ours = statistics.mean(ours["lengths"][w:])
            l_trl = statistics.mean(theirs["lengths"][w:])
            print(f"completion length mean: ours {l_ours:.1f}, TRL {l_trl:.1f} tokens")
            if abs(l_ours - l_trl) > 0.15 * max(l_ours, l_trl):
                print("note: the completion lengths differ by more than 15%: the two sides did "
                      "different amounts of work")  # fmt: skip
            print(f"seconds/step median: ours {t_ours:.3f}, TRL {t_trl:.3f}  (ours "
                  f"{' '.join(f'{t:.2f}' for t in ours['times'])}; TRL "
                  f"{' '.join(f'{t:.2f}' for t in theirs['times'])}; first "
                  f"{w} discarded)")  # fmt: skip
            g_ours = statistics.median(ours["rollout"][w:])
            g_trl = statistics.median(theirs["rollout"][w:])
            print(f"  of which sampling, median: ours {g_ours:.3f} (rollout: generate, decode, "
                  f"score), TRL {g_trl:.3f} (_generate: tokenize, generate, decode)")  # fmt: skip
            if ours["threads"] != theirs["threads"]:
                print(f"note: thread counts differ: ours {ours['threads']}, TRL "
                      f"{theirs['threads']}")  # fmt: skip
            print(f"ratio TRL / ours: {t_trl / t_ours:.2f}x")
            results.append((row, statistics.mean(lens), l_ours, l_trl, t_ours, t_trl))
    if hasattr(os, "getloadavg"):
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
              "CPUs (other processes competing for the cores make the times noisy)")  # fmt: skip
    print()
    print(
        "| prompts | prompt tokens | completion tokens, ours / TRL | ours s/step | TRL s/step "
        "| TRL / ours |"
    )
    print("|---|---|---|---|---|---|")
    for row, p, lo, lt, to, tt in results:
        print(f"| {ROW_NAME[row]} | {p:.0f} | {lo:.1f} / {lt:.1f} | {to:.3f} | {tt:.3f} "
              f"| {tt / to:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
