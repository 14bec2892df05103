"""Evaluate a checkpoint on held-out questions, with both kinds of test-time compute.

    python eval.py --model runs/addition-<time> --task addition --n 500
    python eval.py --model runs/addition-<time> --task addition --n 500 --samples 8

--model is a checkpoint folder, a run folder (its latest checkpoint is used)
or `demo` (the built-in base model). Reports pass@1 accuracy, format rate and
mean completion length (greedy unless --temperature is given); with
--samples k (sampling at --temperature, default 1.0): pass@k, maj@k
(self-consistency) and best-of-k with the rule-based reward as the outcome
reward model. Prints a table and writes JSON (--json; default: in the run
folder for a run's checkpoint, else in runs/eval/).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MKL_CBWR", "AUTO")  # reproducible CPU numerics (see train_zero.py)
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # robust to busy cores (see train_zero.py)

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from grpo.config import OneLineErrorParser

    ap = OneLineErrorParser(prog="eval.py", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True,
                    help="checkpoint folder, run folder, or a built-in base: demo, demo-countdown")
    ap.add_argument("--task", default="addition", help="addition, countdown or jsonl")
    ap.add_argument("--task-path", help="for --task jsonl: the file of {question, answer} lines")
    ap.add_argument("--template", default=None,
                    help="prompt template (default: the one the run was trained with, "
                         "else r1zero)")  # fmt: skip
    ap.add_argument("--n", type=int, default=500, help="held-out questions")
    ap.add_argument("--samples", type=int, default=1, help="samples per question (k)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature (default 0 = greedy for --samples 1, else 1.0)")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="completion budget (default: the run's, else 96)")
    ap.add_argument("--batch-size", type=int, default=512, help="sequences per generation batch")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto")
    ap.add_argument("--json", help="where to write the results (JSON)")
    args = ap.parse_args(argv)
    from model.checkpoint import CheckpointError

    try:
        return run(args)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    import torch

    from grpo.checkpoint import resolve_model_path
    from grpo.evaluate import evaluate
    from grpo.tasks import get_task
    from grpo.trainer import pick_device
    from model import Tokenizer, load_pretrained

    if args.n < 1 or args.samples < 1:
        raise ValueError("--n and --samples must be >= 1")
    temperature = args.temperature
    if temperature is None:
        temperature = 0.0 if args.samples == 1 else 1.0
    if args.samples > 1 and temperature == 0:
        raise ValueError("--samples > 1 needs --temperature > 0")
    device = pick_device(args.device)
    if args.model in ("demo", "demo-countdown"):
        from grpo.demo import ensure_base

        path = ensure_base(args.model)
    else:
        path = resolve_model_path(args.model)
    # Settings of the run that produced the checkpoint, where there is one.
    run_cfg, run_dir = {}, None
    for cand in (path.parent.parent / "train_config.json", path / "train_config.json"):
        if cand.is_file():
            run_cfg, run_dir = json.loads(cand.read_text()), cand.parent
            break
    template = args.template or run_cfg.get("template", "r1zero")
    max_new = args.max_new_tokens or run_cfg.get("max_new_tokens", 96)
    opts = {"template": template}
    if args.task == "jsonl":
        if not args.task_path:
            raise ValueError("--task jsonl needs --task-path FILE")
        opts["path"] = args.task_path
    task = get_task(args.task, **opts)
    model = load_pretrained(path, device=device, dtype=torch.float32)
    tok = Tokenizer.from_dir(path)
    examples = task.heldout(args.n)
    autocast = None
    if device.type == "cuda":
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    t0 = time.perf_counter()
    res = evaluate(
        model, tok, task, examples, max_new_tokens=max_new, samples=args.samples,
        temperature=temperature, stop_strings=run_cfg.get("stop", "</answer>").split(","),
        batch_size=args.batch_size, seed=args.seed, autocast=autocast,
        progress=lambda i, n: print(f"\r{i}/{n} questions", end="", file=sys.stderr),
    )  # fmt: skip
    print(file=sys.stderr)
    seconds = time.perf_counter() - t0
    k = args.samples
    m = res.metrics
    rows = [("pass@1 (accuracy)", m["eval_accuracy"]), ("format rate", m["eval_format_rate"]),
            ("mean completion length", m["eval_completion_len_mean"]),
            ("truncated", m["eval_truncated_frac"])]  # fmt: skip
    if k > 1:
        rows += [(f"pass@{k}", m[f"eval_pass@{k}"]), (f"maj@{k}", m[f"eval_maj@{k}"]),
                 (f"best-of-{k} (rule-based ORM)", m[f"eval_best_of_{k}"])]  # fmt: skip
    mode = "greedy" if temperature == 0 else f"temperature {temperature}"
    print(f"{path}  |  task {args.task}  |  {len(examples)} held-out questions  |  "
          f"{k} sample(s) each, {mode}  |  {seconds:.0f}s")  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    for name, value in rows:
        print(f"  {name:<{width}}{value:8.3f}")
    default = f"eval-{args.task}-step{path.name.removeprefix('step_')}-k{k}.json"
    if run_dir is None:
        default = f"eval-{args.task}-{path.name}-k{k}.json"
    out = Path(args.json) if args.json else (run_dir or Path("runs") / "eval") / default
    result = {"model": str(path), "task": args.task, "n": len(examples), "samples": k,
              "temperature": temperature, "template": template, "max_new_tokens": max_new,
              "seconds": seconds, "metrics": m}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
