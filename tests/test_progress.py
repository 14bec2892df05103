"""grpo.run.progress: quiet for short phases, throttled lines for long ones."""

from __future__ import annotations

from grpo.run import progress as progress_mod
from grpo.run.progress import Progress


def test_progress_throttles_and_closes(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: now[0])
    lines: list[str] = []
    p = Progress("eval", total=10, log=lines.append, every_s=5)
    for i in range(10):
        now[0] += 1.0
        p.update(i + 1)
    p.done()
    assert lines == ["eval 5/10 (5s, ~5s left)", "eval 10/10 (10s)"]


def test_progress_quiet_when_short(monkeypatch):
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: 0.0)
    lines: list[str] = []
    p = Progress("load", total=3, log=lines.append)
    for i in range(3):
        p.update(i + 1)
    p.done()
    assert lines == []
