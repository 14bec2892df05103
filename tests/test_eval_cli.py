"""eval.py as a user meets it: flags checked first, the run's task, the context, one-line errors.

A tiny random model (one layer, 256 positions) is built once per module; runs
are faked as folders with train_config.json and checkpoints/latest, which is
all eval.py reads of a run. Subprocess tests assert the exit code, a single
stderr line and no traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = 256  # positions of the tiny model: a 2,000-character question cannot fit


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from grpo.tasks import get_task
    from model import PRESETS, Transformer, save_pretrained, train_bpe_tokenizer

    task = get_task("addition")
    texts = [task.prompt(task.train_example(i)) + " <think> </think> <answer> 12 </answer>"
             for i in range(200)]  # fmt: skip
    tok = train_bpe_tokenizer(texts, 300, atomic_strings=["<think>", "</think>", "<answer>",
                                                          "</answer>"])  # fmt: skip
    cfg = PRESETS["tiny"].with_(
        vocab_size=tok.vocab_size, eos_token_id=tok.eos_id, hidden_size=32, intermediate_size=64,
        num_layers=1, head_dim=8, max_position_embeddings=CONTEXT,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_pretrained(Transformer(cfg).init_weights(seed=0), path, tokenizer=tok)
    return path


def _long_heldout_question() -> str:
    """A question far over the context that falls in the jsonl task's held-out split."""
    from grpo.tasks import in_heldout

    for i in range(10_000):
        q = f"What is {' + '.join(['1'] * 700)} (variant {i})?"
        if in_heldout(f"jsonl:{q}", 0.1):
            return q
    raise AssertionError("no held-out variant found")


def _fake_run(root: Path, model: Path, cfg: dict, questions: list[dict] | None = None) -> Path:
    """A run folder as train_zero.py leaves it, as far as eval.py is concerned."""
    ckpt = root / "checkpoints" / "step_000003"
    shutil.copytree(model, ckpt)
    (ckpt / "trainer_state.pt").write_bytes(b"")
    (root / "checkpoints" / "latest").write_text("step_000003\n")
    if questions is not None:
        data = root / "questions.jsonl"
        data.write_text("".join(json.dumps(q) + "\n" for q in questions))
        cfg = {**cfg, "task_path": str(data)}
    (root / "train_config.json").write_text(json.dumps(cfg))
    return root


def _unwritable(folder: str) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return False
    except OSError:
        return Path(folder).is_dir()


