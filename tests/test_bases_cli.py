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


# --- the shipped base is written only when named ---------------------------------------


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
        (["inspect", "--json", "{tmp}/file/report.json"], "is a file, not a folder"),
        (["build", "--set", "nope=1"], "expected KEY=VALUE, KEY one of seed,"),
        (["build", "--set", "steps"], "expected KEY=VALUE"),
        (["build", "--set", "steps=abc"], "invalid literal for int()"),
        (["build", "--device", "gpu"], "--device 'gpu': expected cpu, cuda, cuda:N or auto"),
        (["build", "--out", "{tmp}/file"], "exists and is not a folder"),
        (["build", "--out", "{tmp}/file/base"], "is a file, not a folder"),
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


# --- audit: --out never deletes anything but a previous build --------------------------------


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256): what must survive a refusal."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _not_a_build(kind: str, folder: Path) -> None:
    """Fill `folder` with something a build must not replace."""
    folder.mkdir(parents=True)
    if kind == "unrelated files":
        (folder / "important.txt").write_text("irreplaceable\n")
        (folder / "sub").mkdir()
        (folder / "sub" / "y").write_text("y\n")
    elif kind == "an SFT run":
        shutil.copytree(build.SHIPPED_DIR, folder, dirs_exist_ok=True)
        (folder / build.MANIFEST).unlink()
        (folder / "metrics.jsonl").write_text('{"step": 1}\n')
        (folder / "trainer_state.pt").write_bytes(b"state")
    elif kind == "a build with a file added":
        shutil.copytree(build.SHIPPED_DIR, folder, dirs_exist_ok=True)
        (folder / "inspect.json").write_text("{}\n")
    elif kind == "checkpoint files without a manifest":
        for name in build.CHECKPOINT_FILES:
            shutil.copy(build.SHIPPED_DIR / name, folder / name)
    elif kind == "a manifest without checksums":
        shutil.copytree(build.SHIPPED_DIR, folder, dirs_exist_ok=True)
        (folder / build.MANIFEST).write_text(json.dumps({"build": {}, "files": {}}))
    else:
        raise AssertionError(kind)


NOT_A_BUILD = ["unrelated files", "an SFT run", "a build with a file added",
               "checkpoint files without a manifest", "a manifest without checksums"]  # fmt: skip


@pytest.mark.parametrize("kind", NOT_A_BUILD)
def test_build_refuses_an_out_folder_that_is_not_a_build(kind, dirs, no_work, tmp_path, capsys):
    precious = tmp_path / "precious"
    _not_a_build(kind, precious)
    before = _tree(precious)
    argv = ["build", "--out", str(precious), "--steps", "1", "--docs", "10"]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "refusing to replace it")
    assert _tree(precious) == before, f"{kind}: the folder was changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets", "precious"], "left behind"


def test_the_command_keeps_a_folder_that_is_not_a_build(tmp_path):
    # End to end: the command must not exit 0 having deleted the folder's files.
    precious = tmp_path / "x" / "precious"
    _not_a_build("unrelated files", precious)
    before = _tree(precious)
    p = subprocess.run(
        [sys.executable, "-m", "grpo.demo", "build", "--out", str(precious), "--steps", "1",
         "--docs", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "important.txt, sub/" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not p.stdout, (p.stdout, p.stderr)
    assert _tree(precious) == before and sorted(precious.parent.iterdir()) == [precious]


def test_which_folders_a_build_may_replace(tmp_path):
    assert build.not_replaceable(tmp_path / "new") is None
    assert build.not_replaceable(tmp_path) is None  # empty
    assert build.not_replaceable(build.SHIPPED_DIR) is None  # a previous build
    corrupt = tmp_path / "corrupt"
    shutil.copytree(build.SHIPPED_DIR, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"cut short")
    assert build.not_replaceable(corrupt) is None  # still a build: ensure_base rebuilds it
    (tmp_path / "file").write_text("x\n")
    assert build.not_replaceable(tmp_path / "file") == "exists and is not a folder"
    for i, kind in enumerate(NOT_A_BUILD):
        _not_a_build(kind, tmp_path / f"other{i}")
        assert "refusing to replace it" in build.not_replaceable(tmp_path / f"other{i}"), kind


def test_build_base_never_replaces_what_is_not_a_build(tmp_path, monkeypatch):
    # The library refuses too (ensure_base, or any caller), before pretraining ...
    precious = tmp_path / "precious"
    _not_a_build("unrelated files", precious)
    before = _tree(precious)
    real_pretrain = build.pretrain

    def refuse(*args, **kwargs):
        raise AssertionError("pretraining started before the folder was checked")

    monkeypatch.setattr(build, "pretrain", refuse)
    tiny = replace(build.base_config("demo"), steps=1, num_docs=10)
    with pytest.raises(ValueError, match="refusing to replace it"):
        build.build_base(precious, tiny, log=lambda line: None)
    assert _tree(precious) == before
    # ... and again just before replacing: a file that landed during the build survives.
    out = tmp_path / "out"
    out.mkdir()

    def meanwhile(*args, **kwargs):
        result = real_pretrain(*args, **kwargs)
        (out / "notes.txt").write_text("written during the build\n")
        return result

    monkeypatch.setattr(build, "pretrain", meanwhile)
    with pytest.raises(ValueError, match="notes.txt"):
        build.build_base(out, tiny, log=lambda line: None)
    assert _tree(out) == {"notes.txt": hashlib.sha256(b"written during the build\n").hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "precious"], "left behind"


def test_build_out_empty_is_refused(dirs, no_work, capsys):
    argv = ["build", "--out", "", "--steps", "1", "--docs", "10"]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "--out: empty path")
    assert not dirs[1].exists(), "an empty --out built into the cache"


def test_inspect_json_empty_is_refused(dirs, no_work, capsys):
    argv = ["inspect", "--n", "2", "--samples", "1", "--json", ""]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "--json: empty path")


