"""python -m grpo.experiments.distill at toy size: every stage, the results' contract, reuse,
errors."""

import json
from pathlib import Path

import pytest

import grpo.experiments.distill as distill
from grpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
# The shipped untrained demo base as the teacher: sampled at temperature 1 it writes a
# correct scratchpad in about one completion in five, enough traces for a toy run.
TOY = ["--teacher", str(ROOT / "assets" / "demo-base"), "--questions", "16", "--k", "4",
       "--validation", "4", "--heldout", "4", "--max-new-tokens", "96"]  # fmt: skip


def _toy(mp: pytest.MonkeyPatch) -> None:
    plan = distill.Plan(
        "demo-student", questions=16, k=4, max_new_tokens=96,
        rl_flags=["--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--threads",
                  "1"],
        sft_flags=["--epochs", "1", "--batch-size", "4", "--threads", "1"],
        onpolicy_flags=["--steps", "2", "--batch-size", "4", "--threads", "1"],
        evals_per_stage=1,
    )  # fmt: skip
    mp.setitem(distill.PLANS, "addition", plan)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "d"
    with pytest.MonkeyPatch.context() as mp:
        _toy(mp)
        assert distill.main(["--out", str(out), *TOY, "--figure", str(out.parent / "f.png")]) == 0
    return out


def test_results_map_every_model_to_its_accuracy(done):
    results = json.loads((done / "results.json").read_text())
    assert set(results) == {"teacher", "student_base", "student_rl", "student_distilled",
                            "student_kd", "student_onpolicy", "student_distilled_rl"}  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in results.values())
    summary = json.loads((done / "summary.json").read_text())
    for name, m in summary["models"].items():
        assert m["accuracy"] == results[name] and m["questions"] == 4
        assert {"format_rate", "length", "seconds", "student_tokens_sampled",
                "student_tokens_trained", "teacher_tokens_sampled",
                "teacher_tokens_scored", "curve"} <= set(m)  # fmt: skip
    assert summary["models"]["student_rl"]["seconds"] > 0
    assert 0 < summary["distill_data"]["acceptance_rate"] <= 1
    assert (done.parent / "f.png").stat().st_size > 0


def test_each_arm_counts_the_compute_it_used(done):
    """The student's own tokens, and the teacher's, as each arm's recipe says."""
    m = json.loads((done / "summary.json").read_text())["models"]
    data = json.loads((done / "distill_data.json").read_text())
    assert m["student_base"]["student_tokens"] == 0
    rl = m["student_rl"]
    assert rl["student_tokens_sampled"] == rl["student_tokens_trained"] > 0  # mu = 1
    assert rl["teacher_tokens_sampled"] == rl["teacher_tokens_scored"] == 0
    for name in ("student_distilled", "student_kd"):  # trained on the teacher's traces
        assert m[name]["student_tokens_sampled"] == 0 < m[name]["student_tokens_trained"]
        assert m[name]["teacher_tokens_sampled"] == data["tokens_sampled"] > 0
    assert m["student_distilled"]["teacher_tokens_scored"] == 0
    assert m["student_kd"]["teacher_tokens_scored"] == m["student_kd"]["student_tokens_trained"]
    on = m["student_onpolicy"]
    assert on["student_tokens_sampled"] == on["student_tokens_trained"] == on[
        "teacher_tokens_scored"] > 0 and on["teacher_tokens_sampled"] == 0  # fmt: skip
    best = m["student_distilled_rl"]["from"]
    assert best in ("student_distilled", "student_kd", "student_onpolicy")
    assert m["student_distilled_rl"]["student_tokens"] > m[best]["student_tokens"]


def test_each_stage_reads_the_previous_ones_output(done):
    summary = json.loads((done / "summary.json").read_text())
    paths = summary["paths"]
    assert Path(paths["student_base"]).name == "demo-student-base"

    def started_from(run: str) -> str:
        return json.loads((done / run / "train_config.json").read_text())["model"]

    assert started_from("student_rl") == paths["student_base"]
    sft = json.loads((done / "student_distilled" / "sft_config.json").read_text())
    assert sft["model"] == paths["student_base"] and sft["data"] == str(done / "distill.jsonl")
    for name, beta, lmbda in (("student_kd", 0.0, 0.0), ("student_onpolicy", 1.0, 1.0)):
        cfg = json.loads((done / name / "sft_config.json").read_text())
        assert cfg["model"] == paths["student_base"] and cfg["teacher"] == paths["teacher"]
        assert (cfg["beta"], cfg["lmbda"]) == (beta, lmbda)
    on = json.loads((done / "student_onpolicy" / "sft_config.json").read_text())
    assert on["data"] == str(done / "prompts.jsonl")
    assert json.loads((done / "student_kd" / "sft_config.json").read_text())["data"] == str(
        done / "distill.jsonl")  # fmt: skip
    best = json.loads((done / "summary.json").read_text())["best_distilled"]
    assert started_from("student_distilled_rl") == paths[best]
    assert Path(paths["student_distilled"]).parent.parent == done / "student_distilled"


