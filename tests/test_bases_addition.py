"""The "demo" base: addition corpus, scratchpad, packing, build, cache, and the shipped checkpoint.

    python -m pytest -q tests/test_bases_addition.py

Builds here use a tiny model and a few dozen steps (seconds); the real build is
`python -m grpo.demo build --out assets/demo-base` (minutes), and its output is
checked as shipped.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grpo.bases.addition import (
    DEFAULT_CONFIG,
    TRANSCRIPT_MODES,
    build_corpus,
    column_steps,
    corpus_records,
    corpus_task,
    scratchpad,
    transcript_completion,
    worked_example,
)
from grpo.bases.build import (
    CHECKPOINT_FILES,
    MANIFEST,
    REPO_ROOT,
    SHIPPED_DIR,
    build_base,
    ensure_demo_base,
    validate_base,
)
from grpo.bases.common import EOS, TAGS
from grpo.bases.inspect import classify_completion
from grpo.bases.pretrain import pack_rows
from grpo.tasks.rewards import check_format, extract_answer
from model import Tokenizer, load_pretrained

TINY = replace(
    DEFAULT_CONFIG, num_docs=400, tokenizer_docs=200, hidden_size=32, intermediate_size=64,
    num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, seq_len=192, batch_size=4,
    steps=12, warmup_steps=3,
)  # fmt: skip
STEP = re.compile(r"(\d)\+(\d)\+(\d)=(\d+):(\d+)")
QUESTION = re.compile(r"What is (\d+) \+ (\d+)")
ALIGNED = re.compile(r"(\d+) \+ (\d+): ")  # the scratchpad's first line: "3457 + 0812: "


class Lines:
    """A `log` callable that keeps what it was given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def records():
    return corpus_records(4000, seed=0)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("tiny") / "base", TINY, log=Lines())


# --- corpus -----------------------------------------------------------------------------


def test_corpus_is_deterministic_in_the_seed():
    first = build_corpus(300, seed=5)
    assert first == build_corpus(300, seed=5), "same seed gave a different corpus"
    assert first != build_corpus(300, seed=6), "different seeds gave the same corpus"
    assert all(doc.endswith(EOS) and doc.count(EOS) == 1 for doc in first)


def test_mode_mix_matches_the_config(records):
    kinds = [k for k, _, _ in records]
    n = len(kinds)
    transcripts = n - kinds.count("worked")
    # Binomial standard errors are <= 0.008 (all docs) and <= 0.011 (transcripts).
    got = transcripts / n
    assert abs(got - DEFAULT_CONFIG.transcript_share) < 0.04, f"transcript share {got:.3f}"
    for mode in TRANSCRIPT_MODES:
        want = getattr(DEFAULT_CONFIG, f"{mode}_share")
        share = kinds.count(mode) / transcripts
        assert abs(share - want) < 0.05, f"{mode}: share {share:.3f}, configured {want}"


def test_transcripts_are_the_trainers_prompt_plus_a_completion(records):
    task = corpus_task()
    for kind, example, text in records[:400]:
        if kind == "worked":
            assert "Assistant:" not in text and not any(t in text for t in TAGS), text
            continue
        prompt = task.prompt(example)
        assert text.startswith(prompt), f"document does not start with the task prompt: {text}"
        completion = text[len(prompt) :]
        assert classify_completion(completion) == kind, f"{kind!r} misread: {completion!r}"
        score = task.score(completion, example)
        assert score["accuracy"] == (kind != "number"), f"{kind}: {completion!r} {score}"
        assert score["format"] == (kind in ("empty_think", "scratchpad")), completion


def test_heldout_problems_never_occur_in_the_corpus(records):
    heldout = {(ex["a"], ex["b"]) for ex in corpus_task().heldout(500)}
    seen = set()
    for _, example, text in records:
        pairs = {(int(a), int(b)) for a, b in QUESTION.findall(text)}
        assert pairs == {(example["a"], example["b"])}, f"unexpected question in {text!r}"
        seen |= pairs
    leaked = seen & heldout
    assert not leaked, f"held-out problems in the corpus: {sorted(leaked)[:5]}"


