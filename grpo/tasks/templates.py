"""Prompt templates for R1-Zero training.

The base template is Table 1 of the DeepSeek-R1 paper, verbatim (the line
wraps of the paper are single spaces here). It is used with a *base* model:
the prompt is plain text that ends with "Assistant:", and the model continues
it. Variants differ only in the "primer", text appended after "Assistant:"
that the model's completion continues:

    r1zero        no primer: the model must open <think> itself
    r1zero_think  primer "<think>": the model starts inside the thinking block,
                  as TinyZero-style small reproductions do

The reward's format check needs the primer (the completion alone lacks the
opening tag), so `primer(name)` is exported alongside `build_prompt`.

    >>> build_prompt("What is 2 + 3", "r1zero_think")[-39:]
    'User: What is 2 + 3. Assistant: <think>'
"""

from __future__ import annotations

from dataclasses import dataclass

R1ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The assistant first thinks about the reasoning process in "
    "the mind and then provides the user with the answer. The reasoning process and "
    "answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer "
    "here </answer>. User: {question}. Assistant:"
)


@dataclass(frozen=True)
class Template:
    text: str  # contains exactly one "{question}" placeholder
    primer: str  # appended after the filled text, separated by one space; "" for none


TEMPLATES: dict[str, Template] = {
    "r1zero": Template(R1ZERO_TEMPLATE, ""),
    "r1zero_think": Template(R1ZERO_TEMPLATE, "<think>"),
}


def get_template(name: str) -> Template:
    """The template registered as `name`; ValueError naming the valid ones otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        valid = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"unknown template {name!r}; valid templates: {valid}") from None


def primer(template: str = "r1zero") -> str:
    """The text the prompt leaves open, which the completion continues ("" or "<think>")."""
    return get_template(template).primer


def build_prompt(question: str, template: str = "r1zero") -> str:
    """Fill `question` into the named template.

    The template itself writes "User: {question}. Assistant:", so a question
    ending in "." would give "..": one trailing period (and surrounding
    whitespace) is dropped. Other punctuation ("?") is kept, as in the paper.
    """
    t = get_template(template)
    question = question.strip().removesuffix(".").rstrip()
    # str.replace, not str.format: braces inside the question must stay literal.
    text = t.text.replace("{question}", question)
    return f"{text} {t.primer}" if t.primer else text