# --- audit: places nothing can be written to, found before work and caught at write time -----


def _procfs() -> bool:
    return Path("/proc/self").is_dir() and Path("/sys/kernel").is_dir()


@pytest.mark.skipif(not _procfs(), reason="needs Linux's /proc and /sys")
@pytest.mark.parametrize(
    "argv, where",
    [
        (["build", "--out", "/proc/x", "--steps", "1", "--docs", "10"], "/proc"),
        (["build", "--out", "/sys/x", "--steps", "1", "--docs", "10"], "/sys"),
        (["inspect", "--n", "2", "--samples", "1", "--json", "/proc/x"], "/proc"),
        (["inspect", "--n", "2", "--samples", "1", "--json", "/sys/x/report.json"], "/sys"),
    ],
)
def test_unwritable_places_are_refused_before_work(argv, where, dirs, no_work, capsys):
    code, err = _exit(argv, capsys)
    flag = "--json" if argv[0] == "inspect" else "--out"
    _assert_one_line_error(argv, code, err, f"{flag} {where}/")
    assert not dirs[1].exists(), "a build started"


@pytest.mark.parametrize(
    "error, code",
    [
        (OSError(28, "No space left on device", "/b/.base.build-1/model.safetensors"), 1),
        (FileNotFoundError(2, "No such file or directory", "/proc/.x.build-1"), 2),
    ],
)
def test_build_write_failures_are_one_line(error, code, dirs, monkeypatch, tmp_path, capsys):
    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "build_base", fails)
    argv = ["build", "--out", str(tmp_path / "b"), "--steps", "1", "--docs", "10"]
    try:
        got = main(argv)
    except OSError as e:
        pytest.fail(f"the OSError escaped main(): the user sees a traceback ({e})")
    err = capsys.readouterr().err
    assert got == code, (got, err)
    assert err.count("\n") == 1 and err.startswith("python -m grpo.demo build: error: "), err
    assert error.strerror in err and error.filename in err and str(tmp_path / "b") in err, err


@pytest.mark.skipif(not _procfs(), reason="needs Linux's /proc")
def test_inspect_json_write_failure_is_one_line(dirs, monkeypatch, capsys):
    # The up-front check passes (as if /proc/x had been writable then); the write fails.
    monkeypatch.setattr(cli, "_unwritable", lambda path, folder: None)
    monkeypatch.setattr(cli, "inspect_base", lambda *args, **kwargs: {"report": 1})
    monkeypatch.setattr(cli, "format_report", lambda report: "the report")
    argv = ["inspect", "--n", "2", "--samples", "1", "--json", "/proc/x"]
    try:
        got = main(argv)
    except OSError as e:
        pytest.fail(f"the OSError escaped main(): the user sees a traceback ({e})")
    out, err = capsys.readouterr()
    assert got == 2 and "the report" in out, (got, out, err)
    assert err.count("\n") == 1 and "cannot write --json /proc/x" in err, err


# --- audit: inspect's budget and task are checked against the base before the weights load ---


def test_inspect_budget_beyond_the_context_is_one_line(dirs, no_work, capsys):
    argv = ["inspect", "--n", "2", "--samples", "1", "--max-new-tokens", "100000"]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "exceeds the context of the base")
    fit = int(re.search(r"at most (\d+) fit", err).group(1))
    # The bound is exact: what the message allows runs, one more does not.
    shipped = dirs[0]
    assert cli.inspect_problem(shipped, 2, fit) is None
    assert "exceeds the context" in cli.inspect_problem(shipped, 2, fit + 1)


def test_inspect_task_the_tokenizer_cannot_express_is_one_line(dirs, no_work, capsys):
    argv = ["inspect", "--n", "2", "--samples", "1", "--task", "countdown"]
    code, err = _exit(argv, capsys)
    _assert_one_line_error(argv, code, err, "does not fit the countdown task")
    assert "--base demo-countdown" in err and "built for addition" in err, err


def test_inspect_base_checks_before_loading_the_weights(dirs, monkeypatch):
    from grpo.bases import inspect

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded before the check")

    monkeypatch.setattr(inspect, "load_pretrained", refuse)
    with pytest.raises(ValueError, match="exceeds the context"):
        inspect.inspect_base(dirs[0], n=2, samples=1, max_new_tokens=100000)
    with pytest.raises(ValueError, match="does not fit the countdown task"):
        inspect.inspect_base(dirs[0], n=2, samples=1, task="countdown")
