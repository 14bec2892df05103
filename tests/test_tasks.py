"""Tests for grpo.tasks: generation, splits, scoring, hostile completions, jsonl loading.

    python -m pytest -q tests/test_tasks.py
"""

import json
import random
import re
import time

import pytest

from grpo.tasks import TASKS, available_tasks, get_task, in_heldout
from grpo.tasks.rewards import countdown_value
from grpo.tasks.templates import build_prompt

THINK = "<think>reasoning</think>"
COUNTDOWN_EXAMPLE = {"question": "q", "numbers": [44, 19, 35], "target": 98}
ADDITION_EXAMPLE = {"question": "What is 617 + 617", "a": 617, "b": 617, "target": 1234}


def answer(text: str) -> str:
    return f"{THINK} <answer>{text}</answer>"


@pytest.fixture(scope="module")
def countdown_heldout():
    return get_task("countdown").heldout(500)


@pytest.fixture(scope="module")
def addition_heldout():
    return get_task("addition").heldout(500)


# --- registry ----------------------------------------------------------------


def test_registry_names():
    assert available_tasks() == sorted(TASKS) == ["addition", "countdown", "jsonl"]


def test_unknown_task_lists_names():
    with pytest.raises(ValueError) as err:
        get_task("gsm9k")
    for name in available_tasks():
        assert name in str(err.value), f"{name!r} missing from message: {err.value}"


def test_unknown_option_lists_valid_options():
    with pytest.raises(TypeError) as err:
        get_task("addition", max_digit=5)
    message = str(err.value)
    assert "max_digit" in message and "max_digits" in message, message


def test_missing_required_option():
    with pytest.raises(TypeError, match="path"):
        get_task("jsonl")


def test_bad_template_rejected_at_construction():
    with pytest.raises(ValueError, match="r1zero_think"):
        get_task("countdown", template="nope")


def test_options_reach_the_task():
    task = get_task("addition", seed=3, template="r1zero_think", format_weight=0.0,
                    accuracy_weight=2.0, min_digits=2, max_digits=2)
    ex = task.train_example(0)
    assert 10 <= ex["a"] <= 99 and 10 <= ex["b"] <= 99, f"2-digit operands expected: {ex}"
    assert task.prompt(ex) == build_prompt(ex["question"], "r1zero_think")
    completion = f" x</think><answer>{ex['target']}</answer>"
    assert task.score(completion, ex)["reward"] == 2.0, "weights not applied"


# --- generation: determinism, JSON, non-overlap -----------------------------


@pytest.mark.parametrize("name", ["addition", "countdown"])
def test_stream_is_deterministic(name):
    first = [get_task(name, seed=1).train_example(i) for i in range(30)]
    again = get_task(name, seed=1)
    assert [again.train_example(i) for i in reversed(range(30))][::-1] == first, (
        "train_example(i) depends on call order or is not deterministic"
    )
    other = [get_task(name, seed=2).train_example(i) for i in range(30)]
    assert other != first, "seeds 1 and 2 gave the same stream"
    assert json.loads(json.dumps(first)) == first, "examples are not JSON round-trippable"
    assert all(isinstance(ex["question"], str) for ex in first)


@pytest.mark.parametrize("name", ["addition", "countdown"])
def test_heldout_is_fixed_and_prefix_stable(name, request):
    full = request.getfixturevalue(f"{name}_heldout")
    assert len(full) == 500
    task = get_task(name, seed=7)
    assert task.heldout(100) == full[:100], "held-out set changed with n or with seed"
    keys = [task.example_key(ex) for ex in full]
    assert len(set(keys)) == len(keys), "held-out set has duplicates"


@pytest.mark.parametrize("name", ["addition", "countdown"])
@pytest.mark.parametrize("seed", [0, 1])
def test_train_never_hits_heldout(name, seed, request):
    task = get_task(name, seed=seed)
    held = {task.example_key(ex) for ex in request.getfixturevalue(f"{name}_heldout")}
    train = [task.train_example(i) for i in range(3000)]
    leaked = [ex for ex in train if task.example_key(ex) in held]
    assert not leaked, f"{len(leaked)} train examples are in the held-out set, e.g. {leaked[0]}"
    assert not any(task.is_heldout(ex) for ex in train), "a held-out member in the train stream"


def test_heldout_hash_fraction():
    share = sum(in_heldout(f"key{i}", 1 / 16) for i in range(20000)) / 20000
    assert 0.05 < share < 0.075, f"held-out share {share:.4f}, expected about 1/16"


