"""The "gpu-countdown" base (GPU preset): corpus, written searches, solver, tiny builds, preset.

    python -m pytest -q tests/test_bases_countdown.py

Builds here use a tiny model and a few steps (seconds); the real base is built
on a GPU on first use (`python -m grpo.demo build --base demo-countdown`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grpo.bases.addition import DEFAULT_CONFIG
from grpo.bases.build import (
    MANIFEST,
    REPO_ROOT,
    SHIPPED_DIR,
    base_task,
    build_base,
    ensure_base,
    validate_base,
)
from grpo.bases.common import EOS, TAGS, TEMPLATE
from grpo.bases.countdown import (
    COUNTDOWN_CONFIG,
    COUNTDOWN_MODES,
    countdown_completion,
    countdown_corpus_records,
    countdown_search,
    countdown_task,
    countdown_worked_example,
)
from grpo.bases.inspect import _exact, classify_countdown, search_stats
from grpo.bases.solver import MAX_VALUE, _step, countdown_guess, countdown_moves, expression_forms
from grpo.tasks.rewards import countdown_value, extract_answer
from model import Tokenizer, Transformer, load_pretrained

CD_TINY = replace(
    COUNTDOWN_CONFIG, num_docs=300, tokenizer_docs=200, hidden_size=32,
    intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=2, head_dim=16,
    batch_size=2, steps=6, warmup_steps=2,
)  # fmt: skip
CD_STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)(?: \[([\d ]+)\])?")
CONFIG_FILE = Path(REPO_ROOT, "configs", "gpu-countdown.toml")


@pytest.fixture(scope="module")
def cd_records():
    return countdown_corpus_records(3000, seed=0)


@pytest.fixture(scope="module")
def cd_base(tmp_path_factory):
    return build_base(tmp_path_factory.mktemp("cd") / "base", CD_TINY, log=lambda line: None)


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
            assert a >= b and 0 < c <= MAX_VALUE, f"{step!r}: not larger-first or c > 999"
            assert _exact(a, op, b) == c, f"wrong arithmetic: {step!r}"
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
    first = countdown_corpus_records(150, seed=5)
    assert first == countdown_corpus_records(150, seed=5), "same seed, different corpus"
    assert first != countdown_corpus_records(150, seed=6), "different seeds, same corpus"
    assert all(text.endswith(EOS) and text.count(EOS) == 1 for _, _, text in first)


def test_countdown_mode_mix_matches_the_config(cd_records):
    cfg = COUNTDOWN_CONFIG
    kinds = [k for k, _, _ in cd_records]
    transcripts = len(kinds) - kinds.count("worked")
    # Binomial standard errors: <= 0.01 (all docs), <= 0.013 (transcripts), ~0.03 (give-ups).
    got = transcripts / len(kinds)
    assert abs(got - cfg.transcript_share) < 0.04, f"transcript share {got:.3f}"
    for mode in COUNTDOWN_MODES:
        share = kinds.count(mode) / transcripts
        want = getattr(cfg, f"{mode}_share")
        assert abs(share - want) < 0.05, f"{mode}: share {share:.3f}, configured {want}"
    gave_up = [" yes. so " not in t for k, _, t in cd_records if k == "scratchpad"]
    assert abs(sum(gave_up) / len(gave_up) - cfg.give_up_share) < 0.1, "give-up share"
    worked = [t for k, _, t in cd_records if k == "worked"]
    assert all(" yes. so " in t for t in worked), "a worked example gave up"


def test_countdown_transcripts_are_the_trainers_prompt_plus_a_completion(cd_records):
    task = countdown_task()
    for kind, example, text in cd_records[:600]:
        if kind == "worked":
            assert "Assistant:" not in text and text.startswith(example["question"] + ". ")
            continue
        prompt = task.prompt(example)
        assert text.startswith(prompt), f"document does not start with the task prompt: {text}"
        completion = text[len(prompt) :]
        assert classify_countdown(completion) == kind, f"{kind!r} misread: {completion!r}"
        score = task.score(completion, example)
        gave_up = kind == "scratchpad" and " yes. so " not in completion
        want = kind not in ("bare",) and not gave_up
        assert score["accuracy"] == want, f"{kind}: {completion!r} {score}"
        assert score["format"] == (kind in ("empty_think", "scratchpad")), completion


def test_countdown_searches_are_right_and_the_answer_is_a_copy(cd_records):
    task = countdown_task()
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
    task = countdown_task()
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
        steps.append(_step(pool, move))
        pool = steps[-1].left
    assert [s.text() for s in steps] == ["78-53=25", "94-26=68", "68-25=43"]
    forms = expression_forms((53, 94, 26, 78), steps)
    assert forms == ["68-25", "(94-26)-25", "(94-26)-(78-53)"], forms
    # Equal values of different origin: the result 7 is expanded, not the given 7.
    s1 = _step((12, 5, 7), (0, 1, "-", 7))
    s2 = _step(s1.left, (0, 1, "+", 14))
    forms = expression_forms((12, 5, 7), [s1, s2])
    assert forms == ["7+7", "7+(12-5)"], forms
    assert countdown_value(forms[-1], [12, 5, 7]) == 14


def test_countdown_moves_follow_the_game_rules():
    moves = countdown_moves([6, 3, 9999])
    assert (0, 1, "/", 2) in moves and (0, 1, "-", 3) in moves and (0, 1, "*", 18) in moves
    for i, j, op, v in moves:
        a, b = [6, 3, 9999][i], [6, 3, 9999][j]
        assert a >= b and 0 < v <= MAX_VALUE and _exact(a, op, b) == v
    assert not any(op == "-" and v == 0 for *_, op, v in countdown_moves([5, 5]))
    guess = countdown_guess([67, 65, 79], 780, random.Random(0))
    last = guess[-1]
    options = [v for *_, v in countdown_moves(guess[-2].left)]
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
        assert classify_countdown(text) == mode, f"{text!r}: {classify_countdown(text)}"
    texts = [
        " <think> 1 2 3 to 9: 2+1=3 [3 3], 3*3=9 yes. so 3*3 </think>",
        " <think> 1 2 3 to 9: 2*1=2 [3 2], 3+2=6 no. 2+1=4 [3 4], 4*3=9 yes. so",
        " <answer>9</answer>",
    ]
    stats = search_stats(texts, [9, 9, 9])
    assert stats["searches"] == 2 and stats["tries_per_search"] == 1.5, stats
    # 3 of 6 steps are right (3+2=6, 2+1=4, 4*3=9 are not), and the second "yes" is false.
    assert stats["step_accuracy"] == 3 / 6 and stats["honest_yes"] == 0.5, stats


def test_countdown_config_is_checked_and_tens_of_millions_of_parameters():
    with pytest.raises(ValueError, match="shares"):
        replace(COUNTDOWN_CONFIG, answer_share=0.9)
    cfg = COUNTDOWN_CONFIG
    assert cfg.to_dict()["task"] == "countdown" and "task" not in DEFAULT_CONFIG.to_dict()
    with torch.device("meta"):
        model = Transformer(cfg.model_config(520, 0))
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
    lines: list[str] = []
    assert ensure_base("gpu-countdown", lines.append, path=cd_base, config=CD_TINY) == cd_base
    assert not lines, f"a valid build was rebuilt: {lines}"
    assert base_task(cd_base) == "countdown" and base_task(SHIPPED_DIR) == "addition"

    task = countdown_task()
    rng = random.Random(0)
    for example in task.heldout(10):
        search = countdown_search(example, rng)
        prompt = task.prompt(example)
        for mode in COUNTDOWN_MODES:
            completion = countdown_completion(mode, search)
            assert tok.encode(prompt + completion + EOS) == tok.encode(prompt) + tok.encode(
                completion + EOS
            ), f"{mode}: tokens of prompt + completion differ from the document's"
        # The search starts 6 tokens after the question and is the same tokens in both kinds.
        work = tok.encode(" " + search.text())
        transcript = tok.encode(prompt + countdown_completion("scratchpad", search))
        worked = tok.encode(countdown_worked_example(example, search))
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
    assert longest <= COUNTDOWN_CONFIG.seq_len + 1, f"a {longest}-token document"


def test_ensure_base_names_and_the_cpu_guard(tmp_path):
    with pytest.raises(ValueError, match="unknown base"):
        ensure_base("nope")
    lines: list[str] = []
    assert ensure_base("demo", lines.append) == SHIPPED_DIR and not lines, lines
    if torch.cuda.is_available():
        pytest.skip("the CPU guard is only reachable without CUDA")
    with pytest.raises(ValueError, match="--device cpu"):
        ensure_base("gpu-countdown", lambda line: None, path=tmp_path / "none")


def test_gpu_countdown_config_file(cd_base, cd_records):
    from grpo.run.config import TrainConfig, read_config_file

    cfg = TrainConfig.from_dict(read_config_file(CONFIG_FILE), source=str(CONFIG_FILE))
    assert (cfg.model, cfg.task, cfg.template) == ("gpu-countdown", "countdown", TEMPLATE)
    from grpo.run.config import task_options
    from grpo.tasks import TINYZERO_COUNTDOWN

    assert task_options(cfg) == TINYZERO_COUNTDOWN, "the preset runs on TinyZero's ranges"
    assert cfg.aggregation == "dapo" and cfg.beta == 0 and cfg.device == "auto"
    tok = Tokenizer.from_dir(cd_base)  # fewer merges than the real build: an upper bound
    task = countdown_task()
    longest = max(
        len(tok.encode(text[len(task.prompt(ex)) :]))
        for kind, ex, text in cd_records
        if kind == "scratchpad"
    )
    assert cfg.max_new_tokens >= longest, f"max_new_tokens {cfg.max_new_tokens} < {longest}"
    prompt = max(len(tok.encode(task.prompt(ex))) for ex in task.heldout(50))
    assert prompt + cfg.max_new_tokens <= COUNTDOWN_CONFIG.seq_len, (
        "prompt + completion exceed the context the base was pretrained on"
    )
