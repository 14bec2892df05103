"""grpo/experiments/common.py: the rows file of the one-command experiments, and their tables."""

from grpo.experiments.common import markdown_table, read_rows
from grpo.run.runfolder import JsonlWriter


def test_rows_file_drops_a_torn_line_and_what_follows(tmp_path):
    f = tmp_path / "evals.jsonl"
    w = JsonlWriter(f)
    w.write({"model": "a", "x": 1})
    w.write({"model": "b", "x": 2})
    with open(f, "a") as h:  # a kill in the middle of a line, then a later row
        h.write('{"model": "c", "x"\n{"model": "d", "x": 4}\n')
    rows = read_rows(f, "model")
    assert list(rows) == ["a", "b"] and rows["b"]["x"] == 2
    # The file itself now holds the two whole rows only, and no temporary is left.
    assert f.read_text() == '{"model": "a", "x": 1}\n{"model": "b", "x": 2}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evals.jsonl"]
    w.write({"model": "c", "x": 3})
    assert list(read_rows(f, lambda r: (r["model"], r["x"]))) == [("a", 1), ("b", 2), ("c", 3)]
    assert read_rows(tmp_path / "none.jsonl", "model") == {}


def test_markdown_table():
    assert markdown_table(["a", "b c"], [["1", "2"], ["x", "-"]]) == [
        "| a | b c |", "|---|---|", "| 1 | 2 |", "| x | - |"]  # fmt: skip