@pytest.mark.parametrize("variant", ["demo", "tinyzero"])
def test_countdown_examples_are_solvable(countdown_heldout, variant):
    """The default (the CPU demo's variant: 3 numbers) and TinyZero's ranges (3-4 numbers)."""
    from grpo.tasks import TINYZERO_COUNTDOWN

    opts = TINYZERO_COUNTDOWN if variant == "tinyzero" else {}
    task = get_task("countdown", **opts)
    lo, hi, tlo, thi = (1, 99, 1, 999) if opts else (1, 20, 20, 200)
    held = countdown_heldout if not opts else task.heldout(100)
    examples = [task.train_example(i) for i in range(300)] + held
    counts = set()
    for ex in examples:
        counts.add(len(ex["numbers"]))
        assert all(lo <= n <= hi for n in ex["numbers"]), ex
        assert tlo <= ex["target"] <= thi, ex
        value = countdown_value(ex["solution"], ex["numbers"])
        assert value == ex["target"], f"solution {ex['solution']!r} = {value}, target {ex}"
        assert task.score(answer(ex["solution"]), ex)["accuracy"] == 1.0, ex
        assert f"Using the numbers {ex['numbers']}, create an equation that equals " \
            f"{ex['target']}." in ex["question"], ex["question"]
        assert not ex["question"].endswith("."), "the template adds the final period"
    assert counts == ({3, 4} if opts else {3}), f"number counts seen: {counts}"


def test_addition_generation():
    task = get_task("addition")
    examples = [task.train_example(i) for i in range(2000)]
    lengths = {len(str(ex[k])) for ex in examples for k in ("a", "b")}
    assert lengths == {3, 4}, f"operand digit counts seen: {lengths}"
    for ex in examples[:50]:
        assert ex["question"] == f"What is {ex['a']} + {ex['b']}", ex
        assert ex["target"] == ex["a"] + ex["b"], ex
    start = time.perf_counter()
    for i in range(2000, 4000):
        task.train_example(i)
    rate = 2000 / (time.perf_counter() - start)
    assert rate > 2000, f"addition generates only {rate:.0f} examples/s"


# --- scoring -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text,accuracy",
    [
        ("35 + 44 + 19", 1.0),  # any valid expression, not a stored solution
        ("(44 + 19) + 35 = 98", 1.0),  # equation form
        ("44 + 19 + 35 = 97", 0.0),
        ("44 + 19 - 35", 0.0),  # wrong value
        ("44 + 44 + 10", 0.0),  # 44 twice, 19 and 35 missing
        ("44 + 54", 0.0),  # missing numbers
        ("44 + 19 + 35 + 0", 0.0),  # extra number
        ("98", 0.0),
    ],
)
def test_countdown_score(text, accuracy):
    task = get_task("countdown")
    got = task.score(answer(text), COUNTDOWN_EXAMPLE)
    assert got["accuracy"] == accuracy, f"{text!r}: {got}"
    assert got["format"] == 1.0, f"{text!r}: {got}"
    assert got["reward"] == pytest.approx(accuracy + 0.1), f"{text!r}: {got}"


@pytest.mark.parametrize(
    "numbers,text",
    [
        ([2, 3, 90], "2 ** 3 + 90"),
        ([2, 100], "-2 + 100"),
        ([197, 2], "197 // 2"),
        ([198, 100], "198 % 100"),
        ([196, 2], "196 / 2.0"),
        ([196, 2], "196 / 2."),
    ],
)
def test_countdown_forbidden_operations_score_zero(numbers, text):
    # Each expression uses exactly the given numbers and is worth 98 in Python:
    # only the operator or literal whitelist can reject it.
    example = {"question": "q", "numbers": numbers, "target": 98}
    got = get_task("countdown").score(answer(text), example)
    assert got["accuracy"] == 0.0, f"{text!r} accepted: {got}"


@pytest.mark.parametrize("text", ["1234", "1,234", " 1234 ", "1234.0", "$1,234"])
def test_addition_correct_forms(text):
    got = get_task("addition").score(answer(text), ADDITION_EXAMPLE)
    assert got == {"reward": pytest.approx(1.1), "accuracy": 1.0, "format": 1.0,
                   "answer_parsed": 1.0}, f"{text!r}: {got}"


