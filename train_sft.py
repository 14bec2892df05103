"""Supervised fine-tuning on (prompt, completion) pairs: the tool of STaR, distillation, R1.

    python train_sft.py --data sft.jsonl --model demo --out runs/sft
    python train_sft.py --out runs/sft --resume           # continue a run exactly
    python -m grpo.experiments.rejection --model runs/zero --out sft.jsonl  # data from a model's
                                                                  # own correct samples

Every setting is a flag (see --help), defined once in grpo/experiments/sft/config.py. The
run folder gets sft_config.json, metrics.jsonl, samples.jsonl and
checkpoints/ (Hugging Face layout: train_zero.py --model RUN_DIR starts from
it). Ctrl-C or SIGTERM stops at a consistent point and checkpoints it (exit
130 or 143); --resume continues from there.
"""

from __future__ import annotations

import sys

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

from grpo.run.config import OneLineErrorParser, add_config_flags  # noqa: E402

PROG = "train_sft.py"


def main(argv: list[str] | None = None) -> int:
    from grpo.experiments.sft.config import SFTConfig
    from grpo.run.progress import line_buffered_output
    from grpo.run.report import REFUSED, refused

    line_buffered_output()
    ap = OneLineErrorParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its latest checkpoint")  # fmt: skip
    add_config_flags(ap, SFTConfig)
    ns = ap.parse_args(argv)
    given = {k: v for k, v in vars(ns).items() if k != "resume"}
    try:  # the settings first, before torch loads: a bad flag costs one line at once
        if ns.resume:
            if not given.get("out"):
                ap.error("--resume needs --out RUN_DIR")
            cfg = _resumed_config(given)
        else:
            cfg = SFTConfig.from_dict(given)
    except (ValueError, FileNotFoundError) as e:
        return refused(PROG, e)
    from grpo.experiments.sft.trainer import SFTDiverged, SFTTrainer
    from grpo.run.runfolder import RunInUse
    from grpo.run.stopping import TrainingInterrupted
    from model.checkpoint import CheckpointError, CheckpointWriteError

    trainer = None
    try:
        trainer = SFTTrainer(cfg, resume=ns.resume)
        trainer.train()
    except TrainingInterrupted as e:
        print(f"\n{PROG}: {e}", file=sys.stderr)
        return e.exit_code
    except (SFTDiverged, RunInUse, CheckpointWriteError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except CheckpointError as e:  # a corrupt --model or run checkpoint: bad input, as eval.py
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as e:  # out of memory: one line; anything else raises
        from grpo.run.report import out_of_memory_exit, resume_hint

        return out_of_memory_exit(PROG, e, "lower --micro-batch-size, --eval-batch-size or "
                                  f"--max-len{resume_hint(trainer)}")  # fmt: skip
    except REFUSED as e:
        return refused(PROG, e)
    except KeyboardInterrupt:
        print(f"\n{PROG}: SIGINT: stopped outside training, nothing to save", file=sys.stderr)
        return 130
    return 0


def _resumed_config(given: dict):
    import json
    from pathlib import Path

    from grpo.experiments.sft.config import SFTConfig
    from grpo.experiments.sft.trainer import CONFIG_FILE

    saved = Path(given["out"]) / CONFIG_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"--resume: {saved} does not exist")
    return SFTConfig.from_dict({**json.loads(saved.read_text()), **given}, source=str(saved))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before main's own handling starts (e.g. while torch loads)
        print("\ntrain_sft.py: interrupted", file=sys.stderr)
        sys.exit(130)
