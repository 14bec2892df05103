"""Plot how a run evolves: response length, reward, accuracy, format rate, entropy, KL.

    python -m grpo.run.plot RUN_DIR [RUN_DIR ...] [--out DIR] [--labels a,b,c]

Reads each run's metrics.jsonl and writes one PNG per quantity (runs overlaid,
one legend entry per run; held-out evaluation points drawn as markers on the
same axes) plus overview.png with all of them. Countdown runs also get the
search-behaviour panels (tries, gave up, false "yes", recovered). Default
output folder: RUN_DIR/plots for one run, plots/ in the current folder for
several. Needs matplotlib
(`pip install -e ".[plot]"`).

A run that is still going, or was killed, can be plotted: a torn last line of
metrics.jsonl (what a kill mid-write leaves) is skipped, as `--resume` does;
a bad line anywhere else is an error naming file:line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# (file stem, title, training-row key, evaluation-row key or None)
PANELS = [
    ("length", "completion length (tokens)", "completion_len_mean", "eval_completion_len_mean"),
    ("reward", "reward", "reward", "eval_reward"),
    ("accuracy", "accuracy", "accuracy", "eval_accuracy"),
    ("format", "format rate", "format_rate", "eval_format_rate"),
    ("entropy", "entropy (nats/token)", "entropy", None),
    ("kl", "KL to reference (k3)", "kl", None),
]
# Drawn only for runs that log them (countdown: grpo/tasks/search_metrics.py).
SEARCH_PANELS = [
    ("tries", "tries per completion", "tries_mean", "eval_tries_mean"),
    ("gave_up", "gave up after a failed try", "gave_up_frac", "eval_gave_up_frac"),
    ("false_yes", "false \"yes\" claims", "false_yes_frac", "eval_false_yes_frac"),
    ("recovered", "recovered from a failed try", "recovered_frac", "eval_recovered_frac"),
]


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install -e \".[plot]\" (the run's metrics.jsonl "
            "is complete without it)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(training rows, evaluation rows) of a run folder's metrics.jsonl.

    A torn last line is skipped; any other unreadable line, a row without a
    numeric "step" or a non-numeric plotted value is a ValueError naming
    file:line. A file with no rows is a ValueError too.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a run folder?)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start})") from e
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    plotted = {key for panel in PANELS + SEARCH_PANELS for key in panel[2:] if key}
    rows, torn = [], ""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == last:  # torn by a kill mid-write; the rows before it are whole
                torn = f"; its last line, {i + 1}, is not whole JSON ({e.msg})"
                continue
            raise ValueError(f"{where}: invalid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if "reward" not in row and "eval_accuracy" not in row:
            continue  # not a training or evaluation row: nothing to draw
        if not _is_number(row.get("step")):
            raise ValueError(f"{where}: row has no numeric 'step' (got {row.get('step')!r})")
        for key in plotted & row.keys():
            if not _is_number(row[key]):
                raise ValueError(f"{where}: {key!r} must be a number, got {row[key]!r}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no training or evaluation rows yet{torn}")
    train = [r for r in rows if "reward" in r and "eval_accuracy" not in r]
    evals = [r for r in rows if "eval_accuracy" in r]
    return train, evals


def _is_number(v) -> bool:
    # NaN and infinities count (json writes them for a diverged value; matplotlib leaves a gap).
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_out_dir(out_dir: str | Path) -> None:
    """OSError with a clear message unless plots can be written into `out_dir`.

    The nearest existing folder on the way is probed with a temporary file, so
    a read-only location is found before anything is drawn.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file, not a folder")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise OSError(f"--out {out_dir}: cannot write in {existing} ({e.strerror or e})") from e


def plot_runs(
    run_dirs: list[str | Path], out_dir: str | Path, labels: list[str] | None = None,
    panels: list[str] | None = None, smooth: int = 1,
) -> list[Path]:  # fmt: skip
    """Write one PNG per panel plus overview.png; returns the paths written."""
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1 (1 = no smoothing), got {smooth}")
    plt = _matplotlib()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = labels or [Path(d).name for d in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    data = [read_metrics(d) for d in run_dirs]
    logged = {k for train, evals in data for r in train + evals for k in r}
    available = PANELS + [p for p in SEARCH_PANELS if p[2] in logged]
    chosen = [p for p in available if panels is None or p[0] in panels]
    written = []

    def draw(ax, panel):
        _, title, key, ekey = panel
        for i, ((train, evals), label) in enumerate(zip(data, labels)):
            color = f"C{i}"
            xs = [r["step"] for r in train if key in r]
            ys = _smooth([r[key] for r in train if key in r], smooth)
            if xs:
                ax.plot(xs, ys, color=color, label=f"{label} (train)" if ekey else label, lw=1.4)
            if ekey:
                ex = [r["step"] for r in evals if ekey in r]
                ey = [r[ekey] for r in evals if ekey in r]
                if ex:
                    ax.plot(ex, ey, color=color, ls="--", marker="o", ms=4,
                            label=f"{label} (held-out)")  # fmt: skip
        if key == "kl" and not any("kl" in r for train, _ in data for r in train):
            ax.text(0.5, 0.5, "no KL logged: beta = 0, no reference model", transform=ax.transAxes,
                    ha="center", va="center", color="gray")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)

    for panel in chosen:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax, panel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{panel[0]}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    cols = 3
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, chosen):
        draw(ax, panel)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if names:
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = out_dir / "overview.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def _smooth(ys: list[float], k: int) -> list[float]:
    if k <= 1:
        return ys
    out, acc = [], []
    for y in ys:
        acc.append(y)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def _window(s: str) -> int:
    try:
        k = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (1 = no smoothing), got {k}")
    return k


def main(argv: list[str] | None = None) -> int:
    from grpo.run.config import OneLineErrorParser

    ap = OneLineErrorParser(prog="python -m grpo.run.plot", description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders holding metrics.jsonl")
    ap.add_argument("--out", help="output folder (default: RUN/plots for one run, "
                    "plots/ for several)")  # fmt: skip
    ap.add_argument("--labels", help="comma-separated legend labels, one per run "
                    "(default: the folder names)")  # fmt: skip
    ap.add_argument("--smooth", type=_window, default=1,
                    help="moving-average window for train rows (default: 1 = none)")  # fmt: skip
    args = ap.parse_args(argv)
    out = args.out or (Path(args.runs[0]) / "plots" if len(args.runs) == 1 else Path("plots"))
    try:
        check_out_dir(out)
        paths = plot_runs(args.runs, out, args.labels.split(",") if args.labels else None,
                          smooth=args.smooth)  # fmt: skip
    except (ImportError, ValueError, OSError) as e:  # OSError: FileNotFoundError, PermissionError
        print(f"grpo.run.plot: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before main's own handling starts (e.g. while torch loads)
        print("\npython -m grpo.run.plot: interrupted", file=sys.stderr)
        sys.exit(130)