def test_the_distillation_data_is_the_teachers_correct_traces(done):
    task = get_task("addition")
    rows = [json.loads(x) for x in (done / "distill.jsonl").read_text().splitlines()]
    assert rows and len({r["pos"] for r in rows}) == len(rows)  # one per question
    from grpo.run.context import rl_example

    for r in rows:
        ex = rl_example(task, r["pos"])
        assert r["prompt"] == task.prompt(ex)
        s = task.score(r["completion"], ex)
        assert s["accuracy"] == 1.0 and s["format"] == 1.0


def test_a_second_run_reuses_every_stage(done, monkeypatch):
    _toy(monkeypatch)
    lines = []
    before = (done / "results.json").read_text()
    args = ["--out", str(done), *TOY, "--figure", str(done.parent / "f.png")]
    distill.run(distill.build_parser().parse_args(args), lines.append)
    said = "\n".join(lines)
    for stage in ("student_rl", "distillation data", "student_distilled", "student_kd",
                  "student_onpolicy", "student_distilled_rl"):  # fmt: skip
        assert f"=== {stage}: " in said and "reused" in said, stage
    assert "train_zero.py" not in said and "train_sft.py" not in said
    assert (done / "results.json").read_text() == before


def test_other_settings_in_the_same_folder_are_refused(done, capsys):
    assert distill.main(["--out", str(done), *TOY[:-2], "--max-new-tokens", "100"]) == 2
    err = capsys.readouterr().err
    assert "holds a comparison with other settings (max_new_tokens 96 -> 100)" in err
    assert distill.main(["--out", str(done), "--k", "0"]) == 2
    assert "--k must be >= 1" in capsys.readouterr().err


def test_a_missing_teacher_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "d"
    assert distill.main(["--out", str(out), "--teacher", str(tmp_path / "none")]) == 2
    assert "--teacher" in capsys.readouterr().err and not out.exists()


def test_a_corrupt_teacher_is_refused_before_any_training(tmp_path, monkeypatch, capsys):
    import shutil

    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    bad = tmp_path / "teacher"
    shutil.copytree(ROOT / "assets" / "demo-base", bad)
    with open(bad / "model.safetensors", "r+b") as f:
        f.truncate(100)
    out = tmp_path / "d"
    for flag in ("--teacher", "--student"):
        assert distill.main(["--out", str(out), flag, str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"python -m grpo.experiments.distill: error: {flag} {bad}: ")
        assert "corrupt or truncated" in err and len(err.splitlines()) == 1
        assert not out.exists()
    (tmp_path / "afile.txt").write_text("x")
    assert distill.main(["--out", str(tmp_path / "afile.txt" / "sub"), *TOY]) == 2
    assert "cannot create the folder" in capsys.readouterr().err


@pytest.mark.parametrize("rc", [143, 130, 2])
def test_a_stopped_or_failed_stage_gives_the_exit_code(tmp_path, monkeypatch, capsys, rc):
    """SIGTERM of a training stage (it checkpointed, exit 143) stops the comparison with
    143, Ctrl-C with 130; a stage that failed is a non-zero exit."""
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: rc)
    assert distill.main(["--out", str(tmp_path / "d"), *TOY]) == rc
    err = capsys.readouterr().err
    assert ("SIGTERM: stopped" in err) == (rc == 143) and ("SIGINT" in err) == (rc == 130)


def test_sigterm_outside_a_stage_exits_143(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import train_zero

    def killed(flags):
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not stop it")

    def unhandled(*_):  # the runner's guard: without distill's own handler, fail, not die
        raise AssertionError("SIGTERM reached the test's handler")

    monkeypatch.setattr(train_zero, "main", killed)
    old = signal.signal(signal.SIGTERM, unhandled)
    try:
        assert distill.main(["--out", str(tmp_path / "d"), *TOY]) == 143
    finally:
        signal.signal(signal.SIGTERM, old)
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "SIGTERM: stopped" in err


def test_a_student_of_another_vocabulary_is_refused_before_anything_is_written(tmp_path,
                                                                               capsys):  # fmt: skip
    out = tmp_path / "d"
    assert distill.main(["--out", str(out), "--task", "countdown", "--student",
                         "demo-student", "--figure", str(tmp_path / "f.png")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "--student demo-student and the teacher demo-countdown: " in err
    assert "one vocabulary" in err and len(err.splitlines()) == 1 and not out.exists()
