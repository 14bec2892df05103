"""The "gpu-countdown" base's corpus: the GPU preset's countdown transcripts and searches.

    from grpo.bases.countdown import countdown_corpus_records
    records = countdown_corpus_records(1000, seed=0)   # (kind, example, text) per document

The countdown base (`CountdownBuildConfig`, `countdown_corpus_records`). The
same two lessons as the addition base (grpo/bases/addition.py), applied to
search. Problems come from `get_task("countdown", **TINYZERO_COUNTDOWN).train_example(i)`
(3-4 numbers in 1..99, target 1..999); every document ends with <|endoftext|>:

    50%  R1-Zero transcripts, the trainer's exact prompt, then one of
           60%  " <answer>EXPR</answer>"                    direct answer
           22%  " <think></think> <answer>EXPR</answer>"    empty thinking
           12%  " <think> SEARCH </think> <answer>EXPR</answer>"
                  (15% of these give up: EXPR is their last, wrong, try)
            6%  " EXPR"                                     bare expression, no tags
    50%  worked examples: the task's question, ". Work it out: SEARCH and the
         answer is EXPR." (always solved)

SEARCH restates the numbers and the target, then writes tries. A try is a
full path of steps "a op b=c" (larger operand first, positive integers up to
999, no fractions), each followed by the numbers left, until one number
remains: " yes." if it is the target, " no." if not. Failed tries are random
first steps whose last step is the one that lands nearest the target
(`countdown_guess`); a solved search ends with a solution found by a
randomised depth-first search (`countdown_solve`). Then "so" and the answer
built one substitution at a time, so the answer is a copy of the last form
(the rules and the search: grpo/bases/solver.py):

    67 65 79 to 780: 67+65=132 [79 132], 132+79=211 no. 79-67=12 [65 12],
    65*12=780 yes. so 65*12 = 65*(79-67)

The number of failed tries before the solution is k with P(k) ~ 0.6**k, k <= 3
(mean ~0.9): the base learns to try, check and try again, and RL can learn to
try more (longer responses) and to give up less. ". Work it out: " and
". Assistant: <think> " are 6 tokens each, so the search starts as far from
the question in both kinds (tests pin it). Model: hidden 512, 8 layers, 8
heads of 64, SwiGLU 2048, ~34M parameters; rows of 768 tokens (the longest
document is ~480); 2,500 steps x 64 rows (~123M token slots, ~1.7 epochs of
300k documents) at lr 1e-3, bf16 autocast on CUDA. Its RL run:
configs/gpu-countdown.toml; what is and is not measured: configs/README.md.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from grpo.bases.common import EOS, TEMPLATE, check_build_numbers, completion_text, model_config
from grpo.bases.solver import MAX_VALUE, Search, Step, countdown_guess, countdown_solve
from grpo.tasks import TINYZERO_COUNTDOWN, get_task
from model.config import ModelConfig

COUNTDOWN_MODES = ("answer", "empty_think", "scratchpad", "bare")


@dataclass(frozen=True)
class CountdownBuildConfig:
    """The GPU preset's base ("gpu-countdown"): everything that decides its weights.

    Same pipeline as `BuildConfig` (corpus, BPE, packing, AdamW), another corpus
    and a ~34M-parameter model. `task` is not a field (the manifest gets it from
    `to_dict`), so it cannot be replaced into a wrong value.
    """

    task: ClassVar[str] = "countdown"
    seed: int = 0  # corpus, tokenizer sample, model init and data order
    num_docs: int = 300_000  # documents in the corpus (~60M tokens, ~90 s to generate)
    transcript_share: float = 0.5  # R1-Zero transcripts; the rest are worked examples
    answer_share: float = 0.6  # within transcripts: " <answer>expr</answer>"
    empty_think_share: float = 0.22  # " <think></think> <answer>expr</answer>"
    scratchpad_share: float = 0.12  # " <think> SEARCH </think> <answer>expr</answer>"
    bare_share: float = 0.06  # " expr", no tags
    retry_ratio: float = 0.6  # P(k failed tries before the solution) ~ retry_ratio**k
    max_failed_tries: int = 3  # k <= this (and a give-up has 1 .. this + 1 failed tries)
    give_up_share: float = 0.15  # transcript searches that stop after a failed try
    max_value: int = MAX_VALUE  # no step result above this: every number has <= 3 digits
    tokenizer_docs: int = 2_000  # corpus sample the BPE merges are learned from
    vocab_size: int = 1024  # BPE target; the corpus saturates below it
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_layers: int = 8
    num_heads: int = 8
    num_kv_heads: int = 8  # plain multi-head attention: no GQA path in SDPA's masked kernels
    head_dim: int = 64
    seq_len: int = 768  # tokens per packed row; the longest document is ~465
    batch_size: int = 64  # rows per step
    steps: int = 2500
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.1  # on matrices only
    grad_clip: float = 1.0
    version: int = 1  # bump when the corpus generator or the training loop changes

    def __post_init__(self) -> None:
        check_build_numbers(self, COUNTDOWN_MODES)
        if not 0.0 <= self.give_up_share <= 1.0:
            raise ValueError(f"give_up_share must be in [0, 1], got {self.give_up_share}")
        if self.retry_ratio < 0 or self.max_failed_tries < 0:
            raise ValueError("need retry_ratio >= 0 and max_failed_tries >= 0")
        if self.max_value < 1:
            raise ValueError(f"max_value must be >= 1, got {self.max_value}")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **asdict(self)}

    def model_config(self, vocab_size: int, eos_id: int) -> ModelConfig:
        return model_config(self, vocab_size, eos_id)


COUNTDOWN_CONFIG = CountdownBuildConfig()


def countdown_search(
    example: dict[str, Any], rng: random.Random, config: CountdownBuildConfig = COUNTDOWN_CONFIG,
    give_up: bool = False,
) -> Search | None:  # fmt: skip
    """A search for `example`: k failed tries, then a solution (or, with `give_up`, k + 1
    failed tries and no solution). None if no solution without negatives or fractions exists.

    k ~ retry_ratio**k for k = 0 .. max_failed_tries. Failed tries are distinct
    `countdown_guess`es that miss the target.
    """
    numbers, target = tuple(example["numbers"]), example["target"]
    solution = countdown_solve(numbers, target, rng, max_value=config.max_value)
    if solution is None:
        return None
    ks = range(config.max_failed_tries + 1)
    k = rng.choices(ks, [config.retry_ratio**i for i in ks])[0] + int(give_up)
    failed: list[tuple[Step, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(20 * k):
        if len(failed) == k:
            break
        guess = countdown_guess(numbers, target, rng, config.max_value)
        if guess is None or guess[-1].value == target:
            continue
        key = tuple(s.text() for s in guess)
        if key not in seen:
            seen.add(key)
            failed.append(guess)
    if give_up and not failed:
        return None
    tries = tuple(failed) if give_up else (*failed, solution)
    return Search(numbers, target, tries)


def countdown_completion(mode: str, search: Search) -> str:
    """The text after "Assistant:" for one of COUNTDOWN_MODES (EOS not included)."""
    work = search.text() if mode == "scratchpad" else ""
    return completion_text(mode, search.expression, work, "bare", COUNTDOWN_MODES)


def countdown_worked_example(example: dict[str, Any], search: Search) -> str:
    """The question as the task asks it, then the search, no template (EOS not included)."""
    # ". Work it out: " is as many tokens as ". Assistant: <think> " (6), so the
    # search starts as far from the question as in a transcript.
    # The search is followed by a space, as by " </think>" in a transcript, so
    # its last token is the same in both (".", like ")" , would merge with ")").
    work = search.text()
    return f"{example['question']}. Work it out: {work} and the answer is {search.expression}."


def countdown_task(seed: int = 0):
    """The countdown task whose train stream the corpus draws from (and the trainer uses)."""
    return get_task("countdown", seed=seed, template=TEMPLATE, **TINYZERO_COUNTDOWN)


def countdown_corpus_records(
    num_docs: int, seed: int, config: CountdownBuildConfig = COUNTDOWN_CONFIG
) -> list[tuple[str, dict[str, Any], str]]:
    """(kind, example, text) per document; kind is a mode of COUNTDOWN_MODES or "worked".

    Every direct answer, and every worked example, is right; transcript
    scratchpads give up (answer their last, wrong, try) `give_up_share` of
    the time. The ~2% of train problems with no solution in positive
    integers <= max_value are skipped, so document i is not train problem i.
    """
    task = countdown_task(seed)
    rng = random.Random(f"demo-countdown-corpus/{seed}")
    modes = list(COUNTDOWN_MODES)
    weights = [getattr(config, f"{m}_share") for m in modes]
    records: list[tuple[str, dict[str, Any], str]] = []
    index = 0
    while len(records) < num_docs:
        example = task.train_example(index)
        index += 1
        if rng.random() < config.transcript_share:
            kind = rng.choices(modes, weights)[0]
            give_up = kind == "scratchpad" and rng.random() < config.give_up_share
            search = countdown_search(example, rng, config, give_up)
            if search is None:
                continue
            text = task.prompt(example) + countdown_completion(kind, search)
        else:
            search = countdown_search(example, rng, config)
            if search is None:
                continue
            kind, text = "worked", countdown_worked_example(example, search)
        records.append((kind, example, text + EOS))
    return records
