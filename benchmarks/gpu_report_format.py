"""The report side of benchmarks/gpu_report.py: parse the steps' output, write the markdown.

Parsers of the steps' outputs (pytest's summary line, the TRL ratio lines, the kernel
benchmark table, the train run's jsonl files), one `summarize_*` function per step, and the
markdown block. Nothing here runs a command: gpu_report.py plans and runs the steps and
imports this module (a sibling file, not a package), which never imports gpu_report.py.

The block, ready to paste into BENCHMARKS.md: a heading with the device and the UTC date, the
versions and the git commit, a summary table, then per step the exact command ("python" is
the interpreter that ran the report), its status (ok / failed (exit code N) / timed out after
N s / skipped: why), its wall time, notes, and the key lines of its output (benchmark tables
verbatim in fenced blocks; for `train`, per-step rollout_s, update_s, tokens/s, reward and
lengths from the run folder's metrics.jsonl and timings.jsonl). gpu_report.py writes it to
--out (default gpu_report.md), rewritten after every step so that a killed run still leaves a
partial report; full logs: <out stem>_logs/NN_<step>.log next to the report, and the train
run's jsonl files in <out stem>_logs/NN_train_run/.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Dense (not sparse) bf16 tensor-core peaks in TFLOP/s, by a pattern of
# torch.cuda.get_device_name(); NVL variants differ and are left out on purpose.
PEAK_BF16_TFLOPS = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\b(SXM\d?|HBM3)\b", 989.0),  # "NVIDIA H100 80GB HBM3" is the SXM card
    (r"\bH200\b", 989.0),
)

BASE_NAME = "gpu-countdown"  # the preset's base model (gpu_report.py builds it; named here)

# --------------------------------------------------------------------------------- data


@dataclass
class Step:
    """One command of the report. `summarize` turns its result into a headline and lines."""

    name: str
    title: str
    cmd: list[str]
    reserve_s: float
    notes: list[str] = field(default_factory=list)
    summarize: Callable[[StepResult], Summary] | None = None
    needs: str | None = None  # skipped if that step ran in this report and failed or timed out
    skip: str | None = None  # a reason to skip it whatever happens (e.g. not on CPU)
    run_dir: Path | None = None  # the train run folder, whose jsonl files are kept


@dataclass
class Outcome:
    """What running one command gave: the runner's view of a subprocess."""

    returncode: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    interrupted: bool = False


@dataclass
class StepResult:
    step: Step
    status: str = "pending"  # ok, failed, timed out, skipped, interrupted, pending
    reason: str = ""  # why it was skipped
    returncode: int | None = None
    timeout_s: float | None = None
    seconds: float | None = None
    stdout: str = ""
    stderr: str = ""
    log: Path | None = None


@dataclass
class Summary:
    headline: str = ""
    lines: list[str] = field(default_factory=list)  # markdown


# ------------------------------------------------------------------------------ parsing

_PYTEST_COUNT = re.compile(
    r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b"
)
_PYTEST_TIME = re.compile(r"\bin ([0-9.]+)s\b")
_RATIO_TRL = re.compile(r"ratio TRL / ours:\s*([0-9]+(?:\.[0-9]+)?)x")


def parse_pytest_summary(text: str) -> dict[str, float] | None:
    """Counts from pytest's last summary line ("3 failed, 40 passed, 2 skipped in 9.1s").

    Keys: passed, failed, skipped, deselected, xfailed, xpassed, errors, warnings (only those
    present), and seconds. None if the text has no such line (pytest did not get that far).
    """
    for line in reversed(text.splitlines()):
        plain = line.strip().strip("=").strip()
        counts = _PYTEST_COUNT.findall(plain)
        seconds = _PYTEST_TIME.search(plain)
        if seconds and (counts or plain.startswith("no tests ran")):
            out: dict[str, float] = {}
            for n, kind in counts:
                kind = {"error": "errors", "warning": "warnings"}.get(kind, kind)
                out[kind] = out.get(kind, 0) + int(n)
            out["seconds"] = float(seconds.group(1))
            return out
    return None


