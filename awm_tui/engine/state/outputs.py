"""A run's output directory: its lock, event log and predictions (paths: layout.py)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .atomic import StateError, read_json
from .layout import OutputLayout

# flock conflicts between two fds of one process on Linux, but not on every
# platform/filesystem, and the registry also lets us name the holder reliably.
_HELD: dict[str, dict[str, Any]] = {}
_HELD_GUARD = threading.Lock()


class OutputDirLocked(RuntimeError):
    """The run cannot take the output directory: another run (this process or
    another) is using it, or (`OutputDirUnusable`) it cannot be made."""


class OutputDirUnusable(OutputDirLocked):
    """The output directory cannot be created or used (a file is in its way, …)."""


def output_dir_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be a run's output directory (one line, with the fix), or None.

    Creates nothing: where the directory does not exist yet, a probe directory is
    made and removed in its nearest existing parent. Blocking: call it in a thread
    on the event loop."""
    out = Path(path).expanduser().absolute()
    for candidate in (out, out / "trajectories"):
        if candidate.exists() and not candidate.is_dir():
            return f"{candidate} is a file, not a directory; move it aside or choose another output directory"
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {out} cannot be created; choose another output directory"
    try:
        probe = tempfile.mkdtemp(prefix=".awm-tui-probe-", dir=parent)
    except OSError as exc:
        verb = "write to" if parent == out else f"create {out} under"
        return f"cannot {verb} {parent} ({exc.strerror or exc}); choose another output directory"
    os.rmdir(probe)
    return None


