"""Train a base model with R1-Zero (GRPO, rule-based rewards, no SFT).

    python train_zero.py                                  # the built-in CPU demo
    python train_zero.py --model PATH --task countdown    # a Hugging Face checkpoint
    python train_zero.py --config run.toml --lr 3e-6      # file, then flags override
    python train_zero.py --out runs/x --resume            # continue a run exactly

Every hyperparameter is a flag (see --help); they are defined once, in
grpo/run/config.py. The run folder gets metrics.jsonl, samples.jsonl,
checkpoints/ and plots/. Ctrl-C or SIGTERM stops at a consistent point and
checkpoints it (exit 130 or 143); --resume continues from there.
"""

from __future__ import annotations

import signal
import sys

from grpo.run.cpu_env import set_cpu_env

set_cpu_env()  # before torch loads: see grpo/run/cpu_env.py

from grpo.run.config import OneLineErrorParser, add_config_flags, config_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from grpo.run.progress import line_buffered_output

    line_buffered_output()
    ap = OneLineErrorParser(
        prog="train_zero.py", description=__doc__.split("\n")[0],
        epilog="Defaults run the built-in demo on CPU in a few minutes.",
    )  # fmt: skip
    ap.add_argument("--config", metavar="FILE", help="JSON or TOML file of the same keys")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its latest checkpoint")  # fmt: skip
    add_config_flags(ap)
    ns = ap.parse_args(argv)
    # Until training runs (it installs its own handlers), SIGTERM stops like Ctrl-C.
    old_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(ap, ns)
    finally:
        signal.signal(signal.SIGTERM, old_term)


class _Terminated(Exception):
    """SIGTERM before training started (or after it ended)."""


def _terminate(_signum, _frame) -> None:
    raise _Terminated


# Refused with one line and no traceback, whether in the config or in training.
_REFUSED = (ValueError, FileNotFoundError, FileExistsError, TypeError, OSError,
            KeyboardInterrupt, _Terminated)  # fmt: skip


def _run(ap, ns) -> int:
    try:
        # The config first, before torch loads (~1.5 s): a bad flag is refused at once.
        if ns.resume:
            if not getattr(ns, "out", None):
                ap.error("--resume needs --out RUN_DIR")
            cfg = _resumed_config(ns)
        else:
            cfg, _ = config_from_args(ns, ns.config)
        from grpo.run.runfolder import RunInUse
        from grpo.trainer import Trainer, TrainingDiverged, TrainingInterrupted
        from model.checkpoint import CheckpointError, CheckpointWriteError
    except _REFUSED as e:
        return _refused(e)
    try:
        # torchrun (WORLD_SIZE > 1): one process per device, data parallel
        # (grpo/parallel/distributed.py).
        from grpo.parallel.distributed import init_from_env

        dist = init_from_env()
    except (RuntimeError, ValueError, KeyError) as e:
        print(f"train_zero.py: error: could not join the torchrun process group: {e}",
              file=sys.stderr)  # fmt: skip
        return 1
    trainer = None
    try:
        trainer = Trainer(cfg, resume=ns.resume, dist=dist)
        trainer.train()
        dist.close()  # every rank got here: wait for all, then tear down
    except TrainingDiverged as e:  # every rank stops here together: rank 0 says why
        dist.close()
        if dist.main:
            print(f"train_zero.py: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        dist.close()
        if dist.main:
            print(f"\ntrain_zero.py: {e}", file=sys.stderr)
        return e.exit_code
    except (RunInUse, CheckpointWriteError) as e:  # the machine's state, not the input
        print(f"train_zero.py: error: {e}", file=sys.stderr)
        return 1
    except CheckpointError as e:  # a corrupt --model or run checkpoint: bad input, as eval.py
        print(f"train_zero.py: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as e:  # out of memory: one line; anything else raises
        from grpo.run.report import out_of_memory_exit, resume_hint

        return out_of_memory_exit("train_zero.py", e, "lower --micro-batch-size, "
                                  "--eval-batch-size, --group-size or --max-new-tokens, or add "
                                  f"--grad-checkpointing{resume_hint(trainer)}")  # fmt: skip
    except _REFUSED as e:
        return _refused(e)
    return 0


def _refused(e: BaseException) -> int:
    """Print one line for `e` (one of _REFUSED); return the exit code."""
    from grpo.run.report import REFUSED, refused

    if isinstance(e, REFUSED):
        return refused("train_zero.py", e)
    name, code = ("SIGTERM", 143) if isinstance(e, _Terminated) else ("SIGINT", 130)
    print(f"\ntrain_zero.py: {name}: stopped outside training, nothing to save "
          "(--resume continues a run from its last checkpoint)", file=sys.stderr)  # fmt: skip
    return code


def _resumed_config(ns):
    """The saved config of the run, with any flags given now applied on top."""
    import json
    from pathlib import Path

    from grpo.run.config import TrainConfig, given_flags, read_config_file

    saved_file = Path(ns.out) / "train_config.json"
    if not saved_file.is_file():
        raise FileNotFoundError(f"--resume: {saved_file} does not exist")
    merged = json.loads(saved_file.read_text())
    if ns.config:
        merged.update(read_config_file(ns.config))
    given = given_flags(ns)  # validated once merged, not against the defaults
    merged.update(given)
    return TrainConfig.from_dict(merged, source=str(saved_file), flag_keys=given)


if __name__ == "__main__":
    sys.exit(main())
