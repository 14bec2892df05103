"""The from-scratch base models of the demos: "demo", "demo-countdown" (CPU), "gpu-countdown".

R1-Zero needs a *base* model: one pretrained on text, not fine-tuned to follow
a format. This package builds the CPU demos' bases on a 2-core CPU (addition
in about ten minutes, countdown in about half an hour), ships them
(assets/demo-base/, assets/demo-countdown-base/), caches them, and measures them:

    python -m grpo.demo build --out assets/demo-base   # THE command that produced assets/demo-base/
    python -m grpo.demo build --base demo-countdown --out assets/demo-countdown-base   # this one
                                                       # produced assets/demo-countdown-base/
    python -m grpo.demo build        # the same build into .cache/demo-base/ (the asset untouched)
    python -m grpo.demo inspect      # modes, per-mode accuracy, format rate of the base
    python -m grpo.demo inspect --base demo-countdown   # also how its searches go
    python -m grpo.demo build --out /tmp/b --steps 100 --docs 5000   # a quick, weaker one

    from grpo.bases import TEMPLATE, ensure_base
    path = ensure_base("demo")       # shipped copy if valid, else .cache/, else build

The trainer's `--model demo` is the demo base of the chosen task
(`demo_base_name`): "demo" for addition, "demo-countdown" for countdown.

The GPU preset's base, "gpu-countdown", is the same pipeline with TinyZero's
countdown ranges and a ~34M-parameter model; it is built on first use into
.cache/gpu-countdown-base/ (not shipped), see grpo/bases/countdown.py:

    python -m grpo.demo build --base gpu-countdown           # on CUDA if available
    path = ensure_base("gpu-countdown")                      # what --model gpu-countdown uses

The students of grpo/experiments/distill.py, "demo-student" (addition) and
"demo-countdown-student", are the two CPU demos' corpora, tokenizers and recipes at about a
quarter of the parameters, shipped in assets/ beside them.

Template: "r1zero". The prompt ends with "Assistant:" and the model must open
<think> itself, as in the paper. Measured on 500 held-out problems (numbers
in assets/README.md): greedy decoding gives a bare <answer> block every time
(format rate 0, accuracy ~0), while sampling at temperature 1 opens <think> in
~31% of completions and writes the column-by-column work in ~16%, which is
right ~91% of the time. So a group of 8 usually holds one careful, right
answer among direct, wrong ones: the signal GRPO amplifies. With
"r1zero_think" the prompt itself would open <think>, and the format question
(does the model choose to think?) would be settled before RL starts.

The package, in reading order (each module's docstring has its part of the design):

    common.py          the template, EOS, the tags, the text of each completion mode
    addition.py        the "demo" corpus: transcripts and column-by-column worked examples
    solver.py          countdown's rules: moves, a depth-first solver, guesses, expression forms
    countdown_demo.py  the "demo-countdown" corpus: guesses, and searches in a fixed order
    countdown.py       the "gpu-countdown" corpus: transcripts and written searches
    pretrain.py        tokenizer, row packing, learning rate, the pretraining loop
    build.py           the checkpoint folder and its manifest: build, validate, cache, ensure_base
    inspect.py         read completions back into modes; the `inspect` report
    cli.py             `python -m grpo.demo build | inspect`

The trainer and eval.py only ask for a base by name: `ensure_base(name)`.
"""

from grpo.bases.addition import DEFAULT_CONFIG, BuildConfig
from grpo.bases.build import (
    BASES,
    DEMO_BASES,
    base_config,
    base_run_config,
    base_task,
    build_base,
    demo_base_name,
    ensure_base,
    validate_base,
)
from grpo.bases.common import EOS, TAGS, TEMPLATE
from grpo.bases.countdown import COUNTDOWN_CONFIG, CountdownBuildConfig
from grpo.bases.countdown_demo import DEMO_COUNTDOWN_CONFIG, CountdownDemoConfig

__all__ = [
    "BASES", "COUNTDOWN_CONFIG", "DEMO_BASES", "DEMO_COUNTDOWN_CONFIG", "CountdownDemoConfig",
    "base_run_config", "demo_base_name", "DEFAULT_CONFIG", "EOS", "TAGS", "TEMPLATE", "BuildConfig",
    "CountdownBuildConfig", "base_config", "base_task", "build_base", "ensure_base",
    "validate_base",
]  # fmt: skip
