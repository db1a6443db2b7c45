"""Shared by both sandboxes: bounded output, shielded cleanup, timeout detection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

KILL_AFTER_S = 5.0
"""Seconds `timeout -k` waits after SIGTERM before SIGKILL."""

CLIENT_GRACE_S = 10.0
"""Extra seconds the client waits beyond the in-sandbox limit before giving up."""

READ_CHUNK = 64 * 1024

READ_GRACE_S = 2.0
"""How long output is still read after the command exited (Docker waits as long)."""

# Tasks that finish cleaning up after their caller was cancelled; kept here so
# they are not garbage-collected half-way.
_cleanups: set[asyncio.Future[object]] = set()


async def run_shielded(coro: Awaitable[object]) -> None:
    """Run a cleanup to its end even when the awaiting task is cancelled."""
    task = asyncio.ensure_future(coro)
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)
    await asyncio.shield(task)


class BoundedOutput:
    """Keeps at most `limit` bytes of a stream: its first three quarters and last quarter.

    The end of a command's output (a test summary, the final error) is often
    what matters most, so the tail is kept too; a marker line says how many
    bytes were dropped in between.
    """

    def __init__(self, limit: int) -> None:
        limit = max(0, limit)
        self._tail_limit = limit // 4
        self._head_limit = limit - self._tail_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]
            self.dropped += excess

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} bytes of output dropped ...]\n{tail}"


def is_timeout(exit_code: int, duration_s: float, timeout_s: float) -> bool:
    """`timeout` exits 124 (TERM) or 137 (KILL); only count it once the limit has passed."""
    return exit_code in (124, 137) and duration_s >= timeout_s * 0.98


def slug(text: str) -> str:
    """A short name fragment safe for file and container names."""
    kept = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip(".-_")
    return kept[:40] or "x"
