"""Rule-based rewards for R1-Zero: format check, answer extraction, verifiers.

Everything here is a pure function of strings (no model, no torch), so it can
be tested with hand-written completions:

    check_format(completion, primer)    is the structure <think>..</think><answer>..</answer>?
    extract_answer(completion)          content of the last complete <answer> block
    countdown_value(expr, numbers)      exact value of a Countdown expression, or None
    countdown_correct(answer, numbers, target)
    normalize_number(text)              canonical string for a numeric answer, or None
    combine_reward(accuracy, format_ok) accuracy_weight * accuracy + format_weight * format_ok

Model output is hostile input. It is never run as Python code: Countdown
expressions go through cheap bounds checks (length, character set, literal
size, parenthesis depth) and only then through `ast.parse` and a whitelist
walk with exact `Fraction` arithmetic. Tags are found with str.find/rfind,
which are linear, so a multi-megabyte completion costs a few milliseconds.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

# End-of-text markers a tokenizer may decode at the end of a completion when
# special tokens are not skipped (GPT-2/Qwen base, Qwen chat, Llama 2/Mistral,
# Llama 3). Only these and whitespace may follow </answer>.
END_MARKERS = ("<|endoftext|>", "<|im_end|>", "</s>", "<|end_of_text|>", "<|eot_id|>")
_WHITESPACE = re.compile(r"\s*")
# One or more markers back to back. The alternatives are literals that never
# match at the same position in two ways, so a failed match backtracks in
# linear time. Whitespace is left out on purpose: "\s*" between repetitions
# would backtrack one character at a time over a long run of spaces.
_MARKER_RUN = re.compile("(?:" + "|".join(map(re.escape, END_MARKERS)) + ")+")

# Countdown bounds, all checked before ast.parse sees the string. A real
# answer with 3-6 two-digit numbers is well under every one of them.
MAX_EXPR_CHARS = 200
MAX_LITERAL_DIGITS = 6
MAX_DEPTH = 32  # both parenthesis nesting and AST depth
_EXPR_CHARSET = re.compile(r"[0-9+\-*/() ]*")  # ASCII only: rejects '٣', '３', '.', 'e', '_'
_DIGIT_RUN = re.compile(r"[0-9]+")
_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,  # Fraction / Fraction: exact
}

MAX_NUMBER_CHARS = 64
# Optional sign, then digits with correct thousands grouping ("1,234,567") or
# plain digits, then an optional fraction; a bare trailing "." is a full stop.
_NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]*))?"
)
_BOXED = "\\boxed{"
# No completion from a real generation budget comes near this (8192 tokens are
# ~40k characters); anything longer is hostile and fails the format check.
MAX_COMPLETION_CHARS = 100_000


def check_format(completion: str, primer: str = "") -> bool:
    """True iff `primer + completion` is exactly one think block then one answer block.

    Accepted: optional leading whitespace, "<think>", thinking text, "</think>",
    optional whitespace, "<answer>", a non-empty answer, "</answer>", then only
    whitespace and END_MARKERS. No tag may appear inside either block, so
    nested or repeated blocks fail ("<think><think>", two <answer> blocks).

    Empty thinking ("<think></think>") passes: this reward is about structure
    only. That is also why its weight must stay small: a large format bonus
    lets the policy collapse onto well-formed, empty thinking.

    `primer` is the text the prompt ended with (e.g. "<think>"); the completion
    continues it, so with primer "<think>" the completion must not open
    <think> again. Completions over MAX_COMPLETION_CHARS fail.
    Tasks add one more condition (`Task.score`): the answer must be well formed
    for the task (a number, a computable expression).
    """
    if len(completion) > MAX_COMPLETION_CHARS:
        return False
    text = primer + completion
    start = _skip_whitespace(text, 0)
    if not text.startswith(THINK_OPEN, start):
        return False
    think_start = start + len(THINK_OPEN)
    think_end = text.find(THINK_CLOSE, think_start)
    if think_end < 0 or _has_tag(text, think_start, think_end):
        return False

    pos = _skip_whitespace(text, think_end + len(THINK_CLOSE))
    if not text.startswith(ANSWER_OPEN, pos):
        return False
    answer_start = pos + len(ANSWER_OPEN)
    answer_end = text.find(ANSWER_CLOSE, answer_start)
    if answer_end < 0 or _has_tag(text, answer_start, answer_end):
        return False
    if not text[answer_start:answer_end].strip():
        return False
    return _only_trailer(text, answer_end + len(ANSWER_CLOSE))


def _has_tag(text: str, start: int, end: int) -> bool:
    return any(text.find(tag, start, end) >= 0 for tag in _TAGS)


def _skip_whitespace(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()


def _only_trailer(text: str, pos: int) -> bool:
    """True iff text[pos:] is whitespace and END_MARKERS only (in any number)."""
    # Padding repeats one token, so the distinct whitespace-separated words are few.
    return all(_MARKER_RUN.fullmatch(word) for word in set(text[pos:].split()))


def extract_answer(completion: str) -> str | None:
    """Stripped content of the last complete <answer>...</answer> block, or None.

    "Last complete" means: the last "</answer>" and the nearest "<answer>"
    before it, so a truncated trailing "<answer>..." with no close is ignored.
    An empty block gives "" (not None): the model did answer, with nothing.
    """
    end = completion.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = completion.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    return completion[start + len(ANSWER_OPEN) : end].strip()


def countdown_value(expr: str, numbers: list[int] | None) -> Fraction | None:
    """Exact value of a Countdown expression that uses each of `numbers` exactly once.

    With `numbers=None` any literals are allowed: the expression is only
    checked to be well formed and computable (used for the format reward).

    Grammar: non-negative integer literals, binary + - * /, parentheses,
    spaces. Unary minus (and plus) is rejected: Countdown combines the given
    numbers with binary operations only, and "-3" would be a number that was
    not given. Intermediate results may be negative or fractional; the
    arithmetic is exact (Fraction), so "(1 / 3) * 3" is exactly 1.

    Returns None for anything else: too long (> MAX_EXPR_CHARS), a character
    outside "0123456789+-*/() " (so no unicode digits, floats, names, "**" is
    caught as Pow), a literal over MAX_LITERAL_DIGITS digits, nesting deeper
    than MAX_DEPTH, a syntax error, division by zero, or a multiset of
    literals different from `numbers`.
    """
    if len(expr) > MAX_EXPR_CHARS or not _EXPR_CHARSET.fullmatch(expr):
        return None
    literals = _DIGIT_RUN.findall(expr)
    if any(len(lit) > MAX_LITERAL_DIGITS for lit in literals):
        return None
    # Cheap multiset check before parsing; the AST walk checks again on the
    # parsed constants, which is what actually counts.
    if numbers is not None and Counter(int(lit) for lit in literals) != Counter(numbers):
        return None
    if _paren_depth(expr) is None:
        return None
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    used: list[int] = []
    value = _evaluate(tree.body, used, depth=1)
    if value is None or (numbers is not None and Counter(used) != Counter(numbers)):
        return None
    return value


def _paren_depth(expr: str) -> int | None:
    """Maximum parenthesis depth, or None if unbalanced or deeper than MAX_DEPTH."""
    depth = deepest = 0
    for ch in expr:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return None
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
    return deepest if depth == 0 else None


def _evaluate(node: ast.AST, used: list[int], depth: int) -> Fraction | None:
    """Whitelist evaluator: int constants and binary + - * / only."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, ast.Constant):
        # bool is an int subclass; the charset already excludes it, the check documents it.
        if type(node.value) is not int:
            return None
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _evaluate(node.left, used, depth + 1)
        right = _evaluate(node.right, used, depth + 1)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div) and right == 0:
            return None
        return _BINOPS[type(node.op)](left, right)
    return None  # UnaryOp, Pow, FloorDiv, Mod, names, calls, ...


