"""SIGTERM as Ctrl-C: a terminated run unwinds through the atomic writers and leaves no staging."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Terminated(KeyboardInterrupt):
    """A KeyboardInterrupt caused by signal `signum` (SIGTERM), not by Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    """Signal handler: unwind like Ctrl-C, so every `finally` (staging clean-up) runs."""
    raise Terminated(signum)


def sigterm_as_interrupt() -> None:
    """Make SIGTERM raise `Terminated` (a KeyboardInterrupt) in the main thread.

    Idempotent, and a no-op outside the main thread (where handlers cannot be installed).
    Timeouts, `kill`, `docker stop` and cluster schedulers send SIGTERM; by default it ends the
    process at once, skipping every `finally`, so staging folders would stay behind.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