@pytest.mark.parametrize(
    "completion,expected",
    [
        (answer("1235"), {"accuracy": 0.0, "format": 1.0, "answer_parsed": 1.0}),
        (f"{THINK} 1234", {"accuracy": 0.0, "format": 0.0, "answer_parsed": 0.0}),
        ("<answer>1234</answer>", {"accuracy": 1.0, "format": 0.0, "answer_parsed": 1.0}),
        (answer("1234") + " done", {"accuracy": 1.0, "format": 0.0, "answer_parsed": 1.0}),
    ],
)
def test_addition_score(completion, expected):
    got = get_task("addition").score(completion, ADDITION_EXAMPLE)
    for key, value in expected.items():
        assert got[key] == value, f"{completion!r}: {key} = {got[key]}, expected {value}"
    assert got["reward"] == pytest.approx(got["accuracy"] + 0.1 * got["format"])


def test_score_returns_python_floats():
    for name, example in [("addition", ADDITION_EXAMPLE), ("countdown", COUNTDOWN_EXAMPLE)]:
        got = get_task(name).score(answer("1"), example)
        for key in ("reward", "accuracy", "format"):
            assert type(got[key]) is float, f"{name}: {key} is {type(got[key]).__name__}"


def test_primer_counts_for_format():
    task = get_task("addition", template="r1zero_think")
    assert task.primer == "<think>"
    assert task.score(" 617+617 </think><answer>1234</answer>", ADDITION_EXAMPLE)["format"] == 1
    reopened = task.score("<think>x</think><answer>1234</answer>", ADDITION_EXAMPLE)
    assert reopened["format"] == 0.0, "re-opening <think> after the primer must fail format"
    plain = get_task("addition")
    assert plain.score(" 617+617 </think><answer>1234</answer>", ADDITION_EXAMPLE)["format"] == 0


def test_answer_keys():
    add = get_task("addition")
    keys = {add.answer_key(answer(t), ADDITION_EXAMPLE) for t in ["1234", "1,234", "1234.0"]}
    assert keys == {"1234"}, f"equal numbers gave keys {keys}"
    assert add.answer_key(answer("twelve"), ADDITION_EXAMPLE) is None
    assert add.answer_key(THINK, ADDITION_EXAMPLE) is None

    cd = get_task("countdown")
    ex = COUNTDOWN_EXAMPLE
    keys = {cd.answer_key(answer(t), ex) for t in ["44 + 19 + 35", "35 + 19 + 44 = 98"]}
    assert keys == {"98"}, f"two correct expressions gave keys {keys}"
    assert cd.answer_key(answer("(44 + 19) / 35"), ex) == "9/5"
    assert cd.answer_key(answer("98"), ex) == "invalid:98", "a bare number must not vote as 98"
    assert cd.answer_key(THINK, ex) is None


# --- hostile completions -----------------------------------------------------

