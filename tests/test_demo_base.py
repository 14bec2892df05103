"""The demo's base model: corpus, scratchpad, build, cache, and the shipped checkpoint.

    python -m pytest -q tests/test_demo_base.py

Builds here use a tiny model and a few dozen steps (seconds); the real build is
`python -m grpo.demo build` (minutes), and its output is checked as shipped.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grpo import demo
from grpo.demo import (
    DEFAULT_CONFIG,
    EOS,
    MANIFEST,
    SHIPPED_DIR,
    TAGS,
    TRANSCRIPT_MODES,
    build_base,
    build_corpus,
    classify_completion,
    column_steps,
    corpus_records,
    corpus_task,
    ensure_demo_base,
    pack_rows,
    transcript_completion,
    validate_base,
)
from grpo.rewards import check_format, countdown_value, extract_answer
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
    for text in (transcript, demo.worked_example(a, b)):
        question_end = len(tok.encode(text[: text.index(f" + {b}") + len(f" + {b}")]))
        work_start = len(tok.encode(text[: text.index(demo.scratchpad(a, b))]))
        gaps.append(work_start - question_end)
    assert gaps[0] == gaps[1], f"work starts {gaps[0]} vs {gaps[1]} tokens after the question"


def test_scratchpad_tokens_are_the_same_in_transcripts_and_worked_examples(tiny_base):
    # The model learns the work mostly from the worked examples; it carries
    # over to the transcripts only if it is the same tokens there.
    tok = Tokenizer.from_dir(tiny_base)
    task = corpus_task()
    for example in task.heldout(20):
        a, b = example["a"], example["b"]
        work = tok.encode(" " + demo.scratchpad(a, b))
        transcript = tok.encode(task.prompt(example) + transcript_completion("scratchpad", a, b))
        worked = tok.encode(demo.worked_example(a, b))
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
    assert set(manifest["files"]) == set(demo.CHECKPOINT_FILES)
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
        f"assets/demo-base does not match grpo.demo.DEFAULT_CONFIG: {reason}; "
        "rebuild it with `python -m grpo.demo build`"
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
    root = Path(demo.REPO_ROOT, ".gitattributes")
    for line in root.read_text().splitlines() if root.is_file() else []:
        pattern, *attrs = line.split() or [""]
        matches = fnmatch.fnmatch("assets/demo-base/model.safetensors", pattern.lstrip("/"))
        assert not ("filter=lfs" in attrs and matches), f"{root}: {line!r} sends the base to LFS"
    rules = (SHIPPED_DIR.parent / ".gitattributes").read_text().splitlines()
    assert "demo-base/** -text" in rules, "line-ending conversion would break the sha256s"
    head = (SHIPPED_DIR / "model.safetensors").read_bytes()[:64]
    assert not head.startswith(b"version https://git-lfs"), "model.safetensors is an LFS pointer"


# --- the GPU preset's countdown base ----------------------------------------------------

CD_TINY = replace(
    demo.COUNTDOWN_CONFIG, num_docs=300, tokenizer_docs=200, hidden_size=32,
    intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=2, head_dim=16,
    batch_size=2, steps=6, warmup_steps=2,
)  # fmt: skip
CD_STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)(?: \[([\d ]+)\])?")
CONFIG_FILE = Path(demo.REPO_ROOT, "configs", "gpu-countdown.toml")


@pytest.fixture(scope="module")
def cd_records():
    return demo.countdown_corpus_records(3000, seed=0)


@pytest.fixture(scope="module")
def cd_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("cd") / "base", CD_TINY, log=Lines())


def _search_of(kind: str, text: str) -> str:
    """The written search of a scratchpad transcript or a worked example."""
    if kind == "scratchpad":
        start = text.index("Assistant: <think> ") + len("Assistant: <think> ")
        return text[start : text.rindex(" </think>")]
    return text[text.index(". Work it out: ") + 15 : text.rindex(" and the answer is ")]


def _check_search(search: str, numbers: list[int], target: int) -> tuple[bool, str]:
    """Assert a written search is right step by step; return (solved, final expression)."""
    head, _, rest = search.partition(": ")
    assert head == " ".join(map(str, numbers)) + f" to {target}", f"header {head!r}"
    tries, _, chain = rest.rpartition(" so ")
    results = re.findall(r"(.*?) (yes|no)\. ?", tries)
    assert "".join(f"{t} {v}. " for t, v in results).strip() == tries, f"tries {tries!r}"
    for k, (path, verdict) in enumerate(results):
        pool = list(numbers)
        steps = path.split(", ")
        assert len(steps) == len(numbers) - 1, f"try {k} is not a full path: {path!r}"
        for i, step in enumerate(steps):
            m = CD_STEP.fullmatch(step)
            assert m, f"malformed step {step!r}"
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            assert a >= b and 0 < c <= demo.MAX_VALUE, f"{step!r}: not larger-first or c > 999"
            assert demo._exact(a, op, b) == c, f"wrong arithmetic: {step!r}"
            for x in (a, b):
                assert x in pool, f"{step!r} uses {x}, not in the pool {pool}"
                pool.remove(x)
            pool.append(c)
            if i < len(steps) - 1:  # equal numbers may be taken in either order
                written = [int(x) for x in m[5].split()] if m[5] else []
                assert sorted(written) == sorted(pool), f"{step!r}: the pool is {pool}"
                pool = written
            else:
                assert m[5] is None and (verdict == "yes") == (c == target), f"{step!r} {verdict}"
    last_value = int(CD_STEP.fullmatch(results[-1][0].split(", ")[-1])[4])
    forms = chain.split(" = ")
    for form in forms:  # every form is the same number, written ever closer to the numbers
        assert countdown_value(form, None) == last_value, f"form {form!r} != {last_value}"
    assert countdown_value(forms[-1], numbers) == last_value, f"{forms[-1]!r} misuses {numbers}"
    return results[-1][1] == "yes", forms[-1]


def test_countdown_corpus_is_deterministic_in_the_seed():
    first = demo.countdown_corpus_records(150, seed=5)
    assert first == demo.countdown_corpus_records(150, seed=5), "same seed, different corpus"
    assert first != demo.countdown_corpus_records(150, seed=6), "different seeds, same corpus"
    assert all(text.endswith(EOS) and text.count(EOS) == 1 for _, _, text in first)


def test_countdown_mode_mix_matches_the_config(cd_records):
    cfg = demo.COUNTDOWN_CONFIG
    kinds = [k for k, _, _ in cd_records]
    transcripts = len(kinds) - kinds.count("worked")
    # Binomial standard errors: <= 0.01 (all docs), <= 0.013 (transcripts), ~0.03 (give-ups).
    got = transcripts / len(kinds)
    assert abs(got - cfg.transcript_share) < 0.04, f"transcript share {got:.3f}"
    for mode in demo.COUNTDOWN_MODES:
        share = kinds.count(mode) / transcripts
        want = getattr(cfg, f"{mode}_share")
        assert abs(share - want) < 0.05, f"{mode}: share {share:.3f}, configured {want}"
    gave_up = [" yes. so " not in t for k, _, t in cd_records if k == "scratchpad"]
    assert abs(sum(gave_up) / len(gave_up) - cfg.give_up_share) < 0.1, "give-up share"
    worked = [t for k, _, t in cd_records if k == "worked"]
    assert all(" yes. so " in t for t in worked), "a worked example gave up"


def test_countdown_transcripts_are_the_trainers_prompt_plus_a_completion(cd_records):
    task = demo.countdown_task()
    for kind, example, text in cd_records[:600]:
        if kind == "worked":
            assert "Assistant:" not in text and text.startswith(example["question"] + ". ")
            continue
        prompt = task.prompt(example)
        assert text.startswith(prompt), f"document does not start with the task prompt: {text}"
        completion = text[len(prompt) :]
        assert demo.classify_countdown(completion) == kind, f"{kind!r} misread: {completion!r}"
        score = task.score(completion, example)
        gave_up = kind == "scratchpad" and " yes. so " not in completion
        want = kind not in ("bare",) and not gave_up
        assert score["accuracy"] == want, f"{kind}: {completion!r} {score}"
        assert score["format"] == (kind in ("empty_think", "scratchpad")), completion


def test_countdown_searches_are_right_and_the_answer_is_a_copy(cd_records):
    task = demo.countdown_task()
    checked = {True: 0, False: 0}
    for kind, example, text in cd_records:
        if kind not in ("scratchpad", "worked"):
            continue
        solved, final = _check_search(_search_of(kind, text), example["numbers"], example["target"])
        if kind == "scratchpad":
            answer = extract_answer(text)
        else:
            answer = text.rsplit(" and the answer is ", 1)[1].removesuffix("." + EOS)
        assert answer == final, f"the answer is not a copy of the last form: {text!r}"
        # The task's own scorer: a solved search's answer is right, a given-up one wrong.
        score = task.score(f"<think> x </think> <answer>{answer}</answer>", example)
        assert score["accuracy"] == solved and score["format"] == 1.0, f"{answer!r} {score}"
        checked[solved] += 1
    assert checked[True] > 1000 and checked[False] > 10, f"searches checked: {checked}"


def test_countdown_heldout_problems_never_occur_in_the_corpus(cd_records):
    task = demo.countdown_task()
    heldout = {task.example_key(ex) for ex in task.heldout(500)}
    seen = set()
    for _, example, text in cd_records:
        numbers = re.findall(r"Using the numbers \[([\d, ]+)\], create an equation that equals "
                             r"(\d+)", text)  # fmt: skip
        assert numbers == [(", ".join(map(str, example["numbers"])), str(example["target"]))]
        seen.add(task.example_key(example))
    leaked = seen & heldout
    assert not leaked, f"held-out problems in the corpus: {sorted(leaked)[:5]}"


def test_expression_forms_expand_one_result_at_a_time():
    # (94-26)-(78-53) = 43: two results expanded, leftmost first.
    steps = []
    pool = (53, 94, 26, 78)
    for move in [(3, 0, "-", 25), (0, 1, "-", 68), (1, 0, "-", 43)]:
        steps.append(demo._step(pool, move))
        pool = steps[-1].left
    assert [s.text() for s in steps] == ["78-53=25", "94-26=68", "68-25=43"]
    forms = demo.expression_forms((53, 94, 26, 78), steps)
    assert forms == ["68-25", "(94-26)-25", "(94-26)-(78-53)"], forms
    # Equal values of different origin: the result 7 is expanded, not the given 7.
    s1 = demo._step((12, 5, 7), (0, 1, "-", 7))
    s2 = demo._step(s1.left, (0, 1, "+", 14))
    forms = demo.expression_forms((12, 5, 7), [s1, s2])
    assert forms == ["7+7", "7+(12-5)"], forms
    assert countdown_value(forms[-1], [12, 5, 7]) == 14


def test_countdown_moves_follow_the_game_rules():
    moves = demo.countdown_moves([6, 3, 9999])
    assert (0, 1, "/", 2) in moves and (0, 1, "-", 3) in moves and (0, 1, "*", 18) in moves
    for i, j, op, v in moves:
        a, b = [6, 3, 9999][i], [6, 3, 9999][j]
        assert a >= b and 0 < v <= demo.MAX_VALUE and demo._exact(a, op, b) == v
    assert not any(op == "-" and v == 0 for *_, op, v in demo.countdown_moves([5, 5]))
    guess = demo.countdown_guess([67, 65, 79], 780, __import__("random").Random(0))
    last = guess[-1]
    options = [v for *_, v in demo.countdown_moves(guess[-2].left)]
    assert abs(last.value - 780) == min(abs(v - 780) for v in options), "last step not closest"


def test_classify_countdown_and_search_stats():
    cases = {
        " <answer>1+2+3</answer>": "answer",
        " <think></think> <answer>(1+2)*3</answer>": "empty_think",
        " <think> 1 2 3 to 9: 2+1=3 [3 3], 3*3=9 yes. so 3*3 </think> <answer>9</answer>": (
            "scratchpad"
        ),
        " (2+1)*3<|endoftext|>": "bare",
        " <think> 1 2 3 to 9: 2+1": "other",
        " <think> hmm </think> <answer>9</answer>": "other",
        " the answer is 9": "other",
    }
    for text, mode in cases.items():
        assert demo.classify_countdown(text) == mode, f"{text!r}: {demo.classify_countdown(text)}"
    texts = [
        " <think> 1 2 3 to 9: 2+1=3 [3 3], 3*3=9 yes. so 3*3 </think>",
        " <think> 1 2 3 to 9: 2*1=2 [3 2], 3+2=6 no. 2+1=4 [3 4], 4*3=9 yes. so",
        " <answer>9</answer>",
    ]
    stats = demo.search_stats(texts, [9, 9, 9])
    assert stats["searches"] == 2 and stats["tries_per_search"] == 1.5, stats
    # 3 of 6 steps are right (3+2=6, 2+1=4, 4*3=9 are not), and the second "yes" is false.
    assert stats["step_accuracy"] == 3 / 6 and stats["honest_yes"] == 0.5, stats


def test_countdown_config_is_checked_and_tens_of_millions_of_parameters():
    with pytest.raises(ValueError, match="shares"):
        replace(demo.COUNTDOWN_CONFIG, answer_share=0.9)
    cfg = demo.COUNTDOWN_CONFIG
    assert cfg.to_dict()["task"] == "countdown" and "task" not in DEFAULT_CONFIG.to_dict()
    with torch.device("meta"):
        model = demo.Transformer(cfg.model_config(520, 0))
    n = sum(p.numel() for p in model.parameters())
    assert 25e6 <= n <= 40e6, f"{n / 1e6:.1f}M parameters"


def test_tiny_countdown_build_loads_and_tokenizes_like_the_trainer(cd_base, cd_records):
    model = load_pretrained(cd_base, dtype=torch.float32)
    tok = Tokenizer.from_dir(cd_base)
    assert tok.decode([tok.eos_id]) == EOS and model.config.vocab_size == tok.vocab_size
    assert all(len(tok.encode(tag)) == 1 for tag in TAGS) and len(tok.encode("0123456789")) == 10
    manifest = json.loads((cd_base / MANIFEST).read_text())
    assert manifest["build"] == CD_TINY.to_dict() and manifest["build"]["task"] == "countdown"
    assert validate_base(cd_base, CD_TINY) is None
    assert validate_base(cd_base, DEFAULT_CONFIG).startswith("stale")
    log = Lines()
    assert demo.ensure_base("demo-countdown", log, path=cd_base, config=CD_TINY) == cd_base
    assert not log.lines, log.text()
    assert demo.base_task(cd_base) == "countdown" and demo.base_task(SHIPPED_DIR) == "addition"

    task = demo.countdown_task()
    rng = __import__("random").Random(0)
    for example in task.heldout(10):
        search = demo.countdown_search(example, rng)
        prompt = task.prompt(example)
        for mode in demo.COUNTDOWN_MODES:
            completion = demo.countdown_completion(mode, search)
            assert tok.encode(prompt + completion + EOS) == tok.encode(prompt) + tok.encode(
                completion + EOS
            ), f"{mode}: tokens of prompt + completion differ from the document's"
        # The search starts 6 tokens after the question and is the same tokens in both kinds.
        work = tok.encode(" " + search.text())
        transcript = tok.encode(prompt + demo.countdown_completion("scratchpad", search))
        worked = tok.encode(demo.countdown_worked_example(example, search))
        gaps = []
        for ids, text in ((transcript, prompt), (worked, example["question"])):
            at = next(i for i in range(len(ids)) if ids[i : i + len(work)] == work)
            gaps.append(at + 1 - len(tok.encode(text.removesuffix(". Assistant:"))))
            assert at >= 0
        assert gaps[0] == gaps[1], f"work starts {gaps[0]} vs {gaps[1]} tokens after the question"
    with torch.no_grad():
        logits = model(torch.tensor([tok.encode(task.prompt(task.heldout(1)[0]))]))
    assert torch.isfinite(logits).all()
    longest = max(len(tok.encode(t)) for _, _, t in cd_records)
    assert longest <= demo.COUNTDOWN_CONFIG.seq_len + 1, f"a {longest}-token document"


def test_ensure_base_names_and_the_cpu_guard(tmp_path):
    with pytest.raises(ValueError, match="unknown base"):
        demo.ensure_base("nope")
    log = Lines()
    assert demo.ensure_base("demo", log) == SHIPPED_DIR and not log.lines, log.text()
    if torch.cuda.is_available():
        pytest.skip("the CPU guard is only reachable without CUDA")
    with pytest.raises(ValueError, match="--device cpu"):
        demo.ensure_base("demo-countdown", Lines(), path=tmp_path / "none")


def test_gpu_countdown_config_file(cd_base, cd_records):
    from grpo.config import TrainConfig, read_config_file

    cfg = TrainConfig.from_dict(read_config_file(CONFIG_FILE), source=str(CONFIG_FILE))
    assert (cfg.model, cfg.task, cfg.template) == ("demo-countdown", "countdown", demo.TEMPLATE)
    assert cfg.aggregation == "dapo" and cfg.beta == 0 and cfg.device == "auto"
    tok = Tokenizer.from_dir(cd_base)  # fewer merges than the real build: an upper bound
    task = demo.countdown_task()
    longest = max(
        len(tok.encode(text[len(task.prompt(ex)) :]))
        for kind, ex, text in cd_records
        if kind == "scratchpad"
    )
    assert cfg.max_new_tokens >= longest, f"max_new_tokens {cfg.max_new_tokens} < {longest}"
    prompt = max(len(tok.encode(task.prompt(ex))) for ex in task.heldout(50))
    assert prompt + cfg.max_new_tokens <= demo.COUNTDOWN_CONFIG.seq_len, (
        "prompt + completion exceed the context the base was pretrained on"
    )
