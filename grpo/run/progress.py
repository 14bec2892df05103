"""Progress lines for long phases: printed at most every few seconds, flushed.

    p = Progress("eval", total=500, log=print)
    for i in range(500):
        ...
        p.update(i + 1)          # "eval 212/500 (6s, ~8s left)" at most every 5 s
    p.done()                     # the final line, if anything was printed

A phase that ends within `every_s` seconds prints nothing: short runs stay
quiet, and a phase over ~10 s always shows that it is alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(
        self, label: str, total: float, log: Callable[[str], None] = print,
        every_s: float = 5.0, unit: str = "",
    ) -> None:  # fmt: skip
        self.label, self.total, self.log, self.every_s, self.unit = label, total, log, every_s, unit
        self.start = self.last = time.perf_counter()
        self.printed: float | None = None  # the count last printed, if any

    def line(self, done: float) -> str:
        elapsed = time.perf_counter() - self.start
        left = ""
        if 0 < done < self.total:
            left = f", ~{elapsed / done * (self.total - done):.0f}s left"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label} {done:g}/{self.total:g}{unit} ({elapsed:.0f}s{left})"

    def update(self, done: float) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            self.printed = done
            self.log(self.line(done))

    def done(self) -> None:
        """Print the closing line if progress was shown at all."""
        if self.printed is not None and self.printed != self.total:
            self.log(self.line(self.total))


def line_buffered_output() -> None:
    """Flush stdout and stderr at every line, so that progress shows as it happens when
    the output is piped (`| tee log`, nohup, CI logs) instead of arriving in 8 KB blocks."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
