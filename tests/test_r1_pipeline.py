"""python -m grpo.experiments.r1_pipeline at toy size: every stage reads the previous one's
output."""

import json
from pathlib import Path

import pytest

import grpo.experiments.r1_pipeline as r1
from grpo.tasks import get_task
from grpo.tasks.readability import readable

ROOT = Path(__file__).resolve().parents[1]
# The untrained demo base stands in for R1-Zero: sampled at temperature 1 it writes a
# correct, readable scratchpad often enough for a toy run.
TOY = ["--zero", str(ROOT / "assets" / "demo-base"), "--cold-questions", "16", "--questions",
       "16", "--non-reasoning", "4", "--heldout", "3", "--max-new-tokens", "96"]  # fmt: skip


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("r1") / "r1"
    tiny_rl = ["--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--eval-n", "2",
               "--threads", "1"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(r1, "RL_FLAGS", tiny_rl)
        mp.setattr(r1, "FINAL_RL_FLAGS", [])
        mp.setattr(r1, "COLD_SFT_FLAGS", ["--epochs", "1", "--batch-size", "4", "--eval-n", "0"])
        mp.setattr(r1, "SFT_FLAGS", ["--epochs", "1", "--batch-size", "4", "--eval-n", "0"])
        assert r1.main(["--out", str(out), *TOY]) == 0
    return out


def test_each_stage_reads_the_previous_stage_checkpoint(done):
    res = json.loads((done / "results.json").read_text())
    paths = res["paths"]

    def config(run, name):
        return json.loads((done / run / name).read_text())

    assert config("cold_start", "sft_config.json")["model"] == paths["base"]
    assert config("cold_start", "sft_config.json")["data"] == str(done / "cold_start.jsonl")
    rl = config("reasoning_rl", "train_config.json")
    assert rl["model"] == paths["cold_start"] and rl["readability_weight"] == 0.5
    assert config("sft", "sft_config.json")["model"] == paths["base"]  # SFT from the BASE
    assert config("sft", "sft_config.json")["data"] == str(done / "sft_mix.jsonl")
    assert config("final_rl", "train_config.json")["model"] == paths["sft"]
    for later, earlier in (("cold_start", "cold_start"), ("reasoning_rl", "reasoning_rl"),
                           ("sft", "sft"), ("final_rl", "final_rl")):  # fmt: skip
        assert Path(paths[later]).parent.parent == done / earlier
    rows = [json.loads(x) for x in (done / "reasoning_rl" / "metrics.jsonl").read_text().split(
        "\n") if x]  # fmt: skip
    assert all("readable_rate" in r for r in rows if "reward" in r)


def test_the_data_is_correct_and_readable_plus_non_reasoning_documents(done):
    task = get_task("addition")
    from grpo.run.context import rl_example

    mix = [json.loads(x) for x in (done / "sft_mix.jsonl").read_text().splitlines()]
    traces = [r for r in mix if r.get("kind") != "non_reasoning"]
    other = [r for r in mix if r.get("kind") == "non_reasoning"]
    assert traces and len(other) == 4
    assert all(r["pos"] >= 16 for r in traces)  # new questions, not the cold start's
    for r in traces:
        ex = rl_example(task, r["pos"])
        assert task.score(r["completion"], ex)["accuracy"] == 1.0
        assert readable(task, r["completion"], ex)
    assert other[0]["prompt"].startswith("What is ") and "Column by column" in other[0][
        "completion"]  # fmt: skip


def test_results_table_has_every_stage(done):
    res = json.loads((done / "results.json").read_text())
    assert set(res["models"]) == set(r1.MODELS)
    for m in res["models"].values():
        assert {"greedy_accuracy", "greedy_readable", "sampled_accuracy", "sampled_readable",
                "sampled_right_unreadable", "format_rate", "length"} <= set(m)  # fmt: skip
    assert r1.main(["--out", str(done), *TOY[:-2], "--max-new-tokens", "100"]) == 2


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_readability_weight_is_refused(tmp_path, monkeypatch, capsys, value):
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    out = tmp_path / "r1"
    with pytest.raises(SystemExit) as e:
        r1.main(["--out", str(out), f"--readability-weight={value}"])
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m grpo.experiments.r1_pipeline: error: argument "
                   f"--readability-weight: must be a finite number, got '{value}' "
                   f"(see --help)")  # fmt: skip


def test_bad_paths_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: pytest.fail("training started"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile.txt").write_text("x")
    for flags, message in [
        (["--out", ""], "--out is empty"),
        (["--out", "afile.txt/sub"], "--out afile.txt/sub: cannot create the folder"),
        (["--out", "r1", "--zero", "none"], "--zero none: no such folder"),
        (["--out", "r1", "--max-new-tokens", "1000"], "exceeds the model's context"),
    ]:  # fmt: skip
        assert r1.main(flags) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]


def test_sigterm_of_a_stage_exits_143(tmp_path, monkeypatch, capsys):
    import train_zero

    monkeypatch.setattr(train_zero, "main", lambda flags: 143)
    assert r1.main(["--out", str(tmp_path / "r1")]) == 143
    assert "SIGTERM: stopped" in capsys.readouterr().err