def _eval(args: list[str], cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "eval.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _one_error_line(p: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}; stderr: {p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, f"wanted one stderr line, got {len(lines)}: {p.stderr}"
    return lines[0]


def _main_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    cli = importlib.import_module("eval")
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- flags
@pytest.mark.parametrize("flag,value", [
    ("--n", "0"), ("--samples", "0"), ("--max-new-tokens", "0"), ("--max-new-tokens", "-5"),
    ("--batch-size", "0"), ("--temperature", "-1"), ("--temperature", "nan"), ("--seed", "-1"),
    ("--seed", str(2**32)), ("--seed", "99999999999999999999"),
    ("--format-weight", "-0.1"), ("--accuracy-weight", "0"), ("--device", "gpu"),
    ("--device", "mps"), ("--task", "additon"), ("--template", "r1"),
])  # fmt: skip
def test_bad_flag_is_refused_before_anything_loads(flag, value, capsys, tmp_path):
    # The model path does not exist either: the flag must be what is reported.
    code, out, err = _main_in_process(["--model", str(tmp_path / "nope"), flag, value], capsys)
    lines = err.strip().splitlines()
    assert code == 2, f"{flag} {value}: exit {code}; stderr {err!r}"
    assert len(lines) == 1 and flag in lines[0] and "nope" not in lines[0], (
        f"{flag} {value}: wanted one line naming the flag, got {err!r}"
    )
    assert out == "", f"{flag} {value}: something ran before the flag was checked: {out!r}"


def test_device_gpu_is_one_line_without_traceback(tmp_path):
    line = _one_error_line(_eval(["--model", str(tmp_path / "nope"), "--device", "gpu"]))
    assert "--device" in line and "cuda" in line, line


def test_help_shows_the_defaults(capsys):
    code, out, _ = _main_in_process(["--help"], capsys)
    text = " ".join(out.split())  # argparse wraps lines anywhere
    assert code == 0
    for shown in ("(default: 500)", "(default: 1)", "(default: 512)", "(default: 0)",
                  "(default: the run's, else addition)", "(default: the run's, else 96)",
                  "(default: auto"):  # fmt: skip
        assert shown in text, f"--help lacks {shown!r}:\n{out}"


# ----------------------------------------------------------------------------- the output path
def test_json_into_a_folder_fails_before_evaluating(tiny_model, tmp_path):
    p = _eval(["--model", str(tiny_model), "--n", "4", "--json", str(tmp_path)])
    line = _one_error_line(p)
    assert str(tmp_path) in line and "folder" in line, line
    assert "pass@1" not in p.stdout and "loading" not in p.stdout, p.stdout


def test_json_under_a_file_or_readonly_fails_before_loading(tiny_model, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    targets = [a_file / "sub" / "res.json"]
    if _unwritable("/sys"):  # sysfs takes no new files, not even from root
        targets.append(Path("/sys/r1zero-eval-test/res.json"))
    for target in targets:
        code, out, err = _main_in_process(
            ["--model", str(tiny_model), "--n", "4", "--json", str(target)], capsys
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, (target, code, err)
        assert str(target) in err, f"the message should name {target}: {err!r}"
        assert "loading" not in out and "pass@1" not in out, out


def test_default_output_in_the_run_folder_is_checked_first(tiny_model, tmp_path):
    run = _fake_run(tmp_path / "run", tiny_model, {"task": "addition", "max_new_tokens": 8})
    (run / "eval-addition-step000003-k1.json").mkdir()  # the default path, taken by a folder
    p = _eval(["--model", str(run), "--n", "4"])
    line = _one_error_line(p)
    assert "eval-addition-step000003-k1.json" in line, line
    assert "pass@1" not in p.stdout, p.stdout


def test_default_output_under_runs_eval_is_checked_first(tiny_model, tmp_path):
    (tmp_path / "runs").write_text("a file where runs/ should be")
    p = _eval(["--model", str(tiny_model), "--n", "4"], cwd=tmp_path)
    line = _one_error_line(p)
    assert "runs" in line and "not a folder" in line, line
    assert "pass@1" not in p.stdout, p.stdout


# ----------------------------------------------------------------------------- the run's task
def test_run_trained_on_jsonl_is_evaluated_on_its_own_task(tiny_model, tmp_path):
    questions = [{"question": f"What is {i} times 3?", "answer": str(3 * i)} for i in range(60)]
    questions.append({"question": _long_heldout_question(), "answer": "700"})
    cfg = {"task": "jsonl", "template": "r1zero_think", "max_new_tokens": 12,
           "format_weight": 0.25, "accuracy_weight": 2.0, "stop": "</answer>"}  # fmt: skip
    run = _fake_run(tmp_path / "run", tiny_model, cfg, questions)
    p = _eval(["--model", str(run), "--n", "500"])
    assert p.returncode == 0, p.stderr
    settings = next((x for x in p.stdout.splitlines() if x.startswith("settings:")), "")
    for part in ("task jsonl (run)", "template r1zero_think (run)", "max new tokens 12 (run)",
                 "format weight 0.25 (run)", "accuracy weight 2.0 (run)"):  # fmt: skip
        assert part in settings, f"settings line lacks {part!r}: {settings!r}"
    res_file = run / "eval-jsonl-step000003-k1.json"
    assert res_file.is_file(), f"results not written where expected: {sorted(run.iterdir())}"
    res = json.loads(res_file.read_text())
    assert (res["task"], res["template"], res["max_new_tokens"]) == ("jsonl", "r1zero_think", 12)
    assert (res["format_weight"], res["accuracy_weight"]) == (0.25, 2.0)
    # The held-out split of 61 questions is ~6 of them; the over-long one is skipped.
    assert res["skipped_over_context"] == 1 and 1 <= res["n"] < 50, res
    assert f"held-out: {res['n']} questions" in p.stdout, p.stdout
    assert f"skipped 1 of {res['n'] + 1} held-out questions" in p.stderr, p.stderr
    assert "warning: only" in p.stderr, f"no warning for {res['n']} questions: {p.stderr}"
    assert "\r" not in p.stderr, "progress should be whole lines, not a \\r counter"
    # A flag overrides the run: addition, and the run's jsonl file is not passed to it.
    p = _eval(["--model", str(run), "--task", "addition", "--n", "3", "--json",
               str(tmp_path / "add.json")])  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "task addition (flag)" in p.stdout and "task path" not in p.stdout, p.stdout
    assert json.loads((tmp_path / "add.json").read_text())["task"] == "addition"


def test_no_question_fits_the_context(tiny_model, tmp_path):
    p = _eval(["--model", str(tiny_model), "--n", "4", "--max-new-tokens", str(CONTEXT - 6),
               "--json", str(tmp_path / "r.json")])  # fmt: skip
    line = _one_error_line(p)
    assert "no held-out question fits" in line and str(CONTEXT) in line, line
    assert "loading" not in p.stdout, "the weights were loaded before the context check"


# ----------------------------------------------------------------------------- bad files
def test_config_json_that_is_a_list_is_one_line(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "config.json").write_text("[1, 2]\n")
    line = _one_error_line(_eval(["--model", str(model), "--json", str(tmp_path / "r.json")]))
    assert str(model / "config.json") in line and "JSON object" in line, line


def test_run_config_that_is_not_json_is_one_line(tiny_model, tmp_path):
    run = _fake_run(tmp_path / "run", tiny_model, {})
    (run / "train_config.json").write_text("{not json")
    line = _one_error_line(_eval(["--model", str(run)]))
    assert "train_config.json" in line, line


def test_unreadable_model_file_is_one_line(tiny_model, tmp_path, capsys, monkeypatch):
    # Root reads any file, so the permission error is injected where the tokenizer is read.
    from model import Tokenizer

    def denied(path):
        raise PermissionError(13, "Permission denied", str(Path(path) / "tokenizer.json"))

    monkeypatch.setattr(Tokenizer, "from_dir", denied)
    code, _, err = _main_in_process(["--model", str(tiny_model), "--json",
                                     str(tmp_path / "r.json")], capsys)  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, f"exit {code}, stderr {err!r}"
    assert "Permission denied" in lines[0] and "tokenizer.json" in lines[0], lines[0]


# ----------------------------------------------------------------------------- output
def test_stdout_is_line_buffered_when_piped(tmp_path):
    # os._exit skips the final flush: only lines already written come through.
    code = ("import os, eval as cli\n"
            "try:\n    cli.main(['--model', 'x', '--n', '0'])\n"
            "except SystemExit:\n    pass\n"
            "print('line written before a hard exit')\nos._exit(0)\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env=env)  # fmt: skip
    assert "line written before a hard exit" in p.stdout, (
        f"stdout is block-buffered when piped; got {p.stdout!r}"
    )


def test_builtin_base_is_evaluated_on_the_task_it_was_built_for(tiny_model, tmp_path, capsys,
                                                                  monkeypatch):  # fmt: skip
    """`--model demo-countdown` without --task: the base's own task (its manifest), not addition."""
    import grpo.bases

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    (base / "manifest.json").write_text(json.dumps({"build": {"task": "countdown"}}))
    cfg = json.loads((base / "config.json").read_text())  # room for a countdown prompt
    (base / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 2048}))
    monkeypatch.setattr(grpo.bases, "ensure_base", lambda name, log=print: base)
    out_json = tmp_path / "r.json"
    code, out, err = _main_in_process(
        ["--model", "demo-countdown", "--n", "2", "--max-new-tokens", "4", "--json",
         str(out_json)], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(out_json.read_text())["task"] == "countdown", out
    assert "task countdown (base)" in out, out


def test_countdown_run_is_evaluated_on_its_own_variant(tiny_model, tmp_path, capsys):
    """A run trained on a countdown variant is evaluated on that variant's held-out split."""
    run = _fake_run(tmp_path / "run", tiny_model, {"task": "countdown", "max_numbers": 3,
                                                   "max_number": 9, "max_target": 50})  # fmt: skip
    cfg = json.loads((run / "checkpoints/step_000003/config.json").read_text())
    (run / "checkpoints/step_000003/config.json").write_text(
        json.dumps({**cfg, "max_position_embeddings": 2048}))  # room for a countdown prompt
    out_json = tmp_path / "r.json"
    code, out, err = _main_in_process(["--model", str(run), "--n", "3", "--max-new-tokens", "4",
                                       "--json", str(out_json)], capsys)  # fmt: skip
    assert code == 0, err
    assert "max number 9 (run)" in out and "max target 50 (run)" in out, out
    result = json.loads(out_json.read_text())
    assert (result["max_numbers"], result["max_number"], result["max_target"]) == (3, 9, 50)