class OutputDir:
    """The lock on an output directory and its event log; creating one touches nothing."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.layout = OutputLayout.of(path)
        self.path = self.layout.path
        self._lock_fd: int | None = None
        self._key = os.path.realpath(self.path)

    # -- lock ---------------------------------------------------------------

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def lock(self, run_name: str) -> None:
        """Take the directory for `run_name`, or raise `OutputDirLocked`."""
        if self._lock_fd is not None:
            return
        try:
            self.layout.trajectories.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = output_dir_problem(self.path)
            raise OutputDirUnusable(problem or f"cannot create output directory {self.path} "
                                               f"({exc.strerror or exc})") from None
        with _HELD_GUARD:
            if self._key in _HELD:
                raise self._refusal(_HELD[self._key])
            # No O_TRUNC: the holder's details must survive our failed attempt.
            fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refusal(self._read_holder()) from None
            info = {"pid": os.getpid(), "host": socket.gethostname(), "run": run_name,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self._lock_fd = fd
            _HELD[self._key] = info
        self._sweep_temp_files()

    def _sweep_temp_files(self) -> None:
        # Left by a run killed mid-write (see atomic.py); safe to drop now we hold the lock.
        for sub in (self.path, self.layout.trajectories):
            for tmp in sub.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    async def alock(self, run_name: str) -> None:
        await asyncio.to_thread(self.lock, run_name)

    def unlock(self) -> None:
        """Release the directory; safe to call twice. The lock file stays (its
        inode is what others flock; deleting it would race)."""
        with _HELD_GUARD:
            fd, self._lock_fd = self._lock_fd, None
            if fd is None:
                return
            _HELD.pop(self._key, None)
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing drops the flock

    def _read_holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.layout.lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # the holder may not have written its details yet

    def _refusal(self, info: dict[str, Any]) -> OutputDirLocked:
        run = info.get("run", "?")
        pid = info.get("pid", "?")
        since = info.get("started", "?")
        host = info.get("host")
        where = f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        return OutputDirLocked(
            f"output directory {self.path} is in use by run {run!r} ({where} since {since}); "
            "choose another --output-dir or stop that run")

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def event_log(self) -> EventLog:
        return EventLog(self.layout.events)


class _SharedWriter:
    """One daemon thread that drains every open event log when it is due."""

    TICK_S = 0.05

    def __init__(self) -> None:
        self._logs: set[EventLog] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, log: EventLog) -> None:
        with self._lock:
            self._logs.add(log)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="awm-event-log", daemon=True)
                self._thread.start()

    def unregister(self, log: EventLog) -> None:
        with self._lock:
            self._logs.discard(log)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            with self._lock:
                logs = list(self._logs)
            now = time.monotonic()
            for log in logs:
                log._drain_if_due(now)  # records its own failures: one broken log silences no other


_WRITER = _SharedWriter()


class EventLog:
    """Appends events to `events.jsonl` from the loop without blocking it.

    `append` only queues the event; one writer thread shared by every log of
    the process serialises and writes the queue every `interval` seconds, and
    `close` writes the rest. (A thread per run meant 100 threads for 100 runs,
    and one started and joined per run in a long session.) No per-event fsync:
    a crash may lose the last half second of events, never the state files.
    """

    def __init__(self, path: str | os.PathLike, interval: float = 0.5) -> None:
        self.path = Path(path)
        self.interval = interval
        self._pending: list[Any] = []
        self._guard = threading.Lock()
        self._write_lock = threading.Lock()  # the shared writer and close() may race
        self._closed = False
        self._due = time.monotonic() + interval
        self.failures = 0
        """Writes that failed (a full disk, an unserialisable event); the run reports them."""
        self.dropped = 0
        """Events lost to those failures."""
        self.last_failure = ""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        _WRITER.register(self)

    def append(self, event: Any) -> None:
        """Queue one event: a dict or an `Event` (anything with `to_dict`).

        Serialising happens in the writer thread: events are immutable, so the
        loop only pays for a list append."""
        if self._closed:
            raise RuntimeError(f"{self.path}: event log is closed")
        if isinstance(event, dict):
            event = dict(event)  # the caller may mutate its dict later
        with self._guard:
            self._pending.append(event)

    def _drain(self) -> None:
        with self._write_lock:
            with self._guard:
                events, self._pending = self._pending, []
            if events and not self._file.closed:
                try:
                    lines = [json.dumps(e.to_dict() if hasattr(e, "to_dict") else e,
                                        ensure_ascii=False, default=str) for e in events]
                    self._file.write("\n".join(lines) + "\n")
                    self._file.flush()
                except Exception as exc:  # noqa: BLE001 - counted here, reported by the run
                    self.failures += 1
                    self.dropped += len(events)
                    self.last_failure = f"{type(exc).__name__}: {exc}"

    def _drain_if_due(self, now: float) -> None:
        if now >= self._due:
            self._due = now + self.interval
            self._drain()

    def flush(self) -> None:
        """Write out everything queued so far (blocking; tests and shutdown)."""
        if not self._closed:
            self._drain()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _WRITER.unregister(self)
        try:
            self._drain()
        finally:
            with self._write_lock:
                try:
                    self._file.close()
                except OSError as exc:  # what a failed flush left buffered is lost: counted
                    self.failures += 1
                    self.last_failure = f"{type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PredictionsFile:
    """`preds.json`: ``{instance_id: {"instance_id", "model_name_or_path", "model_patch"}}``.

    The SWE-bench harness (`--predictions_path`) accepts this dict form as well
    as a list; a dict lets a re-run task replace its own entry. Tasks keep
    their first-seen order.
    """

    def __init__(self, entries: dict[str, dict] | None = None) -> None:
        self.entries: dict[str, dict] = entries or {}

    @classmethod
    def load(cls, path: str | os.PathLike) -> PredictionsFile:
        data = read_json(path, {})
        if isinstance(data, list) and all(isinstance(p, dict) and "instance_id" in p for p in data):
            data = {p["instance_id"]: p for p in data}  # accept the harness' list form too
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            # Not ours to overwrite: it may be the user's file under our name.
            raise StateError(f"{path}: expected SWE-bench predictions {{instance_id: {{...}}}}; move it aside",
                             Path(path))
        return cls(dict(data))

    def set(self, instance_id: str, model_name_or_path: str, model_patch: str) -> None:
        self.entries[instance_id] = {"instance_id": instance_id,
                                     "model_name_or_path": model_name_or_path,
                                     "model_patch": model_patch}

    def to_json(self) -> dict:
        """What `preds.json` holds."""
        return self.entries

    def __len__(self) -> int:
        return len(self.entries)