def _check_steps(a: int, b: int, steps: list[tuple[str, ...]]) -> str:
    """Assert a column scratchpad is right step by step; return its last partial result."""
    ra, rb = str(a)[::-1], str(b)[::-1]
    carry, partial = 0, ""
    for i, (x, y, c, s, p) in enumerate(steps):
        want_x = ra[i] if i < len(ra) else "0"
        want_y = rb[i] if i < len(rb) else "0"
        assert (x, y, int(c)) == (want_x, want_y, carry), f"{a}+{b} column {i}: {steps[i]}"
        assert int(x) + int(y) + int(c) == int(s), f"{a}+{b}: wrong sum in {steps[i]}"
        assert p == s[-1] + partial, f"{a}+{b}: partial {p} does not extend {partial!r}"
        carry, partial = int(s) // 10, p
    assert carry == 0, f"{a}+{b}: carry {carry} left after the last step"
    return partial


@pytest.mark.parametrize(
    "a, b", [(3457, 812), (951, 80), (9999, 9999), (999, 1), (100, 100), (1, 9999), (0, 0)]
)
def test_column_steps_end_in_the_sum(a, b):
    steps = [tuple(STEP.fullmatch(s).groups()) for s in column_steps(a, b)]
    assert _check_steps(a, b, steps) == str(a + b)


def test_scratchpad_documents_are_correct_and_the_answer_is_a_copy(records):
    checked = 0
    for kind, example, text in records:
        if kind not in ("scratchpad", "worked"):
            continue
        a, b = example["a"], example["b"]
        aligned = ALIGNED.findall(text)
        assert len(aligned) == 1, f"expected one aligned restatement: {text!r}"
        x, y = aligned[0]
        assert (int(x), int(y)) == (a, b) and len(x) == len(y) == max(len(str(a)), len(str(b)))
        last = _check_steps(a, b, STEP.findall(text))
        assert last == str(a + b), f"last partial {last} != {a + b}: {text!r}"
        final = extract_answer(text) if kind == "scratchpad" else text.rsplit(" is ", 1)[1]
        assert final.rstrip(f".{EOS}") == last, f"answer is not the last partial: {text!r}"
        checked += 1
    assert checked > 1000, f"only {checked} scratchpad documents in the sample"


def test_classify_completion():
    cases = {
        " <answer>12</answer><|endoftext|>": "answer",
        " <think></think> <answer>12</answer>": "empty_think",
        " <think> 12 + 05: 2+5+0=7:7, 1+0+0=1:17 </think> <answer>17</answer>": "scratchpad",
        " 12<|endoftext|>": "number",
        " <think> 12 + 05: 2+5+0=7:7, 1+0": "other",  # truncated
        " <think> hmm </think> <answer>12</answer>": "other",
        " the answer is 12": "other",
    }
    for text, mode in cases.items():
        assert classify_completion(text) == mode, f"{text!r}: {classify_completion(text)}"


def test_pack_rows_keeps_every_document_whole():
    docs = [[i] * n for i, n in enumerate([5, 9, 3, 7, 1, 8, 2, 9, 4, 6, 10])]
    rows, real = pack_rows(docs, row_len=10, pad_id=-1, window=4)
    packed = [r[m].tolist() for r, m in zip(rows, real)]
    runs = sorted(tuple(run) for row in packed for run in _runs(row))
    assert runs == sorted(tuple(d) for d in docs), "a document was split, lost or duplicated"
    assert all(real[i, : real[i].sum()].all() for i in range(len(rows))), "padding inside a row"