def parse_trl_ratios(text: str) -> list[float]:
    """Every `ratio TRL / ours: X.XXx` value in order (the last is the R1-Zero-prompt row)."""
    return [float(m.group(1)) for m in _RATIO_TRL.finditer(text)]


def _num(cell: str) -> float | None:
    try:
        return float(cell.rstrip("%"))
    except ValueError:
        return None


def parse_logprobs_table(text: str) -> list[dict]:
    """Rows of benchmarks/logprobs.py's GPU table (N H V variant ms GiB t/naive t/gemm m/naive
    TFLOP/s %peak); ratios shown as '-' are None; an OOM row has ms None."""
    rows = []
    for line in text.splitlines():
        cells = line.split()
        if len(cells) < 5 or not all(c.isdigit() for c in cells[:3]):
            continue
        n, h, v = (int(c) for c in cells[:3])
        row = {"n": n, "h": h, "v": v, "variant": cells[3], "ms": None}
        if cells[4] == "OOM":
            rows.append(row)
            continue
        if len(cells) < 11:
            continue
        keys = ("ms", "gib", "t_naive", "t_gemm", "m_naive", "tflops", "pct_peak")
        row.update({k: _num(c) for k, c in zip(keys, cells[4:11])})
        rows.append(row)
    return rows


def kernel_target_lines(rows: list[dict]) -> list[str]:
    """The kernels' targets (BENCHMARKS.md), on the Triton rows at the largest N measured."""
    triton = [r for r in rows if r["variant"] == "triton" and r["ms"] is not None]
    if not triton:
        return []
    n_max = max(r["n"] for r in triton)
    out = []
    for r in (r for r in triton if r["n"] == n_max):
        liger = next(
            (x for x in rows if x["variant"] == "liger" and (x["n"], x["h"], x["v"]) ==
             (r["n"], r["h"], r["v"]) and x["ms"] is not None),
            None,
        )  # fmt: skip
        checks = [
            _check("memory / naive", r.get("m_naive"), "<=", 0.05, "{:.3f}"),
            _check("time / naive", r.get("t_naive"), "<", 1.0, "{:.2f}x"),
            _check("time / GEMM", r.get("t_gemm"), "<=", 1.5, "{:.2f}x"),
            _check("Liger time / ours", liger and liger["ms"] / r["ms"], ">=", 3.0, "{:.2f}x"),
        ]
        out.append(f"N={r['n']} H={r['h']} V={r['v']}: " + "; ".join(checks))
    return out


def _check(label: str, value: float | None, op: str, target: float, fmt: str) -> str:
    if value is None:
        return f"{label} n/a"
    ok = {"<=": value <= target, "<": value < target, ">=": value >= target}[op]
    return f"{label} {fmt.format(value)} (target {op} {target:g}: {'met' if ok else 'NOT met'})"


