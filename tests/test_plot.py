"""grpo.run.plot: PNGs per quantity, several runs overlaid, and a clear message without
matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_run(d: Path, scale: float) -> Path:
    d.mkdir(parents=True)
    rows = [{"step": 0, "eval_accuracy": 0.0, "eval_format_rate": 0.0,
             "eval_completion_len_mean": 7.0, "eval_reward": 0.0}]  # fmt: skip
    for s in range(1, 6):
        rows.append({"step": s, "reward": 0.1 * s * scale, "accuracy": 0.1 * s,
                     "format_rate": 0.2 * s, "completion_len_mean": 10.0 * s,
                     "entropy": 1.0 / s, "kl": 0.01 * s})  # fmt: skip
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_plot_two_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from grpo.run.plot import PANELS, main

    a, b = _fake_run(tmp_path / "a", 1.0), _fake_run(tmp_path / "b", 2.0)
    out = tmp_path / "plots"
    assert main([str(a), str(b), "--out", str(out), "--labels", "first,second"]) == 0
    names = {p.name for p in out.glob("*.png")}
    assert names == {f"{p[0]}.png" for p in PANELS} | {"overview.png"}
    assert all((out / n).stat().st_size > 5000 for n in names)


def test_search_panels_only_for_runs_that_log_them(tmp_path):
    pytest.importorskip("matplotlib")
    from grpo.run.plot import PANELS, SEARCH_PANELS, main

    run = _fake_run(tmp_path / "countdown", 1.0)
    with (run / "metrics.jsonl").open("a") as f:
        for s in range(6, 9):
            f.write(json.dumps({"step": s, "reward": 0.5, "tries_mean": s / 4,
                                "gave_up_frac": 1 / s, "false_yes_frac": 0.1,
                                "recovered_frac": 0.05 * s}) + "\n")  # fmt: skip
        f.write(json.dumps({"step": 8, "eval_accuracy": 0.5, "eval_tries_mean": 2.0}) + "\n")
    out = tmp_path / "plots"
    assert main([str(run), "--out", str(out)]) == 0
    names = {p.name for p in out.glob("*.png")}
    assert names == {f"{p[0]}.png" for p in PANELS + SEARCH_PANELS} | {"overview.png"}, names


def test_plot_errors_are_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "grpo.run.plot", str(tmp_path / "nope")], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "metrics.jsonl" in p.stderr and "Traceback" not in p.stderr


def test_missing_matplotlib_gives_a_clear_message(tmp_path):
    run = _fake_run(tmp_path / "a", 1.0)
    code = ("import sys; sys.modules['matplotlib'] = None; from grpo.run.plot import main; "
            f"sys.exit(main([{str(run)!r}]))")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2
    assert "pip install" in p.stderr and "matplotlib" in p.stderr and "Traceback" not in p.stderr


def _plot(argv: list[str], capsys) -> tuple[int, str, str]:
    from grpo.run.plot import main

    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code: int, err: str, what: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, f"{what}: exit {code}, stderr {err!r}"
    return lines[0]


@pytest.mark.parametrize("window", ["0", "-3", "two"])
def test_smooth_window_is_range_checked(tmp_path, capsys, window):
    run = _fake_run(tmp_path / "a", 1.0)
    code, _, err = _plot([str(run), "--smooth", window, "--out", str(tmp_path / "p")], capsys)
    assert "--smooth" in _one_line(code, err, f"--smooth {window}")
    assert not (tmp_path / "p").exists(), "plots were written despite a bad --smooth"


def test_bad_flag_and_help_follow_the_project_style(capsys):
    code, _, err = _plot(["x", "--bogus"], capsys)
    assert "--bogus" in _one_line(code, err, "--bogus")
    code, out, _ = _plot(["--help"], capsys)
    assert code == 0 and "(default: 1" in " ".join(out.split()), out


def test_out_under_a_file_is_one_line(tmp_path):
    run = _fake_run(tmp_path / "a", 1.0)
    p = subprocess.run([sys.executable, "-m", "grpo.run.plot", str(run), "--out",
                        str(run / "metrics.jsonl" / "plots")], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    line = _one_line(p.returncode, p.stderr, "--out under a file")
    assert "Traceback" not in p.stderr and "metrics.jsonl" in line, p.stderr


def test_empty_metrics_is_one_line(tmp_path, capsys):
    run = tmp_path / "a"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    code, _, err = _plot([str(run)], capsys)
    line = _one_line(code, err, "empty metrics.jsonl")
    assert "metrics.jsonl" in line and "no training or evaluation rows" in line, line
    assert "not whole JSON" not in line
    (run / "metrics.jsonl").write_text('{"step": 1, "rew\n')  # one line, torn by a kill
    code, _, err = _plot([str(run)], capsys)
    line = _one_line(code, err, "only a torn line")
    assert "no training or evaluation rows yet; its last line, 1, is not whole JSON" in line


def test_corrupt_middle_line_names_file_and_line(tmp_path, capsys):
    run = _fake_run(tmp_path / "a", 1.0)
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:15]  # the third line, torn: not the last one
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _plot([str(run), "--out", str(tmp_path / "p")], capsys)
    assert f"{path}:3" in _one_line(code, err, "corrupt line 3"), err


def test_torn_last_line_is_skipped(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from grpo.run.plot import read_metrics

    run = _fake_run(tmp_path / "a", 1.0)
    path = run / "metrics.jsonl"
    whole = path.read_text()
    path.write_text(whole + '{"step": 6, "reward": 0.')  # what a kill mid-write leaves
    train, evals = read_metrics(run)
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5] and len(evals) == 1, train
    code, out, err = _plot([str(run), "--out", str(tmp_path / "p")], capsys)
    assert code == 0 and (tmp_path / "p" / "overview.png").is_file(), err


def test_row_with_a_string_value_names_the_key(tmp_path, capsys):
    run = _fake_run(tmp_path / "a", 1.0)
    path = run / "metrics.jsonl"
    path.write_text('{"step": 1, "reward": "high"}\n' + path.read_text())
    code, _, err = _plot([str(run), "--out", str(tmp_path / "p")], capsys)
    line = _one_line(code, err, "string reward")
    assert f"{path}:1" in line and "'reward'" in line, line