def countdown_expression(answer: str, target: int) -> str | None:
    """The expression part of a Countdown answer.

    Accepts "expr" or the equation form "expr = target". With "=", the right
    side must be exactly the target (an integer literal): "1 + 2 = 4" claims
    something false and is wrong even if 1 + 2 were the target's expression.
    Returns None if the equation form is malformed.
    """
    if "=" not in answer:
        return answer
    lhs, _, rhs = answer.partition("=")
    rhs = rhs.strip()
    if len(rhs) > MAX_LITERAL_DIGITS or not rhs.isascii() or not rhs.isdigit():
        return None
    return lhs if int(rhs) == target else None


def countdown_wellformed(answer: str) -> bool:
    """True iff `answer` is a computable whitelisted expression (any numbers, any value).

    The equation form "expr = N" is well formed for any integer N (a false
    claim is a wrong answer, not a malformed one).
    """
    expr, eq, rhs = answer.partition("=")
    if eq:
        rhs = rhs.strip()
        if len(rhs) > MAX_LITERAL_DIGITS or not rhs.isascii() or not rhs.isdigit():
            return False
    return countdown_value(expr.strip(), None) is not None


def countdown_correct(answer: str, numbers: list[int], target: int) -> bool:
    """True iff `answer` uses each number exactly once and equals `target` exactly."""
    expr = countdown_expression(answer, target)
    if expr is None:
        return False
    value = countdown_value(expr.strip(), numbers)
    return value is not None and value == target


def normalize_number(text: str) -> str | None:
    """Canonical decimal string for a numeric answer, or None if it is not one.

    Accepted, after stripping whitespace (whole input at most MAX_NUMBER_CHARS):
      - an optional \\boxed{...} wrapper (the last one in the text is used)
      - an optional "$" before or after the sign: "$5", "-$5", "$-5"
      - an optional sign "+" or "-"
      - digits, either plain or with correct thousands grouping ("1,234,567";
        "12,34" is rejected as ambiguous)
      - an optional fraction ("1.5"; a leading digit is required, ".5" is
        rejected); a bare trailing "." is a full stop
    Canonical form: no "+", no commas, no leading zeros, no trailing
    fractional zeros, no "-0": "1,234.50" -> "1234.5", "1234.0" -> "1234",
    "-0.0" -> "0". Exact string arithmetic; float() is never used, so no
    rounding. Not accepted: exponents, fractions "1/2", units "5 apples",
    percent signs.
    """
    text = text.strip()
    if len(text) > MAX_NUMBER_CHARS:
        return None
    boxed = text.rfind(_BOXED)
    if boxed >= 0:
        close = text.find("}", boxed)
        if close < 0:
            return None
        text = text[boxed + len(_BOXED) : close].strip()
    if text.startswith("$"):
        text = text[1:]
    elif text[:2] in ("-$", "+$"):
        text = text[0] + text[2:]
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    integer = match["int"].replace(",", "").lstrip("0") or "0"
    fraction = (match["frac"] or "").rstrip("0")
    number = f"{integer}.{fraction}" if fraction else integer
    return "-" + number if match["sign"] == "-" and number != "0" else number


def combine_reward(
    accuracy: float, format_ok: float, accuracy_weight: float = 1.0, format_weight: float = 0.1
) -> float:
    """reward = accuracy_weight * accuracy + format_weight * format.

    The format weight is small on purpose (see check_format): it nudges a base
    model towards the tags without making empty thinking worth more than being right.
    """
    return float(accuracy_weight * accuracy + format_weight * format_ok)
