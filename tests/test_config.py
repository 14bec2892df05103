"""TrainConfig: types and ranges checked once, before any work; flags, help and warnings."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo.run.config import (
    OneLineErrorParser,
    TrainConfig,
    add_config_flags,
    config_from_args,
    read_config_file,
)

ROOT = Path(__file__).resolve().parents[1]


def _parser() -> OneLineErrorParser:
    ap = OneLineErrorParser(prog="train_zero.py")
    add_config_flags(ap)
    return ap


def _from_flags(args: list[str], file: Path | None = None) -> TrainConfig:
    ns = _parser().parse_args(args)
    return config_from_args(ns, str(file) if file else None)[0]


def _toml(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "run.toml"
    f.write_text(text)
    return f


# ---------------------------------------------------------------- types (item 6)


@pytest.mark.parametrize(
    "line,key,said",
    [
        ("steps = 2.5", "steps", "must be an integer, got 2.5"),
        ('steps = "ten"', "steps", "must be an integer, got 'ten'"),
        ("steps = true", "steps", "must be an integer, got True"),
        ('lr = "1e-4"', "lr", "must be a number, got '1e-4'"),
        ("lr = true", "lr", "must be a number, got True"),
        ("lr = nan", "lr", "must be finite"),
        ("temperature = inf", "temperature", "must be finite"),
        ('plot = "false"', "plot", "must be true or false, got 'false'"),
        ('scale_by_std = "false"', "scale_by_std", "must be true or false"),
        ("grad_checkpointing = 1", "grad_checkpointing", "must be true or false, got 1"),
        ("task = 3", "task", "must be a string, got 3"),
        ("out = 5", "out", "must be a string, got 5"),
    ],
)
def test_config_file_values_of_the_wrong_type_name_the_file_and_key(tmp_path, line, key, said):
    f = _toml(tmp_path, line + "\n")
    for build in (
        lambda: TrainConfig.from_dict(read_config_file(f), source=str(f)),
        lambda: _from_flags([], file=f),
    ):
        with pytest.raises(ValueError) as e:
            build()
        assert str(e.value).startswith(f"{f}: {key} {said}"), f"{line!r} gave {str(e.value)!r}"


def test_json_string_bool_is_refused(tmp_path):
    f = tmp_path / "run.json"
    f.write_text('{"plot": "false"}')
    with pytest.raises(ValueError, match=re.escape(f"{f}: plot must be true or false")):
        _from_flags([], file=f)


def test_integer_valued_floats_are_fine_and_stored_as_floats(tmp_path):
    cfg = _from_flags([], file=_toml(tmp_path, "lr = 1\nmin_lr_ratio = 0\n"))
    assert (cfg.lr, cfg.min_lr_ratio) == (1.0, 0.0)
    assert type(cfg.lr) is float and type(cfg.min_lr_ratio) is float, "ints not stored as floats"


@pytest.mark.parametrize(
    "changes,said",
    [
        ({"steps": 2.5}, "--steps must be an integer, got 2.5"),
        ({"steps": True}, "--steps must be an integer, got True"),
        ({"plot": "false"}, "--plot must be true or false, got 'false'"),
        ({"lr": "1e-4"}, "--lr must be a number, got '1e-4'"),
        ({"lr": float("nan")}, "--lr must be finite, got nan"),
        ({"beta": float("inf")}, "--beta must be finite, got inf"),
    ],
)
def test_direct_construction_checks_types(changes, said):
    with pytest.raises(ValueError) as e:
        TrainConfig(**changes)
    assert str(e.value).startswith(said), f"{changes} gave {str(e.value)!r}"


def test_non_integer_steps_flag_is_one_argparse_line(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["--steps", "2.5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, f"rc {e.value.code}, stderr {err!r}"
    assert "--steps" in err and "2.5" in err, err


# ---------------------------------------------------------------- ranges (items 6, 11, 18)


@pytest.mark.parametrize(
    "flag,value,said",
    [
        ("--log-every", "0", "--log-every must be >= 1, got 0"),
        ("--threads", "-1", "--threads must be >= 0"),
        ("--warmup-steps", "-5", "--warmup-steps must be >= 0"),
        ("--samples-per-eval", "-1", "--samples-per-eval must be >= 0"),
        ("--eval-temperature", "-1", "--eval-temperature must be >= 0"),
        ("--eval-batch-size", "0", "--eval-batch-size must be >= 1"),
        ("--adv-eps", "0", "--adv-eps must be > 0"),
        ("--eps-low", "1", "--eps-low must be in [0, 1)"),
        ("--eps-low", "-0.1", "--eps-low must be in [0, 1)"),
        ("--eps-high", "-0.1", "--eps-high must be >= 0"),
        ("--beta", "-0.01", "--beta must be >= 0"),
        ("--entropy-coef", "-1", "--entropy-coef must be >= 0"),
        ("--min-lr-ratio", "1.5", "--min-lr-ratio must be in [0, 1]"),
        ("--min-lr-ratio", "-0.1", "--min-lr-ratio must be in [0, 1]"),
        ("--weight-decay", "-1", "--weight-decay must be >= 0"),
        ("--adam-beta1", "1", "--adam-beta1 must be in [0, 1)"),
        ("--adam-beta2", "-0.5", "--adam-beta2 must be in [0, 1)"),
        ("--grad-clip", "-1", "--grad-clip must be >= 0"),
        ("--format-weight", "-1", "--format-weight must be >= 0"),
        ("--seed", "-1", "--seed must be in 0 .. 2**32 - 1"),
        ("--lr", "nan", "--lr must be finite"),
        ("--lr", "inf", "--lr must be finite"),
        ("--device", "gpu", "--device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("--device", "mps", "--device must be auto, cpu, cuda or cuda:N, got 'mps'"),
        ("--device", "cuda:x", "--device must be auto, cpu, cuda or cuda:N"),
        ("--template", "chatml", "--template must be one of r1zero, r1zero_think, got 'chatml'"),
        ("--model", "", "--model must name"),
    ],
)
def test_out_of_range_flags_are_refused_with_the_flag_named(flag, value, said):
    with pytest.raises(ValueError) as e:
        _from_flags([flag, value])
    assert str(e.value).startswith(said), f"{flag} {value} gave {str(e.value)!r}"


def test_both_reward_weights_zero_is_refused():
    with pytest.raises(ValueError, match="--accuracy-weight must be > 0 when format_weight is 0"):
        _from_flags(["--format-weight", "0", "--accuracy-weight", "0"])


def test_range_error_names_the_file_key_or_the_flag(tmp_path):
    f = _toml(tmp_path, "log_every = 0\nthreads = 2\n")
    with pytest.raises(ValueError, match=re.escape(f"{f}: log_every must be >= 1, got 0")):
        _from_flags([], file=f)
    # The flag overrides the file; a bad flag is named as the flag, not as the file's key.
    f = _toml(tmp_path, "threads = 2\n")
    with pytest.raises(ValueError, match=r"^--threads must be >= 0 .*, got -1$"):
        _from_flags(["--threads", "-1"], file=f)


def test_zero_is_an_error_unless_the_help_documents_it_as_off():
    """Item 11: every int field either refuses 0 or says in its help what 0 means."""
    wrong = []
    for f in dataclasses.fields(TrainConfig):
        if f.type != "int" or f.name == "seed":
            continue
        try:
            TrainConfig(**{f.name: 0})
            accepted = True
        except ValueError:
            accepted = False
        documented = re.search(r"\b0 (=|:)", f.metadata["help"]) is not None
        if accepted != documented:
            wrong.append(f"{f.name}: 0 {'accepted' if accepted else 'refused'}, help "
                         f"{'documents' if documented else 'does not document'} it")  # fmt: skip
    assert not wrong, "; ".join(wrong)


def test_documented_off_values_and_good_names_are_accepted():
    cfg = _from_flags(
        ["--top-k", "0", "--threads", "0", "--save-every", "0", "--grad-clip", "0",
         "--samples-per-eval", "0", "--warmup-steps", "0", "--eval-temperature", "0",
         "--device", "cuda:1", "--template", "r1zero_think", "--task", "countdown",
         "--format-weight", "0", "--dtype", "bfloat16"]
    )  # fmt: skip
    assert (cfg.top_k, cfg.threads, cfg.save_every, cfg.device) == (0, 0, 0, "cuda:1")
    for dev in ("auto", "cpu", "cuda", "cuda:0"):
        assert TrainConfig(device=dev).device == dev


# ---------------------------------------------------------------- float16 (item 8)


def test_float16_is_refused_with_a_pointer_to_bfloat16(tmp_path):
    with pytest.raises(ValueError) as e:
        _from_flags(["--dtype", "float16"])
    want = ("--dtype float16 is not supported: fp16 without loss scaling corrupts small "
            "gradients; use bfloat16 (or auto)")
    assert str(e.value) == want, str(e.value)
    f = _toml(tmp_path, 'dtype = "float16"\n')
    with pytest.raises(ValueError, match=re.escape(f"{f}: dtype float16 is not supported")):
        _from_flags([], file=f)


# ---------------------------------------------------------------- flags and help (item 16)


@pytest.mark.parametrize(
    "args,want",
    [
        (["--grad-checkpointing"], {"grad_checkpointing": True}),
        (["--grad-checkpointing", "--steps", "3"], {"grad_checkpointing": True, "steps": 3}),
        (["--no-grad-checkpointing"], {"grad_checkpointing": False}),
        (["--grad-checkpointing", "true"], {"grad_checkpointing": True}),
        (["--plot", "false"], {"plot": False}),
        (["--plot", "False"], {"plot": False}),
        (["--plot", "true"], {"plot": True}),
        (["--no-plot"], {"plot": False}),
        (["--no-scale-by-std", "--plot"], {"scale_by_std": False, "plot": True}),
    ],
)
def test_bool_flags_alone_negated_or_with_a_value(args, want):
    cfg = _from_flags(args)
    got = {k: getattr(cfg, k) for k in want}
    assert got == want, f"{args}: got {got}"


def test_bool_flag_default_is_not_given():
    _, given = config_from_args(_parser().parse_args([]))
    assert given == {}, f"flags not given on the command line were reported as given: {given}"


def test_help_states_each_default_once_and_dtype_says_float16_is_refused():
    text = " ".join(_parser().format_help().split())  # undo argparse's line wrapping
    assert "(default: None)" not in text, "a None default is printed"
    assert "(default runs/<task>-<time>) (default" not in text, "--out's default is doubled"
    start = text.index("--dtype DTYPE compute dtype")  # the option's entry, not the usage line
    dtype = text[start : text.index("--steps STEPS", start)]
    assert "float16 is refused" in dtype and "use bfloat16" in dtype, dtype
    assert "--no-grad-checkpointing" in text and "--grad-checkpointing [BOOL]" in text, text


# ---------------------------------------------------------------- warnings (item 19)


def test_config_warnings_flag_off_policy_sampling_and_known_mismatches():
    from grpo.run.config import config_warnings

    assert config_warnings(TrainConfig()) == [], "the defaults should raise no warning"
    for changes in ({"top_p": 0.9}, {"top_k": 5}):
        got = config_warnings(TrainConfig(**changes))
        assert len(got) == 1 and "off-policy and uncorrected" in got[0], f"{changes}: {got}"
    got = config_warnings(TrainConfig(aggregation="dr_grpo"))
    assert len(got) == 1 and "scale_by_std" in got[0], got
    assert config_warnings(TrainConfig(aggregation="dr_grpo", scale_by_std=False)) == []
    got = config_warnings(TrainConfig(steps=5, warmup_steps=10))
    assert len(got) == 1 and "never reaches" in got[0], got
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
    for name in ("top_p", "top_k"):
        assert "off-policy and uncorrected" in helps[name], f"--{name} help: {helps[name]}"


# ---------------------------------------------------------------- before any work (item 18)


@pytest.mark.parametrize(
    "args,said",
    [
        (["--eval-temperature", "-1"], "--eval-temperature must be >= 0"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_setting_fails_before_any_model_is_loaded(tmp_path, args, said):
    run = tmp_path / "run"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "train_zero.py", "--out", str(run), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    elapsed = time.perf_counter() - t0
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, f"rc {p.returncode}, stderr:\n{p.stderr}"
    assert len(lines) == 1 and "Traceback" not in p.stderr, f"expected one line:\n{p.stderr}"
    assert said in lines[0], lines[0]
    assert not run.exists() and p.stdout == "", f"work started: stdout {p.stdout!r}"
    assert elapsed < 5, f"took {elapsed:.1f}s to refuse a bad flag"


def test_given_flags_collects_without_validating():
    """--resume merges flags onto the saved config: they must not be validated against defaults."""
    from grpo.run.config import given_flags

    ns = _parser().parse_args(["--mini-batches", "3", "--no-plot"])
    assert given_flags(ns) == {"mini_batches": 3, "plot": False}


def test_countdown_variant_reaches_the_task_and_is_checked(tmp_path):
    from grpo.run.config import config_warnings, task_options
    from grpo.run.policy import task_from_config

    cfg = TrainConfig(task="countdown", max_numbers=3, max_number=15, min_target=10,
                      max_target=100)  # fmt: skip
    task = task_from_config(cfg)
    assert (task.min_numbers, task.max_numbers, task.min_number, task.max_number,
            task.min_target, task.max_target) == (3, 3, 1, 15, 10, 100)  # fmt: skip
    assert task_options(TrainConfig()) == {}, "unset options leave the task's defaults"
    with pytest.raises(ValueError, match="max_number"):
        TrainConfig(task="countdown", min_number=20, max_number=10)
    f = tmp_path / "run.toml"
    f.write_text('task = "countdown"\nmax_target = "100"\n')
    with pytest.raises(ValueError, match="run.toml: max_target must be an integer"):
        TrainConfig.from_dict(read_config_file(f), source=str(f))
    assert any("ignored" in w for w in config_warnings(TrainConfig(max_number=15)))
