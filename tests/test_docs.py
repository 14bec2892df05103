"""The documents hold up: every command they name runs, every code stop of the tour exists,
the README stays short, links resolve, and no commit hash stands in for an explanation."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHAPTERS = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README, *CHAPTERS]
# Every markdown file but BENCHMARKS.md, the record of how each figure was measured.
ALL_MD = sorted(
    p
    for p in ROOT.rglob("*.md")
    if p.name != "BENCHMARKS.md" or p.parent != ROOT
    if not any(part.startswith(".") or part == "runs" for part in p.relative_to(ROOT).parts)
)

# A commit hash: 7 to 40 hex digits with at least one letter and one digit, standing alone.
HASH = re.compile(r"(?<![\w/.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w-])")
COMMAND = re.compile(r"(?:^|[\s`(])(python3?|torchrun)((?:[ \t]+[^\s`;&()]+)+)")
NOT_OURS = {"pytest", "venv", "pip"}  # `python -m pytest`, `python3 -m venv`: not our commands
# Modules whose first positional argument names a subcommand (`build|inspect`, `train`).
SUBCOMMANDS = {"grpo.demo": {"build", "inspect"}, "grpo.search.verifiers": {"train"}}


def commands_in(text: str) -> set[tuple[str, ...]]:
    """The programs a document tells the reader to run: ("train_zero.py",), ("-m", "grpo.demo",
    "build"), ... One entry per program (and subcommand), whatever flags follow it."""
    found: set[tuple[str, ...]] = set()
    for m in COMMAND.finditer(text):
        launcher, words = m.group(1), m.group(2).split()
        if "|" in words:  # a shell pipe ends the command
            words = words[: words.index("|")]
        if not words:
            continue
        if launcher == "torchrun":  # torchrun [its flags] script.py [the script's flags]
            scripts = [w for w in words if w.endswith(".py")]
            if scripts:
                found.add((scripts[0],))
            continue
        if words[0] == "-m" and len(words) > 1:
            module = words[1]
            if module in NOT_OURS:
                continue
            subs = SUBCOMMANDS.get(module)
            if subs and len(words) > 2 and not words[2].startswith("-"):
                for sub in words[2].split("|"):
                    assert sub in subs, f"`python -m {module} {sub}`: no such subcommand"
                    found.add(("-m", module, sub))
            else:
                found.add(("-m", module))
        elif words[0].endswith(".py"):
            found.add((words[0],))
    return found


def test_commands_are_found_in_the_forms_the_docs_use():
    text = """
        python train_zero.py --task countdown
    run `python -m grpo.demo build|inspect` or `python3 -m venv .venv`, then
    `torchrun --standalone --nproc_per_node 2 train_zero.py --fsdp` and python -m pytest -q;
        python -m grpo.search.verifiers train --out v (python eval.py --model demo)
    """
    assert commands_in(text) == {
        ("train_zero.py",), ("-m", "grpo.demo", "build"), ("-m", "grpo.demo", "inspect"),
        ("-m", "grpo.search.verifiers", "train"), ("eval.py",),
    }  # fmt: skip


def _documented_commands() -> dict[tuple[str, ...], str]:
    where: dict[tuple[str, ...], str] = {}
    for doc in DOCS:
        for cmd in commands_in(doc.read_text()):
            where.setdefault(cmd, doc.relative_to(ROOT).as_posix())
    return where


def test_the_docs_name_the_main_commands():
    cmds = _documented_commands()
    for cmd in [("train_zero.py",), ("eval.py",), ("train_sft.py",), ("-m", "grpo.demo", "build")]:
        assert cmd in cmds, f"{' '.join(cmd)} is in no document"


def _help(cmd: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([sys.executable, *cmd, "--help"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    return cmd, p


def test_every_documented_command_answers_help():
    cmds = _documented_commands()
    assert len(cmds) >= 10, sorted(cmds)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_help, sorted(cmds)))
    failed = [
        f"`python {' '.join(cmd)} --help` (from {cmds[cmd]}) exited {p.returncode}: "
        f"{(p.stderr or p.stdout).strip()[-300:]}"
        for cmd, p in results
        if p.returncode != 0 or "usage" not in p.stdout.lower()
    ]
    assert not failed, "\n".join(failed)


def test_readme_is_at_most_300_lines():
    n = len(README.read_text().splitlines())
    assert n <= 300, f"README.md has {n} lines; the chapters in docs/ are where detail goes"


def test_readme_starts_with_set_up_the_main_command_and_the_tests():
    head = "\n".join(README.read_text().splitlines()[:40])
    for line in ["pip install torch==2.13.0", 'pip install -e ".[dev,plot]"',
                 "python train_zero.py", "python -m pytest -q"]:  # fmt: skip
        assert line in head, f"{line!r} is not in the README's first 40 lines"


def test_no_commit_hash_outside_benchmarks_md():
    assert README in ALL_MD and (ROOT / "BENCHMARKS.md") not in ALL_MD
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {m.group(0)}"
        for p in ALL_MD
        for i, line in enumerate(p.read_text().splitlines(), 1)
        for m in HASH.finditer(line)
    ]
    assert not hits, "commit hashes belong in BENCHMARKS.md:\n" + "\n".join(hits)


def test_the_hash_pattern():
    assert HASH.search("measured at 853e4c9 on") and HASH.search("(c2fc444)")
    assert HASH.search("a" * 20 + "1" * 20)
    for fine in ["deadbeef", "1234567", "sha256 " + "ab12" * 16, "runs/ab12cd34ef/x", "e2e"]:
        assert not HASH.search(fine), fine


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_relative_links_resolve():
    broken = []
    for doc in ALL_MD:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)


TOUR = ROOT / "docs" / "tour.md"
STOP = re.compile(r"`([\w./-]+\.py):([A-Za-z_][\w.]*)`")


def defined_names(path: Path) -> set[str]:
    """Every function and class of a module by qualified name: "f", "C", "C.method"."""
    names: set[str] = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + child.name)
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return names


def tour_stops() -> list[tuple[str, str]]:
    return STOP.findall(TOUR.read_text())


def test_the_tour_exists_and_stops_at_the_algorithm():
    files = {f for f, _ in tour_stops()}
    assert len(tour_stops()) >= 15, "the tour names too few file:function stops"
    for f in ["model/transformer.py", "model/generate.py", "grpo/rollout.py",
              "grpo/advantages.py", "grpo/loss.py", "grpo/update.py", "grpo/trainer.py",
              "grpo/evaluate.py", "kernels/logprob_triton.py"]:  # fmt: skip
        assert f in files, f"the tour never stops in {f}"


@pytest.mark.parametrize("stop", sorted(set(STOP.findall(TOUR.read_text())))
                         if TOUR.exists() else [], ids=lambda s: f"{s[0]}:{s[1]}")  # fmt: skip
def test_every_tour_stop_exists(stop):
    file, name = stop
    path = ROOT / file
    assert path.is_file(), f"docs/tour.md names {file}, which does not exist"
    assert name in defined_names(path), f"docs/tour.md names {file}:{name}, not defined there"


def test_the_tour_names_the_tests_that_prove_each_stop():
    named = set(re.findall(r"`(tests/test_\w+\.py)(?:::\w+)?`", TOUR.read_text()))
    assert len(named) >= 8, f"the tour names only {sorted(named)}"
    for t in named:
        assert (ROOT / t).is_file(), f"docs/tour.md names {t}, which does not exist"
    for t, test in re.findall(r"`(tests/test_\w+\.py)::(\w+)`", TOUR.read_text()):
        assert test in defined_names(ROOT / t), f"docs/tour.md names {t}::{test}, not there"
