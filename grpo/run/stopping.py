"""Stopping a training run on SIGINT or SIGTERM at a consistent point. No torch.

    stops = StopRequests()
    with stops.installed():                    # handlers set while the loop runs
        try:
            try:
                while ... and stops.signal is None:
                    with stops.abandonable("the rollout of step 3"):
                        ...                    # a signal here raises Abandon at once
                    ...                        # a signal here only sets stops.signal
            except Abandon:
                ...                            # nothing of the phase was applied
            if stops.signal is not None:
                raise stops.stopped_after(run_dir, step, checkpoint, abandoned)
        except StopNow:                        # a second signal: no save
            raise stops.stopped_at_once(run_dir, last_checkpoint) from None

The first signal is a request: inside an abandonable phase (a rollout or an
evaluation, which change nothing until they return) it raises `Abandon` at
once; anywhere else (an optimizer update) the handler only records it, and
the loop stops after the step. A second signal raises `StopNow`: stop at
once, without saving. Further signals are ignored. The caller (the trainer)
decides what to save; this module holds the mechanism and the messages.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager, suppress
from pathlib import Path


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run; the message says what was saved and how to go on."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


# BaseException, like KeyboardInterrupt: an `except Exception` on the way must not swallow them.
class Abandon(BaseException):
    """Raised by the signal handler inside a rollout or an evaluation: drop the phase."""


class StopNow(BaseException):
    """Raised by the signal handler on a second signal: stop without saving."""


class StopRequests:
    """The signal handler's state: which signal asked to stop, and where the run is."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet  # say nothing (a data-parallel rank other than 0)
        self.command = "python train_zero.py"  # how the messages say to resume
        self.signal: int | None = None  # the first signal received, if any
        self.now = False  # a second signal arrived
        self._abandonable = False  # inside a rollout or an evaluation: a signal abandons it
        self.phase = ""  # which one, for the message

    @contextmanager
    def installed(self):
        """SIGINT and SIGTERM request a stop (see the module docstring) inside this block."""
        self.signal, self.now = None, False
        if threading.current_thread() is not threading.main_thread():
            yield  # handlers can only be set from the main thread
            return
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.now:
            return  # a third signal: the run is already stopping without saving
        if self.signal is not None:
            self.now = True
            raise StopNow
        self.signal = signum
        if self._abandonable:
            self._abandonable = False
            raise Abandon
        if self.quiet:
            return
        # print() is not safe in a signal handler (the stream may be mid-write).
        name = signal.Signals(signum).name
        _write_now(f"\n{name}: stopping at the end of this step, then saving a checkpoint "
                   "(Ctrl-C again stops at once, without saving)\n")  # fmt: skip

    @contextmanager
    def abandonable(self, what: str):
        """A rollout or an evaluation: a stop request abandons it (nothing of it is applied)."""
        self.phase = what
        self._abandonable = True
        try:
            if self.signal is not None:  # asked before the phase began
                raise Abandon
            yield
        finally:
            self._abandonable = False

    def stopped_after(
        self, run_dir: Path, step: int, checkpoint: Path | None, abandoned: bool
    ) -> TrainingInterrupted:
        """The error for a stop after `step`, whose state is in `checkpoint` (step 0: none)."""
        sig = self.signal
        name = signal.Signals(sig).name
        resume = f"continue with: {self.command} --out {run_dir} --resume"
        if step == 0:
            return TrainingInterrupted(
                f"{name}: stopped before the first step; nothing to save ({resume}, which "
                "starts it again from step 0)", sig
            )  # fmt: skip
        redo = f" ({self.phase} was abandoned, to be redone on resume)" if abandoned else ""
        return TrainingInterrupted(
            f"{name}: stopped after step {step}; checkpoint {checkpoint}{redo}; {resume}", sig
        )

    def stopped_at_once(self, run_dir: Path, last: Path | None) -> TrainingInterrupted:
        """The error for a second signal: nothing saved; `last` is the newest checkpoint."""
        sig = self.signal
        since = f"its last checkpoint, {last}" if last else "step 0 (no checkpoint was saved)"
        return TrainingInterrupted(
            f"{signal.Signals(sig).name} again: stopped at once without saving; "
            f"{self.command} --out {run_dir} --resume continues from {since}", sig
        )


def _write_now(text: str) -> None:
    """Write to stdout from a signal handler: straight to the file descriptor, unbuffered."""
    with suppress(OSError):
        os.write(1, text.encode())
