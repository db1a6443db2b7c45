"""Stopping a batch from outside: Ctrl-C, `kill`, a dropped SSH session.

- SIGINT or SIGTERM: stop cleanly. In-flight tasks are cancelled, their
  containers removed and checkpoints written (`fleet.stop_all()`), then the
  batch exits 130. Rerunning the same command resumes from the checkpoints.
- A second SIGINT or SIGTERM while stopping: exit at once (`os._exit(130)`).
  What was checkpointed stays; the task in flight is redone on the rerun, and
  containers left behind are swept when the run next starts.
- SIGHUP (the terminal or SSH session went away): treated like SIGTERM, a
  clean stop with every checkpoint written. Carrying on without a terminal
  would write to a dead tty and could not be stopped by Ctrl-C any more; a
  clean stop loses nothing because the rerun resumes. To survive a drop, run
  the batch under tmux/screen or `nohup` (which ignores SIGHUP before we start:
  an ignored SIGHUP is left ignored). A repeated SIGHUP never forces.
- SIGUSR1: print a full status of every run (tasks in flight, their step, the
  last call's latency) and carry on (`StatusSignal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Self

from awm_tui.exit_codes import EXIT_INTERRUPTED
FORCING = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """`with StopSignals(loop, on_first) as stop:`; `stop.requested` is an asyncio.Event."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notify: Callable[[str], None]) -> None:
        self.loop, self.notify = loop, notify
        self.requested = asyncio.Event()
        self.signal_name: str | None = None
        self._installed: list[int] = []

    def __enter__(self) -> Self:
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is None:
                continue
            if sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started under nohup: the user asked to outlive the terminal
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(sig, self._received, sig)
                self._installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self._installed:
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(sig)
        self._installed.clear()

    def _received(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self.requested.is_set():
            if sig in FORCING:
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"awm-tui: {name} again: exiting now without waiting for the runs\n")
                    sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            return
        self.signal_name = name
        self.requested.set()
        again = " (press Ctrl-C again to exit at once)" if sig == signal.SIGINT else ""
        self.notify(f"{name} received: stopping every run cleanly, writing checkpoints{again}")


class StatusSignal:
    """`with StatusSignal(loop, report):` SIGUSR1 calls `report()` on the loop; the batch goes on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, report: Callable[[], None]) -> None:
        self.loop, self.report = loop, report
        self._installed = False

    def __enter__(self) -> Self:
        sig = getattr(signal, "SIGUSR1", None)
        if sig is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(sig, self.report)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            with contextlib.suppress(Exception):
                self.loop.remove_signal_handler(signal.SIGUSR1)
            self._installed = False