def peak_tflops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a known card, from its CUDA device name; None if not known."""
    if not device_name or "NVL" in device_name:
        return None
    for pattern, peak in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak
    return None


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill
                rows.append(json.loads(line))
    return rows


# --------------------------------------------------------------------------- summaries


def _clean_lines(text: str) -> list[str]:
    """Output lines without progress bars (carriage returns) and trailing blanks."""
    lines = [ln.rstrip() for ln in text.splitlines() if "\r" not in ln and "it/s]" not in ln]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def fenced(lines: Sequence[str], limit: int = 80) -> list[str]:
    """A fenced code block of the lines (the last `limit` of them, saying so if cut)."""
    lines = list(lines)
    if not lines:
        return []
    if len(lines) > limit:
        lines = [f"[... {len(lines) - limit} earlier lines in the log]", *lines[-limit:]]
    return ["```", *(ln.replace("```", "'''") for ln in lines), "```"]


def summarize_pytest(res: StepResult) -> Summary:
    text = res.stdout + res.stderr
    counts = parse_pytest_summary(text)
    if counts is None:
        return Summary("no pytest summary line")
    kinds = ("failed", "errors", "passed", "skipped", "xfailed", "xpassed", "deselected")
    headline = ", ".join(f"{int(counts[k])} {k}" for k in kinds if k in counts)
    lines = _clean_lines(res.stdout)
    start = next((i for i, ln in enumerate(lines) if "short test summary info" in ln), None)
    key = lines[start:] if start is not None else lines[-1:]
    out = fenced(key)
    if any("needs a CUDA device" in ln for ln in key):
        out.append("")
        out.append("- **the GPU tests were skipped** (pytest saw no CUDA device)")
    return Summary(headline, out)


def summarize_logprobs(res: StepResult) -> Summary:
    rows = parse_logprobs_table(res.stdout)
    lines = fenced(_clean_lines(res.stdout))
    targets = kernel_target_lines(rows)
    headline = ""
    if targets:
        lines += ["", "Targets (BENCHMARKS.md, kernels), Triton rows at the largest N:", ""]
        lines += [f"- {t}" for t in targets]
        best = max((r for r in rows if r["variant"] == "triton" and r["ms"]), key=_shape)
        parts = [
            f"{best['t_naive']:.2f}x naive time" if best["t_naive"] else None,
            f"{best['t_gemm']:.2f}x GEMM" if best["t_gemm"] else None,
            f"{best['m_naive']:.3f} of naive memory" if best["m_naive"] is not None else None,
        ]
        headline = f"triton N={best['n']} H={best['h']}: " + ", ".join(p for p in parts if p)
    return Summary(headline, lines)


def summarize_distill(res: StepResult) -> Summary:
    """benchmarks/distill_loss.py's table: the Triton (else twin) row's ratios to naive."""
    lines = _clean_lines(res.stdout)
    rows = {}
    for ln in lines:
        m = re.match(r"(twin|triton|liger)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", ln)
        if m:
            rows[m.group(1)] = (float(m.group(4)), float(m.group(5)))
    name = "triton" if "triton" in rows else "twin" if "twin" in rows else None
    headline = ""
    if name:
        mem, tim = rows[name]
        headline = f"{name}: {mem:.3f} of naive memory, {tim:.2f}x naive time"
    return Summary(headline, fenced(lines))


def _shape(r: dict) -> tuple[int, int, int]:
    return (r["n"], r["h"], r["v"])


def summarize_generate(res: StepResult) -> Summary:
    lines = _clean_lines(res.stdout)
    ratio = next((ln for ln in lines if ln.startswith("ratio ours / transformers")), "")
    same = next((ln for ln in lines if ln.startswith("identical output tokens")), "")
    headline = "; ".join(x for x in (ratio, same.split(",")[0]) if x)
    return Summary(headline, fenced(lines))


def summarize_grpo_step(res: StepResult) -> Summary:
    ratios = parse_trl_ratios(res.stdout)
    lines = fenced(_clean_lines(res.stdout), limit=60)
    if not ratios:
        last = (_clean_lines(res.stderr) or _clean_lines(res.stdout) or [""])[-1]
        return Summary(f"no `ratio TRL / ours` line{': ' + last if last else ''}", lines)
    headline = f"TRL / ours {ratios[-1]:.2f}x (R1-Zero prompt)"
    if len(ratios) > 1:
        others = ", ".join(f"{r:.2f}x" for r in ratios[:-1])
        headline += f"; other rows {others}"
    return Summary(headline, lines)


def summarize_base(res: StepResult) -> Summary:
    lines = _clean_lines(res.stdout)
    steps = [ln for ln in lines if re.match(r"step\s+\d+/\d+", ln)]
    keep = [
        ln for ln in lines
        if ln.startswith((f"{BASE_NAME} base:", "corpus:", "model:", "wrote "))
    ]  # fmt: skip
    keep += steps[-1:]
    if any(ln.startswith("wrote ") for ln in lines):
        headline = "built"
    elif res.status == "ok":
        headline = "already built (valid cache)"
    elif steps:
        headline = f"reached pretraining {steps[-1].split()[1]} before it stopped"
    elif any(ln.startswith("corpus:") for ln in lines):
        headline = "corpus done, pretraining not reached"
    else:
        headline = "stopped while building the corpus"
    return Summary(headline, fenced(keep) if keep else [])


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def summarize_train(res: StepResult) -> Summary:
    run_dir = res.step.run_dir
    if run_dir is None:
        return Summary()
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    timings = read_jsonl(run_dir / "timings.jsonl")
    train = {m["step"]: m for m in metrics if "reward" in m}
    times = {t["step"]: t for t in timings if "rollout_s" in t}
    steps = sorted(set(train) & set(times))
    lines = []
    keys = [ln for ln in _clean_lines(res.stdout)
            if ln.startswith(("run folder:", "warning:", "eval @", "done in"))]  # fmt: skip
    if keys:
        lines += fenced(keys)
        lines.append("")
    if not steps:
        lines.append(f"No training step finished (run folder {run_dir}).")
        return Summary("no step finished", lines)
    lines += [
        "| step | rollout s | update s | tokens/s | reward | accuracy | format | "
        "length mean | length max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        m, t = train[s], times[s]
        lines.append(
            f"| {s} | {t['rollout_s']:.2f} | {t['update_s']:.2f} | {t['tokens_per_s']:,.0f} | "
            f"{m['reward']:.3f} | {m.get('accuracy', float('nan')):.3f} | "
            f"{m.get('format_rate', float('nan')):.2f} | {m['completion_len_mean']:.1f} | "
            f"{m.get('completion_len_max', 0)} |"
        )
    later = steps[1:] or steps  # step 1 carries the warm-up (allocator, first kernels)
    roll = _mean([times[s]["rollout_s"] for s in later])
    upd = _mean([times[s]["update_s"] for s in later])
    tps = _mean([times[s]["tokens_per_s"] for s in later])
    span = f"steps {later[0]}-{later[-1]}" if len(later) > 1 else f"step {later[0]}"
    headline = f"{len(steps)} steps; {span} mean: rollout {roll:.2f} s, update {upd:.2f} s, "
    headline += f"{tps:,.0f} tokens/s"
    lines += ["", f"Means over {span} (step 1 includes warm-up): rollout {roll:.2f} s, "
              f"update {upd:.2f} s, {tps:,.0f} tokens/s."]  # fmt: skip
    if all("rollout_flops" in times[s] and "update_flops" in times[s] for s in later):
        rate = lambda key, secs: _mean(
            [times[s][key] / max(times[s][secs], 1e-9) / 1e12 for s in later]
        )
        lines.append(
            f"Matmul throughput over {span} (timings.jsonl FLOPs, model/flops.py): rollout "
            f"{rate('rollout_flops', 'rollout_s'):.2f} TFLOP/s, update "
            f"{rate('update_flops', 'update_s'):.2f} TFLOP/s."
        )
    evals = [m for m in metrics if "eval_accuracy" in m]
    eval_s = {t["step"]: t["eval_s"] for t in timings if "eval_s" in t}
    for e in evals:
        took = f", {eval_s[e['step']]:.1f} s" if e["step"] in eval_s else ""
        lines.append(
            f"Held-out at step {e['step']}: accuracy {e['eval_accuracy']:.3f}, format "
            f"{e.get('eval_format_rate', float('nan')):.3f}, length "
            f"{e.get('eval_completion_len_mean', float('nan')):.1f}{took}."
        )
    return Summary(headline, lines)


# ---------------------------------------------------------------------------- display


def display(cmd: Sequence[str]) -> str:
    """The command as a shell line, with `python` for this interpreter."""
    shown = ["python" if i == 0 and c == sys.executable else c for i, c in enumerate(cmd)]
    return shlex.join(shown)


# ---------------------------------------------------------------------------- report


def status_text(res: StepResult) -> str:
    if res.status == "ok":
        return "ok"
    if res.status == "failed":
        rc = res.returncode
        return f"failed (killed by signal {-rc})" if rc is not None and rc < 0 else (
            f"failed (exit code {rc})")  # fmt: skip
    if res.status == "timed out":
        return f"timed out after {res.timeout_s:.0f} s"
    if res.status == "skipped":
        return f"skipped: {res.reason}"
    if res.status == "interrupted":
        return "interrupted (Ctrl-C)"
    return "not run (the report stopped before this step)"


def _summary(res: StepResult) -> Summary:
    if res.step.summarize is None or res.status in ("skipped", "pending"):
        return Summary()
    try:
        return res.step.summarize(res)
    except Exception as e:  # a report with one unreadable step beats no report
        return Summary(f"could not summarise the output ({type(e).__name__}: {e})")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(results: Sequence[StepResult], meta: dict) -> str:
    """The markdown block. meta: device, date, versions (a line), commit, command, budget_s,
    wall_s, logs (a path as shown), cpu (bool)."""
    summaries = [_summary(r) for r in results]
    out = [f"## GPU report: {meta['device']}, {meta['date']}", ""]
    out.append(f"- versions: {meta['versions']}")
    out.append(f"- repository: {meta['commit']}")
    out.append(f"- command: `{meta['command']}` (budget {meta['budget_s']:.0f} s, "
               f"{meta['wall_s']:.0f} s in all); full logs in `{meta['logs']}`")  # fmt: skip
    if meta.get("cpu"):
        out.append("- **CPU smoke run (--allow-cpu)**: tiny sizes, no figure here is a GPU figure")
    out += ["", "| step | status | wall s | result |", "|---|---|---:|---|"]
    for i, (r, s) in enumerate(zip(results, summaries)):
        wall = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        out.append(f"| {i + 1}. {r.step.name} | {_cell(status_text(r))} | {wall} | "
                   f"{_cell(s.headline)} |")  # fmt: skip
    for i, (r, s) in enumerate(zip(results, summaries)):
        out += ["", f"### {i + 1}. {r.step.name}: {r.step.title}", ""]
        out += ["```", display(r.step.cmd), "```", ""]
        status = f"status: **{status_text(r)}**"
        if r.seconds is not None:
            status += f", {r.seconds:.1f} s wall"
        if r.timeout_s is not None:
            status += f" (timeout {r.timeout_s:.0f} s)"
        if r.log is not None:
            status += f"; log `{meta['logs']}/{r.log.name}`"
        out.append(status)
        if s.headline:
            out += ["", f"result: {s.headline}"]
        if r.step.notes:
            out.append("")
            out += [f"- {n}" for n in r.step.notes]
        if s.lines:
            out += ["", *s.lines]
        if r.status in ("failed", "timed out", "interrupted"):
            tail = _clean_lines(r.stderr) or _clean_lines(r.stdout)
            if tail:
                out += ["", "last lines of output:", "", *fenced(tail, limit=15)]
    return "\n".join(out) + "\n"


def versions_line(info: dict) -> str:
    def v(key: str) -> str:
        return info.get(key) or "not installed"

    torch_v = info.get("torch") or "?"
    cuda = f" (CUDA {info['cuda_version']})" if info.get("cuda_version") else " (no CUDA build)"
    return (
        f"python {info.get('python') or platform.python_version()}, torch {torch_v}{cuda}, "
        f"triton {v('triton')}, transformers {v('transformers')}, trl {v('trl')}, "
        f"liger-kernel {v('liger-kernel')}"
    )


# ------------------------------------------------------ environment (the report's header)


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    state = "tracked files modified" if dirty.stdout.strip() else "clean"
    return f"commit {head.stdout.strip()} ({state})"


PROBE = r"""
import importlib.metadata as md, json, platform
info = {"python": platform.python_version()}
for key, names in (("triton", ("triton", "pytorch-triton")), ("transformers", ("transformers",)),
                   ("trl", ("trl",)), ("liger-kernel", ("liger-kernel", "liger-kernel-nightly"))):
    for name in names:
        try:
            info[key] = md.version(name)
            break
        except md.PackageNotFoundError:
            info[key] = None
try:
    import torch
except Exception as e:
    info["error"] = f"cannot import torch: {type(e).__name__}: {e}"
else:
    info["torch"] = torch.__version__
    info["cuda_version"] = torch.version.cuda
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["device_count"] = torch.cuda.device_count()
print(json.dumps(info))
"""


def probe_env() -> dict:
    """Versions and the CUDA device, from a child Python (this process never imports torch)."""
    try:
        p = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as e:
        return {"error": f"the environment probe failed: {type(e).__name__}: {e}"}
