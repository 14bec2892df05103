"""The aggregation lesson: the same demo run three times, only the loss aggregation differs.

    python -m grpo.experiments.aggregation_lesson                  # ~3x the demo's time on CPU
    python -m grpo.experiments.aggregation_lesson --steps 40 --out runs/lesson-short

Runs `train_zero.py`'s default demo with `--aggregation grpo`, `dapo` and
`dr_grpo` (dr_grpo with `--scale-by-std false`, as Dr. GRPO pairs them), then
draws response length and held-out accuracy of the three runs in one figure,
`docs/aggregation_lesson.png` by default (see docs/countdown.md, "The aggregation lesson").

Extra flags after `--` go to every run, e.g. `-- --steps 80 --seed 1`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpo.experiments.common import check_writable
from grpo.run.config import OneLineErrorParser

RUNS = [
    ("grpo", ["--aggregation", "grpo"], "grpo: seq-mean (original GRPO)"),
    ("dapo", ["--aggregation", "dapo"], "dapo: token-mean (default)"),
    ("dr_grpo", ["--aggregation", "dr_grpo", "--scale-by-std", "false"],
     "dr_grpo: sum / (N x max_new_tokens), no std"),
]  # fmt: skip


def lesson_figure(run_dirs: list[Path], labels: list[str], out: Path) -> Path:
    """Two panels: completion length (train) and held-out accuracy, one line per run."""
    from grpo.run.plot import _matplotlib, read_metrics

    plt = _matplotlib()
    fig, (ax_len, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (d, label) in enumerate(zip(run_dirs, labels)):
        train, evals = read_metrics(d)
        c = f"C{i}"
        ax_len.plot([r["step"] for r in train], [r["completion_len_mean"] for r in train],
                    color=c, label=f"{label}: sampled")  # fmt: skip
        ax_len.plot([r["step"] for r in evals], [r["eval_completion_len_mean"] for r in evals],
                    color=c, ls="--", marker="o", ms=4, label="held-out (greedy)")  # fmt: skip
        ax_acc.plot([r["step"] for r in train], [r["accuracy"] for r in train], color=c,
                    alpha=0.35, lw=1)  # fmt: skip
        ax_acc.plot([r["step"] for r in evals], [r["eval_accuracy"] for r in evals], color=c,
                    marker="o", label=f"{label} (held-out)")  # fmt: skip
    ax_len.set(title="mean completion length (tokens): training samples, held-out (dots)",
               xlabel="GRPO step")  # fmt: skip
    ax_acc.set(title="accuracy: held-out (dots), training batches (faint)", xlabel="GRPO step",
               ylim=(0, 1))  # fmt: skip
    for ax in (ax_len, ax_acc):
        ax.grid(alpha=0.3)
    ax_len.legend(fontsize=7, ncol=1)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = OneLineErrorParser(prog="python -m grpo.experiments.aggregation_lesson",
                            description=__doc__.split("\n")[0])  # fmt: skip
    ap.add_argument("--out", default="runs/aggregation-lesson", help="folder for the three runs")
    ap.add_argument("--figure", default="docs/aggregation_lesson.png", help="output PNG")
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps per run (default: demo's)")
    args = ap.parse_args(argv)
    if not args.out.strip():
        ap.error("--out must name a folder")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    figure = Path(args.figure)
    if not args.figure.strip() or figure.is_dir() or figure.suffix.lower() != ".png":
        ap.error(f"--figure {args.figure!r}: give a .png file to write")
    try:
        check_writable("--figure", figure)  # drawn after three runs: find out now
    except ValueError as e:
        ap.error(str(e))
    import train_zero

    dirs, labels = [], []
    for name, flags, label in RUNS:
        d = Path(args.out) / name
        run_flags = ["--out", str(d), *flags, "--plot", "false", *extra]
        if args.steps is not None:
            run_flags += ["--steps", str(args.steps)]
        if (d / "metrics.jsonl").exists():
            run_flags.append("--resume")
        print(f"=== {label}: train_zero.py {' '.join(run_flags)}", flush=True)
        rc = train_zero.main(run_flags)
        if rc != 0:
            return rc
        dirs.append(d)
        labels.append(label)
    try:
        print(lesson_figure(dirs, labels, figure))
    except OSError as e:
        print(f"python -m grpo.experiments.aggregation_lesson: error: could not write {figure} "
              f"({e.strerror or e}); the runs are in {args.out}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
