"""The stall watchdog: a task that shows no progress for `stall_timeout` seconds is cancelled.

Progress is a model reply or command output (each streamed chunk), and the start of
each new wait (a request sent, a command started). The agent loop, the LLM client and
the sandboxes report it through `waiting_on` and `touch`, which find the task's
`Activity` in a context variable: `watched` sets it for the one task coroutine it runs
(and the tasks that coroutine starts), so concurrent tasks of one run each have their
own, and code outside a watched task (induction, tests) reports to nobody.

A per-command or per-call timeout bounds one thing; the watchdog is the backstop for
whatever hangs longer (a command_timeout above it, a model call that never returns, a
daemon that stops answering). Waits with a bound of their own that may legitimately
exceed it (grading, under `[eval] timeout`) are `unwatched`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from awm_tui.engine.outcomes import ErrorKind, InfraError

T = TypeVar("T")

CLEANUP_S = 60.0
"""How long a stalled task may take to unwind (remove its container) after it is cancelled."""

COMMAND_SHOWN = 60
"""Characters of a command quoted in the stall message."""


class Stalled(InfraError):
    """The task made no progress for `stall_timeout` seconds and was cancelled."""

    kind = ErrorKind.STALLED


class Activity:
    """When one task last made progress, and what it waits on now (innermost wait last)."""

    __slots__ = ("last", "waits", "unwatched")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.waits: list[str] = []
        self.unwatched = 0

    def touch(self) -> None:
        self.last = time.monotonic()

    @property
    def waiting_on(self) -> str:
        return self.waits[-1] if self.waits else "nothing in particular (between steps)"


_current: contextvars.ContextVar[Activity | None] = contextvars.ContextVar("awm_activity", default=None)


def touch() -> None:
    """Progress: a reply or a chunk of output arrived."""
    activity = _current.get()
    if activity is not None:
        activity.last = time.monotonic()


@contextmanager
def waiting_on(what: str) -> Iterator[None]:
    """The task waits on `what` ("the model (POST …)", "command `…`"); its start and its
    end are progress, what happens in between must be (chunks) or it stalls."""
    activity = _current.get()
    if activity is None:
        yield
        return
    activity.touch()
    activity.waits.append(what)
    try:
        yield
    finally:
        activity.waits.pop()
        activity.touch()


@contextmanager
def unwatched(what: str) -> Iterator[None]:
    """A wait with its own, longer bound: no stall is counted until it ends."""
    activity = _current.get()
    if activity is None:
        yield
        return
    activity.unwatched += 1
    try:
        with waiting_on(what):
            yield
    finally:
        activity.unwatched -= 1


def command_label(command: str) -> str:
    """`sleep 9999` as the stall message quotes it: first line, at most COMMAND_SHOWN chars."""
    lines = command.strip().splitlines() or [""]
    shown = lines[0][:COMMAND_SHOWN]
    more = len(lines) > 1 or len(lines[0]) > COMMAND_SHOWN
    return f"command `{shown}{' …' if more else ''}`"


async def watched(coro: Coroutine[Any, Any, T], stall_timeout: float, *, name: str = "task") -> T:
    """Run `coro` as its own task; cancel it and raise `Stalled` after `stall_timeout`
    seconds without progress, once it has unwound (its sandbox removed) or after CLEANUP_S.
    Cancelling the caller cancels the task too, and waits for it likewise."""
    activity = Activity()
    context = contextvars.copy_context()
    context.run(_current.set, activity)
    task = asyncio.create_task(coro, name=name, context=context)
    try:
        while True:
            idle = time.monotonic() - activity.last
            left = stall_timeout if activity.unwatched else stall_timeout - idle
            if left <= 0:
                break
            await asyncio.wait([task], timeout=left)
            if task.done():
                return task.result()
    except asyncio.CancelledError:
        await _unwind(task)
        raise
    message = f"stalled {stall_timeout:g} s waiting on {activity.waiting_on}"
    await _unwind(task)
    if task.done() and not task.cancelled() and task.exception() is None:
        return task.result()  # it finished in the very moment it was cancelled
    raise Stalled(message)


async def _unwind(task: asyncio.Task[Any]) -> None:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=CLEANUP_S)
    if done and not task.cancelled():
        task.exception()  # retrieved: an error while unwinding is not the story here
