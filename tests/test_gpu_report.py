"""Tests for benchmarks/gpu_report.py, the one-command GPU report: its CPU-side logic only.

The steps themselves need a GPU and are not run here. What is tested: argument handling,
the no-CUDA refusal, --dry-run, step selection, the budget split, the parsers of pytest's
summary line, the TRL ratio lines and the kernel benchmark table, the markdown report from
canned results, the runner with a fake subprocess function (failures, Ctrl-C, partial
reports), and one real subprocess that times out and is killed with its own child.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_report.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_report_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


gr = _load()
grf = importlib.import_module("gpu_report_format")  # its sibling, imported by it

GPU_INFO = {
    "python": "3.11.9", "torch": "2.5.1+cu124", "cuda_version": "12.4", "cuda": True,
    "device": "NVIDIA H100 80GB HBM3", "triton": "3.1.0", "transformers": "4.46.0",
    "trl": "0.12.0", "liger-kernel": None,
}  # fmt: skip
NO_GPU_INFO = {"python": "3.11.9", "torch": "2.13.0+cpu", "cuda_version": None, "cuda": False}


def plan(info=GPU_INFO, cpu=False, budget=480.0, run_dir=Path("/tmp/run")):
    return gr.build_plan(info, cpu, budget, run_dir)


def no_execute(*a, **k):
    raise AssertionError("nothing may run here")


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--only", "nope"], "unknown step 'nope'"),
        (["--skip", "kernels,nope"], "unknown step 'nope'"),
        (["--only", ""], "no step named"),
        (["--budget-s", "0"], "positive"),
        (["--budget-s", "-5"], "positive"),
        (["--budget-s", "nan"], "positive"),
        (["--budget-s", "abc"], "expected seconds"),
        (["--only", "kernels", "--skip", "kernels"], "no step to run"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--out", ""], "not a folder"),
        (["--out", "."], "not a folder"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as e:
        gr.main(argv, probe=lambda: GPU_INFO, execute=no_execute)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpu_report.py: error: "), err
    assert fragment in err and "Traceback" not in err


def test_unknown_step_message_lists_the_steps(capsys):
    with pytest.raises(SystemExit):
        gr.parse_args(["--only", "kernel"])
    steps = "steps: kernels, logprobs, distill, generate, grpo_step, base, train"
    assert steps in capsys.readouterr().err


@pytest.mark.parametrize(
    "only, skip, names",
    [
        (None, None, ["kernels", "logprobs", "distill", "generate", "grpo_step", "base", "train"]),
        ("train,kernels", None, ["kernels", "train"]),  # plan order, not the order given
        (None, "base,train", ["kernels", "logprobs", "distill", "generate", "grpo_step"]),
        ("logprobs,generate,base", "base", ["logprobs", "generate"]),
    ],
)
def test_only_and_skip_select_steps_in_plan_order(only, skip, names):
    argv = (["--only", only] if only else []) + (["--skip", skip] if skip else [])
    args = gr.parse_args(argv)
    assert [s.name for s in gr.select(plan(), args.only, args.skip)] == names


def test_without_cuda_it_refuses_in_one_line_and_writes_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "r.md"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert p.stderr == gr.NO_CUDA_MESSAGE + "\n" and p.stdout == ""
    assert not out.exists() and not (tmp_path / "r_logs").exists()


# -------------------------------------------------------------------------------- dry run


def test_dry_run_lists_every_command_and_runs_nothing(capsys, tmp_path):
    out = tmp_path / "r.md"
    rc = gr.main(["--dry-run", "--out", str(out)], probe=lambda: GPU_INFO, execute=no_execute)
    assert rc == 0
    text = capsys.readouterr().out
    for cmd in [
        "$ python -m pytest -q tests/test_kernels.py tests/test_kernel_selfcheck.py",
        "$ python benchmarks/logprobs.py --n 16384 --h 896 4096 --peak-tflops 989",
        "$ python benchmarks/generate.py --preset qwen2.5-0.5b --device cuda --dtype bfloat16 "
        "--batch 64 --prompt-len 128 --new-tokens 256",
        "$ python benchmarks/grpo_step.py --device cuda",
        'ensure_base("gpu-countdown")',
        "$ python train_zero.py --config configs/gpu-countdown.toml --steps 20 ",
    ]:
        assert cmd in text, cmd
    assert gr.DECODE_NOTE in text
    assert not out.exists()


def test_dry_run_works_without_a_gpu_and_shows_the_gpu_commands(capsys):
    assert gr.main(["--dry-run"], probe=lambda: NO_GPU_INFO, execute=no_execute) == 0
    text = capsys.readouterr().out
    assert "no CUDA device here" in text
    assert "--device cuda" in text and "--peak-tflops" not in text


def test_allow_cpu_plan_uses_small_cpu_commands_and_skips_the_base_build():
    steps = {s.name: s for s in plan(NO_GPU_INFO, cpu=True)}
    assert "--cpu" in steps["logprobs"].cmd
    assert "cuda" not in " ".join(c for s in steps.values() for c in s.cmd)
    assert steps["base"].skip and "--model" in steps["train"].cmd


def test_a_large_budget_runs_the_full_logprobs_grid():
    small = next(s for s in plan(budget=480) if s.name == "logprobs")
    full = next(s for s in plan(budget=900) if s.name == "logprobs")
    assert "--n" in small.cmd and "--n" not in full.cmd
    assert full.reserve_s > small.reserve_s


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 SXM5 80GB", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA GH200 480GB", None),
        ("NVIDIA A100-SXM4-80GB", None),
        (None, None),
    ],
)
def test_peak_table_by_device_name(name, peak):
    assert gr.peak_tflops(name) == peak


# -------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, want",
    [
        ("....s.  [100%]\n45 passed, 3 skipped in 80.12s\n",
         {"passed": 45, "skipped": 3, "seconds": 80.12}),
        ("===== 1 failed, 2 passed, 1 error in 3.00s =====",
         {"failed": 1, "passed": 2, "errors": 1, "seconds": 3.0}),
        ("2 errors in 0.50s", {"errors": 2, "seconds": 0.5}),
        ("3 passed, 1 warning in 2.0s", {"passed": 3, "warnings": 1, "seconds": 2.0}),
        ("12 passed, 2 deselected in 1.5s", {"passed": 12, "deselected": 2, "seconds": 1.5}),
        ("no tests ran in 0.01s", {"seconds": 0.01}),
        ("1 passed in 1.0s\nlater: 7 failed, 1 passed in 9.0s",
         {"failed": 7, "passed": 1, "seconds": 9.0}),  # the last summary line counts
        ("collected 3 items\nKeyboardInterrupt\n", None),
    ],
)  # fmt: skip
def test_parse_pytest_summary(text, want):
    assert grf.parse_pytest_summary(text) == want


def test_parse_trl_ratios_in_order_ignoring_other_ratios():
    text = (
        "== bare question\nratio TRL / ours: 1.50x\nratio ours / transformers: 9.99x\n"
        "== R1-Zero prompt\nratio TRL / ours: 2.25x\n"
    )
    assert grf.parse_trl_ratios(text) == [1.5, 2.25]
    assert grf.parse_trl_ratios("TRL is not installed") == []


def _lp_row(n, h, variant, ms, gib, t_naive, t_gemm, m_naive, v=151936):
    """A row exactly as benchmarks/logprobs.py prints it ('-' for a missing ratio)."""
    r = lambda x: f"{x:7.2f}" if x is not None else f"{'-':>7}"  # noqa: E731
    return (f"{n:>6} {h:>5} {v:>7}  {variant:<8} {ms:9.2f} {gib:7.2f} {r(t_naive)} "
            f"{r(t_gemm)} {r(m_naive)} {100.0:8.1f} {10.0:5.1f}%")  # fmt: skip


LOGPROBS_OUT = "\n".join([
    "device: NVIDIA H100 80GB HBM3, dtype bf16, median of 10 iters after 2 warm-up; ...",
    "     N     H       V  variant         ms     GiB t/naive  t/gemm m/naive  TFLOP/s  %peak",
    "-" * 88,
    _lp_row(4096, 896, "triton", 5.0, 0.1, 0.9, 2.0, 0.5),
    _lp_row(16384, 896, "triton", 10.0, 0.1, 0.5, 1.2, 0.02),
    _lp_row(16384, 896, "naive", 20.0, 5.0, 1.0, 2.4, 1.0),
    _lp_row(16384, 896, "liger", 40.0, 0.3, 2.0, 4.8, 0.06),
    _lp_row(16384, 4096, "triton", 90.0, 0.4, None, 1.8, None),
    "16384  4096  151936  naive          OOM",
])  # fmt: skip


def test_parse_logprobs_table_and_check_the_targets_at_the_largest_n():
    rows = grf.parse_logprobs_table(LOGPROBS_OUT)
    assert [(r["n"], r["h"], r["variant"]) for r in rows] == [
        (4096, 896, "triton"), (16384, 896, "triton"), (16384, 896, "naive"),
        (16384, 896, "liger"), (16384, 4096, "triton"), (16384, 4096, "naive"),
    ]  # fmt: skip
    assert rows[1]["t_gemm"] == 1.2 and rows[4]["t_naive"] is None and rows[5]["ms"] is None
    lines = grf.kernel_target_lines(rows)
    assert len(lines) == 2 and lines[0].startswith("N=16384 H=896 V=151936:")
    assert "memory / naive 0.020 (target <= 0.05: met)" in lines[0]
    assert "Liger time / ours 4.00x (target >= 3: met)" in lines[0]
    assert "time / GEMM 1.80x (target <= 1.5: NOT met)" in lines[1]
    assert "memory / naive n/a" in lines[1] and "Liger time / ours n/a" in lines[1]


# ------------------------------------------------------------------------------ budget


def test_each_step_may_use_the_time_left_minus_the_later_reserves():
    steps = plan()
    assert sum(s.reserve_s for s in steps) == 450  # the default budget keeps 30 s of slack
    assert gr.step_timeout(steps, 0, 480, 480) == 480 - (450 - 60)
    assert gr.step_timeout(steps, len(steps) - 1, 123, 480) == 123  # the last: all that is left
    # a budget smaller than the reserves scales them down
    half = gr.step_timeout(steps, 0, 225, 225)
    assert half == pytest.approx(225 - 390 / 2)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_unused_time_flows_on_and_an_overrun_leaves_later_steps_skipped(tmp_path):
    clock, calls = FakeClock(), []
    spend = {"kernels": 10, "logprobs": 500}  # logprobs overruns its timeout (a slow kill)

    def fake(cmd, timeout, log):
        name = log.stem.split("_", 1)[1]
        calls.append((name, timeout))
        clock.t += spend.get(name, 1)
        return gr.Outcome(0, spend.get(name, 1))

    results = gr.run_steps(plan(), 480, tmp_path, execute=fake, clock=clock, emit=lambda s: None)
    assert calls[0] == ("kernels", 90)
    # kernels' 80 unused seconds flow on; the reserves after logprobs: distill 40, generate 70,
    # grpo_step 60, base 30, train 110
    assert calls[1] == ("logprobs", 470 - (40 + 70 + 60 + 30 + 110))
    assert [c[0] for c in calls] == ["kernels", "logprobs"]
    assert all(r.status == "skipped" and r.reason.startswith("budget spent") for r in results[2:])


# ------------------------------------------------------------------------------ runner


def test_a_failure_or_timeout_never_stops_the_other_steps(tmp_path):
    outcomes = {
        "kernels": gr.Outcome(1, 5.0, "F.\n1 failed, 1 passed in 4.0s\n", "boom\n"),
        "logprobs": gr.Outcome(None, 12.0, "", "still going\n", timed_out=True),
        "distill": gr.Outcome(0, 4.0, "twin 1372 38.16 0.082 0.73\n"),
        "generate": gr.Outcome(0, 3.0, "ratio ours / transformers: 1.80x\n"),
        "grpo_step": gr.Outcome(0, 3.0, "ratio TRL / ours: 2.00x\n"),
        "base": gr.Outcome(None, 50.0, "corpus: 300000 documents\n", "", timed_out=True),
    }
    ran = []

    def fake(cmd, timeout, log):
        name = log.stem.split("_", 1)[1]
        ran.append(name)
        return outcomes[name]

    results = gr.run_steps(plan(), 480, tmp_path, execute=fake, emit=lambda s: None)
    assert ran == ["kernels", "logprobs", "distill", "generate", "grpo_step", "base"]
    assert [r.status for r in results] == ["failed", "timed out", "ok", "ok", "ok", "timed out",
                                           "skipped"]  # fmt: skip
    assert "the base step did not finish (timed out after" in results[-1].reason


def test_a_missing_script_is_skipped_not_run(tmp_path):
    step = gr.Step("x", "missing", [sys.executable, "benchmarks/no_such_bench.py"], 10)
    (res,) = gr.run_steps([step], 100, tmp_path, execute=no_execute, emit=lambda s: None)
    assert res.status == "skipped" and "does not exist" in res.reason


def test_ctrl_c_stops_the_rest_and_still_writes_the_partial_report(tmp_path, capsys):
    out = tmp_path / "r.md"
    seen_after_first = []

    def fake(cmd, timeout, log):
        name = log.stem.split("_", 1)[1]
        if name == "logprobs":
            seen_after_first.append(out.read_text())  # the report is rewritten after each step
            return gr.Outcome(None, 2.0, "partial\n", interrupted=True)
        return gr.Outcome(0, 1.0, "3 passed in 1.0s\n")

    rc = gr.main(["--out", str(out), "--skip", "grpo_step"], probe=lambda: GPU_INFO,
                 execute=fake)  # fmt: skip
    assert rc == 130
    assert "| 1. kernels | ok | 1.0 | 3 passed |" in seen_after_first[0]
    text = out.read_text()
    assert "| 2. logprobs | interrupted (Ctrl-C) |" in text
    assert "| 3. distill | skipped: interrupted (Ctrl-C) |" in text
    assert "| 4. generate | skipped: interrupted (Ctrl-C) |" in text
    assert text in capsys.readouterr().out  # the same block is printed


def test_main_exit_status_says_whether_every_step_was_ok(tmp_path):
    ok = lambda cmd, timeout, log: gr.Outcome(0, 1.0, "")  # noqa: E731
    bad = lambda cmd, timeout, log: gr.Outcome(3, 1.0, "")  # noqa: E731
    argv = ["--out", str(tmp_path / "r.md"), "--only", "generate"]
    assert gr.main(argv, probe=lambda: GPU_INFO, execute=ok) == 0
    assert gr.main(argv, probe=lambda: GPU_INFO, execute=bad) == 1
    assert "failed (exit code 3)" in (tmp_path / "r.md").read_text()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; /proc says so where os.kill cannot
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_a_step_that_runs_too_long_is_killed_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{c.pid}}')\n"
        "print('started', flush=True)\n"
        "time.sleep(8)\n"
    )
    step = gr.Step("sleepy", "sleeps past its timeout", [sys.executable, "-c", code], 2.0)
    t0 = time.monotonic()
    (res,) = gr.run_steps(
        [step], 2.0, tmp_path, execute=lambda c, t, log: gr.execute(c, t, log, grace_s=4),
        emit=lambda s: None, min_step_s=0.5,
    )  # fmt: skip
    # SIGINT ended it (a KeyboardInterrupt, so it could have saved its work), not the SIGKILL
    # that would have come after the 4 s grace
    assert time.monotonic() - t0 < 5.5 and "KeyboardInterrupt" in res.stderr
    assert res.status == "timed out" and gr.status_text(res) == "timed out after 2 s"
    assert "started" in res.stdout and "started" in res.log.read_text()
    grandchild = int(pids.read_text())
    deadline = time.monotonic() + 3
    while _pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(grandchild), "the step's own child survived the kill"
    report = gr.render_report([res], _meta())
    assert "status: **timed out after 2 s**" in report


def test_processes_a_step_leaves_behind_are_killed_when_it_ends(tmp_path):
    pids = tmp_path / "pids"
    code = (
        "import subprocess, sys\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{c.pid}}')\n"
    )  # exits at once, its child still sleeping
    out = gr.execute([sys.executable, "-c", code], 20, tmp_path / "log", grace_s=3)
    assert out.returncode == 0 and not out.timed_out and out.seconds < 4.5
    grandchild = int(pids.read_text())
    deadline = time.monotonic() + 3
    while _pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(grandchild)


# ------------------------------------------------------------------------------ report


def _meta(**kw):
    meta = {
        "device": "NVIDIA H200", "date": "2026-12-01 10:00 UTC",
        "versions": gr.versions_line(GPU_INFO), "commit": "commit abc1234 (clean)",
        "command": "python benchmarks/gpu_report.py", "budget_s": 480, "wall_s": 301,
        "logs": "gpu_report_logs", "cpu": False,
    }  # fmt: skip
    return meta | kw


def test_markdown_report_from_canned_results(tmp_path):
    steps = {s.name: s for s in plan()}
    r = gr.StepResult
    results = [
        r(steps["kernels"], "ok", returncode=0, timeout_s=90, seconds=83.04,
          stdout="...\n== short test summary info ==\nSKIPPED [1] x: needs a CUDA device\n"
          "45 passed, 3 skipped in 80.12s\n", log=tmp_path / "01_kernels.log"),
        r(steps["logprobs"], "failed", returncode=1, timeout_s=160, seconds=20.0,
          stdout=LOGPROBS_OUT, stderr="Traceback (most recent call last):\nRuntimeError: x\n"),
        r(steps["generate"], "timed out", timeout_s=120.4, seconds=130.0,
          stdout="device: NVIDIA H200\n"),
        r(steps["grpo_step"], "skipped", reason="budget spent (5 s left of 480 s)"),
    ]  # fmt: skip
    text = gr.render_report(results, _meta())
    assert text.startswith("## GPU report: NVIDIA H200, 2026-12-01 10:00 UTC\n")
    assert "torch 2.5.1+cu124 (CUDA 12.4), triton 3.1.0, transformers 4.46.0, trl 0.12.0" in text
    assert "liger-kernel not installed" in text and "commit abc1234 (clean)" in text
    assert "| 1. kernels | ok | 83.0 | 45 passed, 3 skipped |" in text
    row = "| 2. logprobs | failed (exit code 1) | 20.0 | triton N=16384 H=4096: 1.80x GEMM |"
    assert row in text
    assert "| 3. generate | timed out after 120 s | 130.0 |" in text
    assert "| 4. grpo_step | skipped: budget spent (5 s left of 480 s) | - |  |" in text
    assert "### 2. logprobs: " in text and "### 4. grpo_step: " in text
    cmd = ("python -m pytest -q tests/test_kernels.py tests/test_kernel_selfcheck.py "
           "tests/test_distill_kernel.py")
    assert f"```\n{cmd}\n```" in text
    assert "log `gpu_report_logs/01_kernels.log`" in text
    assert "**the GPU tests were skipped**" in text
    assert "\n```\n" + LOGPROBS_OUT.splitlines()[0] + "\n" in text  # the table, verbatim
    assert "RuntimeError: x" in text  # a failed step shows its last lines
    assert gr.DECODE_NOTE in text.split("### 3. generate")[1].split("### 4.")[0]
    assert text.count("```") % 2 == 0


def test_train_figures_come_from_the_run_folder(tmp_path):
    metrics = [
        {"step": 0, "eval_accuracy": 0.01, "eval_format_rate": 0.0,
         "eval_completion_len_mean": 30.0},
        *[{"step": s, "reward": 0.1 * s, "accuracy": 0.0, "format_rate": 0.5,
           "completion_len_mean": 40.0 + s, "completion_len_max": 384} for s in (1, 2, 3)],
    ]  # fmt: skip
    timings = [
        {"step": 0, "eval_s": 4.0},
        {"step": 1, "rollout_s": 9.0, "update_s": 5.0, "tokens_per_s": 100.0},
        {"step": 2, "rollout_s": 1.0, "update_s": 0.5, "tokens_per_s": 1000.0},
        {"step": 3, "rollout_s": 2.0, "update_s": 1.0, "tokens_per_s": 3000.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (tmp_path / "timings.jsonl").write_text(
        "".join(json.dumps(t) + "\n" for t in timings) + '{"step": 4, "rollo'
    )  # a line cut by the kill
    step = next(s for s in plan(run_dir=tmp_path) if s.name == "train")
    summary = gr.summarize_train(gr.StepResult(step, "ok", stdout="done in 30s\n"))
    assert summary.headline == (
        "3 steps; steps 2-3 mean: rollout 1.50 s, update 0.75 s, 2,000 tokens/s"
    )
    text = "\n".join(summary.lines)
    assert "| 1 | 9.00 | 5.00 | 100 | 0.100 | 0.000 | 0.50 | 41.0 | 384 |" in text
    assert "| 3 | 2.00 | 1.00 | 3,000 | 0.300 |" in text
    assert "Held-out at step 0: accuracy 0.010, format 0.000, length 30.0, 4.0 s." in text
    assert "TFLOP/s" not in text  # timings without FLOPs (older runs): no throughput line
    for t in timings[1:]:
        t.update(rollout_flops=t["rollout_s"] * 2e12, update_flops=t["update_s"] * 6e12)
    (tmp_path / "timings.jsonl").write_text("".join(json.dumps(t) + "\n" for t in timings))
    text = "\n".join(gr.summarize_train(gr.StepResult(step, "ok")).lines)
    assert "rollout 2.00 TFLOP/s, update 6.00 TFLOP/s." in text


@pytest.mark.parametrize(
    "status, out, headline",
    [
        ("ok", "", "already built (valid cache)"),
        ("ok", "gpu-countdown base: building x\ncorpus: ...\nwrote x (500s)\n", "built"),
        ("timed out", "corpus: 300000 documents\nstep    50/2500  loss 2.1\n"
         "step   100/2500  loss 1.9\n", "reached pretraining 100/2500 before it stopped"),
        ("timed out", "gpu-countdown base: building x\n", "stopped while building the corpus"),
    ],
)  # fmt: skip
def test_base_headline_says_how_far_the_build_got(status, out, headline):
    step = next(s for s in plan() if s.name == "base")
    assert gr.summarize_base(gr.StepResult(step, status, stdout=out)).headline == headline


def test_grpo_step_headline_is_the_last_ratio_or_the_reason():
    step = next(s for s in plan() if s.name == "grpo_step")
    out = "ratio TRL / ours: 1.50x\nratio TRL / ours: 2.25x\n"
    s = gr.summarize_grpo_step(gr.StepResult(step, "ok", stdout=out))
    assert s.headline == "TRL / ours 2.25x (R1-Zero prompt); other rows 1.50x"
    s = gr.summarize_grpo_step(gr.StepResult(step, "failed", stderr="TRL is not installed\n"))
    assert s.headline == "no `ratio TRL / ours` line: TRL is not installed"


def test_distill_summary_reads_the_kernel_row_of_the_table():
    step = gr.Step("distill", "d", ["x"], 10)
    out = ("variant        MiB        s  mem/naive  time/naive\n"
           "twin          1372    38.16      0.082        0.73\n"
           "naive        16678    52.52      1.000        1.00\n"
           "triton         900     0.20      0.054        0.31\n"
           "liger    liger-kernel not installed\n")  # fmt: skip
    s = grf.summarize_distill(gr.StepResult(step, "ok", stdout=out))
    assert s.headline == "triton: 0.054 of naive memory, 0.31x naive time"
    s = grf.summarize_distill(gr.StepResult(step, "ok", stdout=out.replace("triton", "x")))
    assert s.headline == "twin: 0.082 of naive memory, 0.73x naive time"
