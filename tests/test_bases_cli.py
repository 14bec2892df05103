"""`python -m grpo.demo build | inspect`: the builder's command line.

    python -m pytest -q tests/test_bases_cli.py

Every test runs with the shipped base copied to a temporary folder and the
caches moved there too, so nothing here can write the real ones. A build or
an inspection that must not start is replaced by a stub that fails the test
when it is called; the one real build is 2 steps on 50 documents (seconds).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grpo.bases import build, cli
from grpo.demo import main

ROOT = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """(shipped copy, demo cache): the shipped base copied to tmp, the caches moved to tmp."""
    shipped = tmp_path / "assets" / "demo-base"
    shutil.copytree(build.SHIPPED_DIR, shipped)
    cache = tmp_path / "cache" / "demo-base"
    monkeypatch.setitem(build.SHIPPED_DIRS, "demo", shipped)
    monkeypatch.setitem(build.SHIPPED_DIRS, "demo-countdown", tmp_path / "assets" / "none")
    for name in build.BASES:
        monkeypatch.setitem(build.CACHE_DIRS, name, tmp_path / "cache" / f"{name}-base")
    monkeypatch.setitem(build.CACHE_DIRS, "demo", cache)
    return shipped, cache


@pytest.fixture
def no_work(monkeypatch):
    """Builds and inspections must not start: the error is to be found before them."""

    def refuse(*args, **kwargs):
        raise AssertionError("the build or inspection started before the error was found")

    monkeypatch.setattr(cli, "build_base", refuse)
    monkeypatch.setattr(cli, "inspect_base", refuse)


def _exit(argv: list[str], capsys) -> tuple[int | str | None, str]:
    """(exit status, stderr) of main(argv), which must exit."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def _assert_one_line_error(argv: list[str], code, err: str, message: str) -> None:
    assert code == 2, f"{argv}: exit status {code!r}, expected 2; stderr {err!r}"
    assert err.count("\n") == 1 and err.endswith("\n"), f"{argv}: not one line: {err!r}"
    assert err.startswith("python -m grpo.demo") and "Traceback" not in err, err
    assert message in err, f"{argv}: {message!r} not in {err!r}"


# --- issue 9, item 1: the shipped base is written only when named ---------------------------


def test_build_without_out_writes_the_cache_never_the_shipped_base(dirs, capsys):
    shipped, cache = dirs
    before = _hashes(shipped)
    assert main(["build", "--steps", "2", "--docs", "50", "--log-every", "1"]) == 0
    assert _hashes(shipped) == before, "a build without --out rewrote the shipped base"
    want = replace(build.base_config("demo"), steps=2, num_docs=50)
    reason = build.validate_base(cache, want)
    assert reason is None, f"the build did not land in the cache {cache}: {reason}"
    out = capsys.readouterr().out
    assert "not the default demo build (num_docs, steps changed)" in out, out
    # The shipped copy is still what `--model demo` gets, with no rebuild.
    lines: list[str] = []
    assert build.ensure_base("demo", lines.append) == shipped and not lines, lines


def test_build_writes_the_shipped_base_when_named_with_out(dirs, capsys):
    shipped, _ = dirs
    assert main(["build", "--steps", "2", "--docs", "50", "--out", str(shipped)]) == 0
    manifest = json.loads((shipped / build.MANIFEST).read_text())
    assert (manifest["build"]["steps"], manifest["build"]["num_docs"]) == (2, 50), manifest
    assert "writing the shipped asset" in capsys.readouterr().out


# --- item 6: every number is range-checked before any work ----------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["build", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["build", "--steps", "two"], "argument --steps: expected an integer, got 'two'"),
        (["build", "--docs", "0"], "argument --docs: must be >= 1, got 0"),
        (["build", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["build", "--log-every", "0"], "argument --log-every: must be >= 1, got 0"),
        (["build", "--set", "steps=0"], "steps must be >= 1, got 0"),
        (["build", "--set", "lr=-0.001"], "lr must be > 0"),
        (["build", "--set", "lr=nan"], "lr must be > 0"),
        (["build", "--set", "warmup_steps=-1"], "warmup_steps >= 0"),
        (["build", "--set", "num_heads=5"], "num_heads (5) must be a multiple of num_kv_heads"),
        (["build", "--set", "answer_share=0.9"], "shares must be >= 0 and sum to 1"),
        (["build", "--base", "demo-countdown", "--set", "max_value=0"], "max_value must be >= 1"),
        (["inspect", "--n", "0"], "argument --n: must be >= 1, got 0"),
        (["inspect", "--samples", "0"], "argument --samples: must be >= 1, got 0"),
        (["inspect", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1, got 0"),
    ],
)
def test_out_of_range_numbers_are_one_line_errors(argv, message, dirs, no_work, capsys):
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, message)