def _runs(row: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for x in row:
        if out and out[-1][0] == x:
            out[-1].append(x)
        else:
            out.append([x])
    return out


# --- tokenizer and build ----------------------------------------------------------------


def test_tiny_build_loads_and_tokenizes_like_the_trainer(tiny_base):
    model = load_pretrained(tiny_base, dtype=torch.float32)
    tok = Tokenizer.from_dir(tiny_base)
    assert tok.decode([tok.eos_id]) == EOS and model.config.vocab_size == tok.vocab_size
    for tag in TAGS:
        assert len(tok.encode(tag)) == 1, f"{tag} is not a single token"
    assert len(tok.encode("0123456789")) == 10, "digits are not one token each"
    task = corpus_task()
    example = task.heldout(1)[0]
    prompt = task.prompt(example)
    for mode in TRANSCRIPT_MODES:
        completion = transcript_completion(mode, example["a"], example["b"])
        whole = tok.encode(prompt + completion + EOS)
        assert whole == tok.encode(prompt) + tok.encode(completion + EOS), (
            f"{mode}: tokens of prompt + completion differ from the document's"
        )
    with torch.no_grad():
        logits = model(torch.tensor([tok.encode(prompt)]))
    assert torch.isfinite(logits).all()


def test_work_starts_as_far_from_the_question_in_both_contexts(tiny_base):
    # A model this small learns its lookups by relative position: with the work
    # 2 tokens after the question in worked examples and 6 in transcripts, the
    # transcript scratchpads of a pilot build copied wrong digits 97% of the time.
    tok = Tokenizer.from_dir(tiny_base)
    task = corpus_task()
    example = task.heldout(1)[0]
    a, b = example["a"], example["b"]
    transcript = task.prompt(example) + transcript_completion("scratchpad", a, b)
    gaps = []
    for text in (transcript, worked_example(a, b)):
        question_end = len(tok.encode(text[: text.index(f" + {b}") + len(f" + {b}")]))
        work_start = len(tok.encode(text[: text.index(scratchpad(a, b))]))
        gaps.append(work_start - question_end)
    assert gaps[0] == gaps[1], f"work starts {gaps[0]} vs {gaps[1]} tokens after the question"


def test_scratchpad_tokens_are_the_same_in_transcripts_and_worked_examples(tiny_base):
    # The model learns the work mostly from the worked examples; it carries
    # over to the transcripts only if it is the same tokens there.
    tok = Tokenizer.from_dir(tiny_base)
    task = corpus_task()
    for example in task.heldout(20):
        a, b = example["a"], example["b"]
        work = tok.encode(" " + scratchpad(a, b))
        transcript = tok.encode(task.prompt(example) + transcript_completion("scratchpad", a, b))
        worked = tok.encode(worked_example(a, b))
        for name, ids in (("transcript", transcript), ("worked example", worked)):
            assert any(ids[i : i + len(work)] == work for i in range(len(ids))), (
                f"{a}+{b}: the {name} tokenizes its scratchpad differently"
            )


def test_same_seed_gives_identical_weights(tiny_base, tmp_path):
    again = build_base(tmp_path / "again", TINY, log=Lines())
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_base / name).read_bytes(), f"{name} differs"
    other = build_base(tmp_path / "other", replace(TINY, seed=1), log=Lines())
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_manifest_records_the_build(tiny_base):
    manifest = json.loads((tiny_base / MANIFEST).read_text())
    assert manifest["build"] == TINY.to_dict()
    assert set(manifest["files"]) == set(CHECKPOINT_FILES)
    assert validate_base(tiny_base, TINY) is None
    assert not list(tiny_base.parent.glob(".base.*")), "a temporary build folder was left behind"


def test_cache_rebuilds_corrupt_and_stale_builds(tiny_base, tmp_path):
    import shutil

    path = tmp_path / "cache"
    shutil.copytree(tiny_base, path)
    log = Lines()
    assert ensure_demo_base(path, log=log, config=TINY) == path
    assert not log.lines, f"a valid cache was rebuilt: {log.text()}"

    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    assert validate_base(path, TINY).startswith("corrupt: model.safetensors")
    log = Lines()
    ensure_demo_base(path, log=log, config=TINY)
    assert "corrupt: model.safetensors" in log.text(), log.text()
    assert validate_base(path, TINY) is None and load_pretrained(path) is not None

    (path / "tokenizer.json").unlink()
    assert validate_base(path, TINY) == "corrupt: tokenizer.json is missing"
    (path / MANIFEST).write_text("{not json")
    assert "not valid JSON" in validate_base(path, TINY)

    changed = replace(TINY, lr=TINY.lr / 2)
    shutil.rmtree(path)
    shutil.copytree(tiny_base, path)
    reason = validate_base(path, changed)
    assert reason.startswith("stale") and "lr" in reason, reason
    log = Lines()
    ensure_demo_base(path, log=log, config=changed)
    assert "stale" in log.text(), log.text()
    assert json.loads((path / MANIFEST).read_text())["build"]["lr"] == changed.lr


