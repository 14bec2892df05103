"""python -m grpo.experiments.aggregation_lesson: bad arguments are refused in one line,
before any run."""

import pytest

from grpo.experiments import aggregation_lesson as al


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--steps", "abc"], "invalid int value"),
        (["--out", ""], "--out must name a folder"),
        (["--figure", "x.jpg"], "give a .png file"),
        (["--figure", "."], "give a .png file"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_one_line(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        al.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not any(tmp_path.iterdir()), "nothing may be written before the runs"


def test_an_unwritable_figure_is_refused_before_the_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit) as e:
        al.main(["--figure", str(tmp_path / "afile" / "f.png")])
    assert e.value.code == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