@pytest.mark.parametrize("config", [build.base_config(name) for name in build.BASES])
def test_build_configs_check_their_own_numbers(config):
    bad = {"steps": 0, "num_docs": 0, "seed": -1, "batch_size": 0, "seq_len": 0, "lr": 0.0,
           "grad_clip": float("inf"), "min_lr_ratio": 1.5, "weight_decay": -0.1,
           "head_dim": 15}  # fmt: skip
    for key, value in bad.items():
        try:
            replace(config, **{key: value})
        except ValueError as e:
            assert key in str(e), f"{key}={value}: the message does not name the field: {e}"
        else:
            pytest.fail(f"{type(config).__name__} accepted {key}={value}")


# --- item 13: user errors are one line and exit 2, never a traceback ------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "--base", "{tmp}/missing"], "no such folder"),
        (["inspect", "--base", "{tmp}/empty"], "missing model config"),
        (["inspect", "--base", "{tmp}/gpt2"], "model_type 'gpt2'"),
        (["inspect", "--json", "{tmp}/empty"], "is a folder"),
        (["inspect", "--json", "{tmp}/file/report.json"], "is not a folder"),
        (["build", "--set", "nope=1"], "expected KEY=VALUE, KEY one of seed,"),
        (["build", "--set", "steps"], "expected KEY=VALUE"),
        (["build", "--set", "steps=abc"], "invalid literal for int()"),
        (["build", "--device", "gpu"], "--device 'gpu': expected cpu, cuda, cuda:N or auto"),
        (["build", "--out", "{tmp}/file"], "exists and is not a folder"),
        (["build", "--out", "{tmp}/file/base"], "is not a folder"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, message, dirs, no_work, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, message)
    assert not (tmp_path / "file" / "base").exists() and not dirs[1].exists()


def test_countdown_base_on_a_cpu_is_one_line(dirs, no_work, capsys):
    if torch.cuda.is_available():
        pytest.skip("the CPU guard is only reachable without CUDA")
    argv = ["inspect", "--base", "gpu-countdown"]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "--device cpu")


def test_the_command_reports_a_bad_base_in_one_line(tmp_path):
    # The real entry point, end to end: no traceback reaches the terminal.
    p = subprocess.run(
        [sys.executable, "-m", "grpo.demo", "inspect", "--base", str(tmp_path / "missing")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and "no such folder" in p.stderr, p.stderr


def test_ctrl_c_is_one_line_and_exit_130(dirs, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_base", interrupted)
    try:
        code = main(["build", "--steps", "2"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main(): the user sees a traceback")
    err = capsys.readouterr().err
    assert code == 130 and err == "python -m grpo.demo build: interrupted\n", (code, err)


# --- item 14: progress lines are line-buffered ----------------------------------------------


def test_output_is_line_buffered(monkeypatch):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert not out.line_buffering and not err.line_buffering
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert out.line_buffering, "stdout is not line-buffered: progress lines wait in a buffer"
    assert err.line_buffering, "stderr is not line-buffered"


# --- item 16: --help shows every default, once ----------------------------------------------


@pytest.mark.parametrize(
    "command, shown",
    [
        ("build", {"--log-every": "(default: 50)", "--steps": "1000 for demo", "--base": "demo)"}),
        ("inspect", {"--n": "(default: 500)", "--samples": "(default: 4)", "--base": "demo)"}),
    ],
)
def test_help_shows_every_default_once(command, shown, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out.split("options:", 1)[1]
    entries = {}
    for entry in re.split(r"\n(?=  -)", text.strip("\n")):
        flat = " ".join(entry.split())
        entries[flat.split()[0]] = flat
    entries.pop("-h,")
    for flag, flat in entries.items():
        assert flat.count("default:") == 1, f"{command} {flag}: defaults shown: {flat!r}"
    for flag, want in shown.items():
        assert want in entries[flag], f"{command} {flag}: {want!r} not in {entries[flag]!r}"
