"""Tests for grpo.tasks.templates and grpo.tasks.rewards: pure string functions, no model.

    python -m pytest -q tests/test_rewards.py
"""

from fractions import Fraction

import pytest

from grpo.tasks.rewards import (
    MAX_DEPTH,
    MAX_EXPR_CHARS,
    check_format,
    combine_reward,
    countdown_correct,
    countdown_value,
    extract_answer,
    normalize_number,
)
from grpo.tasks.templates import TEMPLATES, build_prompt, primer

PAPER_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The assistant first thinks about the reasoning process in "
    "the mind and then provides the user with the answer. The reasoning process and "
    "answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer "
    "here </answer>. User: What is 2 + 3. Assistant:"
)


# --- templates ---------------------------------------------------------------


def test_r1zero_template_is_the_paper_text():
    got = build_prompt("What is 2 + 3")
    assert got == PAPER_TEMPLATE, f"prompt differs from the paper's Table 1:\n{got!r}"
    assert primer("r1zero") == ""


def test_think_variant_appends_primer():
    got = build_prompt("What is 2 + 3", "r1zero_think")
    assert got == PAPER_TEMPLATE + " <think>", f"got tail {got[-40:]!r}"
    assert primer("r1zero_think") == "<think>"


def test_question_trailing_period_not_doubled():
    got = build_prompt("Add the numbers.")
    assert got.endswith("User: Add the numbers. Assistant:"), f"got tail {got[-40:]!r}"


def test_question_braces_stay_literal():
    got = build_prompt("Is {x} a set")
    assert "User: Is {x} a set. Assistant:" in got, f"got tail {got[-40:]!r}"


def test_unknown_template_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_prompt("q", "chatml")
    for name in TEMPLATES:
        assert name in str(err.value), f"{name!r} missing from message: {err.value}"


# --- check_format ------------------------------------------------------------


@pytest.mark.parametrize(
    "completion",
    [
        "<think>2 plus 3 is 5</think><answer>5</answer>",
        "  \n<think>x</think>\n\n<answer> 5 </answer>\n",
        "<think></think><answer>5</answer>",  # empty thinking is still a valid structure
        "<think>x</think> <answer>5</answer><|endoftext|>",
        "<think>x</think> <answer>5</answer> </s>\n",
        "<think>x</think><answer>5</answer><|endoftext|><|endoftext|>\n<|endoftext|>",
    ],
)
def test_format_accepts(completion):
    assert check_format(completion), f"rejected a well-formed completion: {completion!r}"


@pytest.mark.parametrize(
    "completion,why",
    [
        ("<think>x</think><answer>5</answer> The answer is 5.", "text after </answer>"),
        ("<think>x<answer>5</answer>", "missing </think>"),
        ("<think>x</think><answer>5", "missing </answer>"),
        ("<think>x</think>", "no answer block"),
        ("<answer>5</answer>", "no think block"),
        ("So <think>x</think><answer>5</answer>", "text before <think>"),
        ("<think>x</think> so <answer>5</answer>", "text between the blocks"),
        ("<think>x</think><answer>5</answer><answer>6</answer>", "two answer blocks"),
        ("<think>x</think><answer>5</answer><think>y</think>", "second think block"),
        ("<think><think>x</think><answer>5</answer>", "nested <think>"),
        ("<think>a <answer>4</answer> b</think><answer>5</answer>", "answer inside think"),
        ("<think>x</think><answer>5 <think></answer>", "tag inside answer"),
        ("<think>x</think><answer>  \n</answer>", "empty answer"),
        ("<think>x</think><answer>5</answer><|endoftext|> more", "text after the end marker"),
        ("", "empty completion"),
    ],
)
def test_format_rejects(completion, why):
    assert not check_format(completion), f"accepted ({why}): {completion!r}"


def test_format_primer():
    body = " 2 plus 3 </think> <answer>5</answer>"
    assert not check_format(body), "without the primer the completion has no <think>"
    assert check_format(body, primer="<think>"), "primer '<think>' should open the block"
    reopened = "<think>" + body
    assert not check_format(reopened, primer="<think>"), "re-opening <think> after the primer"


# --- extract_answer ----------------------------------------------------------


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("<think>x</think><answer> 42 </answer>", "42"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last block counts
        ("<answer>1</answer> then <answer>2", "1"),  # a truncated block is ignored
        ("<answer></answer>", ""),
        ("no tags at all", None),
        ("<answer>unclosed", None),
        ("</answer> <answer>", None),
    ],
)
def test_extract_answer(completion, expected):
    got = extract_answer(completion)
    assert got == expected, f"extract_answer({completion!r}) = {got!r}, expected {expected!r}"


# --- countdown_value ---------------------------------------------------------


@pytest.mark.parametrize(
    "expr,numbers,expected",
    [
        ("44 + 19 + 35", [44, 19, 35], Fraction(98)),
        ("(44 - 19) * 35", [35, 44, 19], Fraction(875)),
        ("1 / 3 * 3", [1, 3, 3], Fraction(1)),  # exact, no float rounding
        ("7 / 2", [7, 2], Fraction(7, 2)),
        ("((((7)))) - 2", [7, 2], Fraction(5)),
        ("2 - 7", [7, 2], Fraction(-5)),  # negative intermediate/final values are allowed
    ],
)
def test_countdown_value_valid(expr, numbers, expected):
    got = countdown_value(expr, numbers)
    assert got == expected, f"countdown_value({expr!r}, {numbers}) = {got!r}, expected {expected}"