MEGABYTE = 10**6
HOSTILE = {
    "pow tower": answer("9**9**9"),
    "pow tower 10": answer("10**10**10"),
    "million-digit literal": answer("9" * MEGABYTE),
    "deep nesting": answer("(" * 100_000 + "1" + ")" * 100_000),
    "division by zero": answer("1 / (1 - 1)"),
    "arabic-indic digits": answer("\u0664\u0664 + \u0661\u0669 + \u0663\u0665"),
    "fullwidth digits": answer("\uff14\uff14 + 19 + 35"),
    "1 MB thinking": "<think>" + "a" * MEGABYTE + "</think><answer>1+2</answer>",
    "1 MB of <answer>": "<answer>" * (MEGABYTE // 8),
    "1 MB of </answer>": "</answer>" * (MEGABYTE // 9),
    "1 MB answer": answer("1+" * (MEGABYTE // 2) + "1"),
    "1 MB whitespace": "<think></think>" + " " * MEGABYTE + "<answer>1",
    "1 MB end markers": answer("1") + "<|endoftext|> " * (MEGABYTE // 14) + "x",
}
HOSTILE_EXAMPLES = {
    "countdown": {"question": "q", "numbers": [1, 1, 1], "target": 3},
    "addition": {"question": "q", "a": 1, "b": 2, "target": 3},
    "jsonl": {"question": "q", "answer": "3"},
    "jsonl_text": {"question": "q", "answer": "Paris"},  # exact-text comparison path
}


def best_time(fn, repeats: int = 3) -> float:
    """Best of a few timed calls after one warm-up: scheduler noise only adds time."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize("task_name", sorted(HOSTILE_EXAMPLES))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_completion_scores_zero_fast(task_name, case, tmp_path):
    if task_name.startswith("jsonl"):
        task = get_task("jsonl", path=write_lines(tmp_path / "d.jsonl", gsm_lines(2)))
    else:
        task = get_task(task_name)
    completion, example = HOSTILE[case], HOSTILE_EXAMPLES[task_name]
    got = task.score(completion, example)
    assert got["accuracy"] == 0.0, f"{case}: accuracy {got}"
    if task_name == "jsonl_text":
        # Free-text references accept any non-empty answer as well formed, so a
        # well-tagged short answer may still earn the format bonus (never more).
        assert got["reward"] == pytest.approx(0.1 * got["format"]), f"{case}: {got}"
    else:
        # Tasks with a numeric / expression answer format: nothing at all.
        assert got["reward"] == 0.0 and got["format"] == 0.0, f"{case}: {got}"
    elapsed = best_time(lambda: task.score(completion, example))
    assert elapsed < 0.05, f"{task_name}/{case}: score took {elapsed * 1e3:.1f} ms"
    elapsed = best_time(lambda: task.answer_key(completion, example))
    assert elapsed < 0.05, f"{task_name}/{case}: answer_key took {elapsed * 1e3:.1f} ms"


@pytest.mark.parametrize("text,base", [("9**9**9", 9), ("10**10**10", 10)])
def test_pow_tower_with_matching_numbers(text, base):
    # The numbers match the literals, so only the Pow ban stands between this
    # and an integer with hundreds of millions of digits.
    example = {"question": "q", "numbers": [base] * 3, "target": 1}
    task = get_task("countdown")
    assert task.score(answer(text), example)["accuracy"] == 0.0
    elapsed = best_time(lambda: task.score(answer(text), example))
    assert elapsed < 0.05, f"{text}: score took {elapsed * 1e3:.1f} ms"


@pytest.mark.parametrize(
    "task_name,text,fmt",
    [
        ("countdown", "1 / (1 - 1)", 0.0),  # division by zero: not computable
        ("countdown", "1 + 1 + 1 = 4", 1.0),  # a false claim: wrong, but well formed
        ("countdown", "7 * 8", 1.0),  # other numbers: wrong, but well formed
        ("countdown", "three", 0.0),
        ("addition", "abc", 0.0),
        ("addition", "1,234", 1.0),
    ],
)
def test_format_needs_a_wellformed_answer(task_name, text, fmt):
    task = get_task(task_name)
    got = task.score(answer(text), HOSTILE_EXAMPLES[task_name])
    assert got["format"] == fmt and got["accuracy"] == 0.0, f"{text!r}: {got}"


def test_overlong_completion_fails_format():
    from grpo.tasks.rewards import MAX_COMPLETION_CHARS, check_format

    ok = "<think>" + "a" * (MAX_COMPLETION_CHARS - 40) + "</think><answer>3</answer>"
    assert check_format(ok)
    assert not check_format("<think>" + "a" * MAX_COMPLETION_CHARS + "</think><answer>3</answer>")


def test_hostile_with_primer_fails_format():
    task = get_task("countdown", template="r1zero_think")
    got = task.score(HOSTILE["1 MB thinking"], HOSTILE_EXAMPLES["countdown"])
    assert got == {"reward": 0.0, "accuracy": 0.0, "format": 0.0, "answer_parsed": 1.0}, got


# --- jsonl -------------------------------------------------------------------


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def gsm_lines(n: int) -> list[str]:
    return [json.dumps({"question": f"Q{i}: how many?", "answer": f"work...\n#### {i},000"})
            for i in range(n)]


def test_jsonl_split_and_stream(tmp_path):
    path = write_lines(tmp_path / "data.jsonl", gsm_lines(40) + ["", "   "])
    task = get_task("jsonl", path=path, heldout_fraction=0.25)
    held = task.heldout(1000)
    train_questions = {task.train_example(i)["question"] for i in range(200)}
    held_questions = {ex["question"] for ex in held}
    assert held and not (train_questions & held_questions), "train and held-out overlap"
    assert len(train_questions) + len(held_questions) == 40, "some lines were lost"
    n_train = 40 - len(held)
    epoch0 = [task.train_example(i)["question"] for i in range(n_train)]
    assert len(set(epoch0)) == n_train, "an epoch does not visit every train example once"
    epoch1 = [task.train_example(i)["question"] for i in range(n_train, 2 * n_train)]
    assert epoch1 != epoch0, "epochs should be reshuffled"
    again = get_task("jsonl", path=path, heldout_fraction=0.25)
    assert [again.train_example(i) for i in range(60)] == \
        [task.train_example(i) for i in range(60)], "stream not deterministic"
    other = get_task("jsonl", path=path, heldout_fraction=0.25, seed=1)
    assert [other.train_example(i) for i in range(n_train)] != \
        [task.train_example(i) for i in range(n_train)], "seed does not change the order"
    assert again.heldout(1000) == held, "held-out set not deterministic"


def test_jsonl_scoring(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [
        json.dumps({"question": "How many?", "answer": "5 + 7 = 12 apples\n#### 1,234"}),
        json.dumps({"question": "Number?", "answer": 42}),
        json.dumps({"question": "Capital of France?", "answer": "Paris"}),
    ])
    task = get_task("jsonl", path=path)
    by_question = {ex["question"]: ex for ex in task.heldout(10)}
    by_question.update({task.train_example(i)["question"]: task.train_example(i)
                        for i in range(3)})
    gsm = by_question["How many?"]
    assert gsm["answer"] == "1,234", f"#### part not extracted: {gsm}"
    assert task.score(answer("1234"), gsm)["accuracy"] == 1.0
    assert task.score(answer("$1,234.00"), gsm)["accuracy"] == 1.0
    assert task.score(answer("1235"), gsm)["accuracy"] == 0.0
    assert task.answer_key(answer("1,234.0"), gsm) == "1234"
    assert task.score(answer("42"), by_question["Number?"])["accuracy"] == 1.0
    paris = by_question["Capital of France?"]
    assert task.score(answer(" Paris "), paris)["accuracy"] == 1.0
    assert task.score(answer("paris"), paris)["accuracy"] == 0.0


def test_jsonl_two_items_gives_one_heldout(tmp_path):
    path = write_lines(tmp_path / "two.jsonl", gsm_lines(2))
    task = get_task("jsonl", path=path)
    assert len(task.heldout(10)) == 1, "with 2 items exactly one should be held out"
    assert task.train_example(0)["question"] != task.heldout(1)[0]["question"]


def test_jsonl_heldout_path_removes_overlap(tmp_path):
    lines = gsm_lines(5)
    path = write_lines(tmp_path / "train.jsonl", lines)
    held_path = write_lines(tmp_path / "held.jsonl", lines[:2])
    task = get_task("jsonl", path=path, heldout_path=held_path)
    assert [ex["question"] for ex in task.heldout(10)] == ["Q0: how many?", "Q1: how many?"]
    train = {task.train_example(i)["question"] for i in range(9)}
    assert train == {f"Q{i}: how many?" for i in (2, 3, 4)}, f"train split: {train}"


@pytest.mark.parametrize(
    "lines,pattern",
    [
        ([], "no examples"),
        (["", "  "], "no examples"),
        (['{"question": "a", "answer": 1}', "{not json"], r"bad\.jsonl:2: invalid JSON"),
        (['{"question": "a", "answer": 1}', "", '{"question": "b"}'],
         r":3: missing field 'answer'"),
        (['{"answer": 1}'], r":1: missing field 'question'"),
        (['{"question": "a", "answer": null}'], r":1: field 'answer'"),
        (['{"question": "a", "answer": true}'], r":1: field 'answer'"),
        (['{"question": "a", "answer": "text ####  "}'], r":1: field 'answer' is empty"),
        (['["question", "answer"]'], r":1: expected a JSON object"),
    ],
)
def test_jsonl_errors(tmp_path, lines, pattern):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=pattern):
        get_task("jsonl", path=str(path))


def test_jsonl_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        get_task("jsonl", path=str(missing))
    with pytest.raises(FileNotFoundError, match="is a folder, not a file"):
        get_task("jsonl", path=str(tmp_path))


def test_a_used_up_heldout_space_is_given_up_on_early():
    from grpo.tasks import AdditionTask

    task = AdditionTask(min_digits=1, max_digits=1, heldout_fraction=0.5)  # 100 pairs
    every = {task.example_key(task.generate(random.Random(i))) for i in range(5000)}
    held = sorted(k for k in every if in_heldout(k, 0.5))
    assert sorted(task.example_key(ex) for ex in task.heldout(len(held))) == held
    n = 10**6  # a draw budget of 20 * n / fraction would be 40M draws before saying so
    with pytest.raises(ValueError, match=rf"found only {len(held)} distinct held-out examples "
                                         rf"in (\d+) draws, {n} asked") as info:  # fmt: skip
        task.heldout(n)
    draws = int(re.search(r"in (\d+) draws", str(info.value)).group(1))
    patience = int(10_000 / 0.5) + 10_000
    assert patience < draws < patience + 10_000, draws