# --- the shipped checkpoint -------------------------------------------------------------


def test_shipped_base_validates_and_loads():
    reason = validate_base(SHIPPED_DIR, DEFAULT_CONFIG)
    assert reason is None, (
        f"assets/demo-base does not match grpo.bases.DEFAULT_CONFIG: {reason}; "
        "rebuild it with `python -m grpo.demo build --out assets/demo-base`"
    )
    log = Lines()
    assert ensure_demo_base(log=log) == SHIPPED_DIR and not log.lines, log.text()
    model = load_pretrained(SHIPPED_DIR)
    tok = Tokenizer.from_dir(SHIPPED_DIR)
    task = corpus_task()
    example = task.heldout(1)[0]
    prompt = tok.encode(task.prompt(example))
    assert len(prompt) <= 110, f"the prompt is {len(prompt)} tokens; the BPE lost its merges"
    with torch.no_grad():
        logits = model(torch.tensor([prompt]))[0, -1]
    # The base writes a space, then chooses its mode: the tags decide the demo.
    assert tok.decode([int(logits.argmax())]) == " "
    assert check_format(" <think></think> <answer>1</answer>", task.primer)


def test_shipped_files_are_plain_git_blobs():
    root = Path(REPO_ROOT, ".gitattributes")
    for line in root.read_text().splitlines() if root.is_file() else []:
        pattern, *attrs = line.split() or [""]
        matches = fnmatch.fnmatch("assets/demo-base/model.safetensors", pattern.lstrip("/"))
        assert not ("filter=lfs" in attrs and matches), f"{root}: {line!r} sends the base to LFS"
    rules = (SHIPPED_DIR.parent / ".gitattributes").read_text().splitlines()
    assert "demo-base/** -text" in rules, "line-ending conversion would break the sha256s"
    head = (SHIPPED_DIR / "model.safetensors").read_bytes()[:64]
    assert not head.startswith(b"version https://git-lfs"), "model.safetensors is an LFS pointer"


def test_the_shipped_student_base_is_valid_and_a_quarter_of_the_demo():
    """demo-student: the demo's corpus, tokenizer and recipe, a quarter of the parameters."""
    from dataclasses import asdict

    from grpo.bases import ensure_base
    from grpo.bases.addition import DEFAULT_CONFIG, STUDENT_CONFIG
    from grpo.bases.build import STUDENT_SHIPPED_DIR, base_name, validate_base
    from model import load_pretrained

    assert validate_base(STUDENT_SHIPPED_DIR, STUDENT_CONFIG) is None
    assert ensure_base("demo-student", log=lambda *a: None) == STUDENT_SHIPPED_DIR
    assert base_name(STUDENT_CONFIG) == "demo-student" and base_name(DEFAULT_CONFIG) == "demo"
    differ = {k for k, v in asdict(STUDENT_CONFIG).items() if asdict(DEFAULT_CONFIG)[k] != v}
    assert differ == {"hidden_size", "intermediate_size", "num_heads", "num_kv_heads"}
    student = sum(p.numel() for p in load_pretrained(STUDENT_SHIPPED_DIR).parameters())
    demo = sum(p.numel() for p in load_pretrained(ensure_base("demo")).parameters())
    assert 0.2 < student / demo < 0.3
    assert (STUDENT_SHIPPED_DIR / "tokenizer.json").read_text() == (
        ensure_base("demo") / "tokenizer.json").read_text()  # fmt: skip