@pytest.mark.parametrize(
    "expr,numbers,why",
    [
        ("44 + 44 + 35", [44, 19, 35], "a number used twice"),
        ("44 + 19", [44, 19, 35], "a number missing"),
        ("44 + 19 + 35 + 1", [44, 19, 35], "an extra number"),
        ("2 ** 3", [2, 3], "Pow"),
        ("-2 + 3", [2, 3], "unary minus"),
        ("+2 + 3", [2, 3], "unary plus"),
        ("7 // 2", [7, 2], "floor division"),
        ("7 % 2", [7, 2], "modulo"),
        ("7 & 2", [7, 2], "bit operation"),
        ("7.0 + 2", [7, 2], "float literal"),
        ("7e0 + 2", [7, 2], "exponent literal"),
        ("7j + 2", [7, 2], "complex literal"),
        ("True + 2", [1, 2], "bool"),
        ("abs(7) + 2", [7, 2], "function call"),
        ("7 / (2 - 2)", [7, 2, 2], "division by zero"),
        ("(7 + 2", [7, 2], "unbalanced parenthesis"),
        ("7 2", [7, 2], "syntax error"),
        ("007 + 2", [7, 2], "leading zeros"),
        ("\u0663 + 2", [3, 2], "Arabic-Indic digit"),
        ("\uff17 + 2", [7, 2], "fullwidth digit"),
        ("", [], "empty expression"),
    ],
)
def test_countdown_value_invalid(expr, numbers, why):
    got = countdown_value(expr, numbers)
    assert got is None, f"{why}: countdown_value({expr!r}, {numbers}) = {got!r}, expected None"


def test_countdown_depth_bounds():
    shallow = "(" * MAX_DEPTH + "7" + ")" * MAX_DEPTH + " - 2"
    assert countdown_value(shallow, [7, 2]) == 5, "MAX_DEPTH parentheses should be accepted"
    deep = "(" * (MAX_DEPTH + 1) + "7" + ")" * (MAX_DEPTH + 1) + " - 2"
    assert countdown_value(deep, [7, 2]) is None, "nesting past MAX_DEPTH accepted"
    # A long chain is a deep left-leaning AST even without parentheses.
    chain = " + ".join(["1"] * (MAX_DEPTH + 2))
    assert len(chain) <= MAX_EXPR_CHARS
    assert countdown_value(chain, [1] * (MAX_DEPTH + 2)) is None, "AST deeper than MAX_DEPTH"


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("44 + 19 + 35", True),
        ("44 + 19 + 35 = 98", True),  # equation form
        ("(44 + 19 + 35)=98 ", True),
        ("44 + 19 + 35 = 97", False),  # false claim
        ("44 + 19 + 35 = 98 = 98", False),
        ("98 = 44 + 19 + 35", False),  # only "expr = target" is accepted
        ("44 + 19 - 35", False),  # wrong value
    ],
)
def test_countdown_correct(answer, expected):
    got = countdown_correct(answer, [44, 19, 35], 98)
    assert got is expected, f"countdown_correct({answer!r}) = {got}, expected {expected}"


# --- normalize_number --------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1234", "1234"),
        (" 1234 ", "1234"),
        ("1,234", "1234"),
        ("1,234,567", "1234567"),
        ("1234.0", "1234"),
        ("1234.00", "1234"),
        ("1234.", "1234"),
        ("$1,234.50", "1234.5"),
        ("-$5", "-5"),
        ("$-5", "-5"),
        ("+7", "7"),
        ("007", "7"),
        ("-0.0", "0"),
        ("0.25", "0.25"),
        ("-3.10", "-3.1"),
        ("\\boxed{42}", "42"),
        ("so \\boxed{1,000}.", "1000"),
        ("123456789012345678901234567890.5", "123456789012345678901234567890.5"),
    ],
)
def test_normalize_number_accepts(text, expected):
    got = normalize_number(text)
    assert got == expected, f"normalize_number({text!r}) = {got!r}, expected {expected!r}"


@pytest.mark.parametrize(
    "text",
    ["", "abc", "12,34", "1e5", "1/2", "5 apples", "50%", ".5", "1 234", "--5", "$", "-",
     "\u0663", "\\boxed{42", "1" * 65, "nan", "inf"],
)
def test_normalize_number_rejects(text):
    got = normalize_number(text)
    assert got is None, f"normalize_number({text!r}) = {got!r}, expected None"


def test_combine_reward():
    assert combine_reward(1.0, 1.0) == pytest.approx(1.1)
    assert combine_reward(0.0, 1.0) == pytest.approx(0.1)
    assert combine_reward(1.0, 0.0, accuracy_weight=2.0, format_weight=0.5) == 2.0
    assert type(combine_reward(1, 1)) is float
