"""Crash-safe JSON state files.

A run may be killed at any moment (Ctrl-C, OOM, a closed terminal); the
user's `memory.json`, `buffer.json` and `checkpoint.json` must then hold
either the old or the new content, never half of one.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

T = TypeVar("T")


class StateError(Exception):
    """A state file is unreadable; the message is one line naming the file."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


FAULT_ENV = "AWM_TUI_KILL_AT_WRITE"
"""Test hook for the fault-injection test: `N` SIGKILLs the process at its Nth state
write (a rename or a journal append, counted process-wide); `count:PATH` appends one
line per write to PATH instead. Unset (always, outside that test), it costs a lookup."""
_fault_lock = threading.Lock()
_fault_seen = 0


def fault_point(label: str, before_kill: Callable[[], object] | None = None) -> None:
    global _fault_seen
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    with _fault_lock:
        _fault_seen += 1
        seen = _fault_seen
    if spec.startswith("count:"):
        with open(spec[6:], "a", encoding="utf-8") as fh:
            fh.write(f"{seen} {label}\n")
    elif seen == int(spec):
        if before_kill is not None:
            before_kill()
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems/platforms refuse to open directories
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Temp file in the same dir, write, flush, fsync, `os.replace`, fsync dir."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"rename {path.name}")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Serialise first (a bad value never touches the file), then write atomically."""
    write_text_atomic(path, dump_json(data))


def replace_files(files: Sequence[tuple[Path, str]], *, durable: bool) -> None:
    """Replace several files, each atomically (temp file, rename), in the given order.

    Durable: each temp file is fsynced before its rename and each folder once after
    them (a fsync costs about a millisecond here and they do not overlap). Not
    durable: the renames alone, which a killed process cannot tear (the page cache
    outlives it); for files whose content a durable record already holds.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, text in files:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
        for tmp, path in temps:
            fault_point(f"rename {path.name}")
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    if durable:
        for folder in dict.fromkeys(path.parent for path, _ in files):
            _fsync_dir(folder)


def dump_json(data: Any, *, pretty: bool = True) -> str:
    """Indented JSON for files people read; compact for large machine-read ones
    (json.dumps with an indent falls back to the pure-Python encoder)."""
    return json.dumps(data, indent=2 if pretty else None, ensure_ascii=False) + "\n"


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The parsed file, `default` when it does not exist; corrupt → `StateError`.

    Never discards a corrupt file silently: the caller decides, e.g. with
    `move_aside`, so the user's data stays recoverable.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except UnicodeDecodeError:
        raise StateError(f"{path}: not UTF-8 text; move it aside or fix it", path) from None
    except OSError as exc:
        raise StateError(f"{path}: cannot read ({exc.strerror})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{path}: corrupt JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "move it aside or fix it", path) from None


def read_validated(path: str | os.PathLike, validate: Callable[[Any], T], *, what: str,
                   default: Callable[[], T], fix: str = "move it aside or fix it") -> T:
    """The one load-and-validate of a state file: `default()` when it does not exist,
    else `validate(parsed JSON)`; any problem is a one-line `StateError` naming the
    file, the place in it and the fix."""
    path = Path(path)
    data = read_json(path, None)
    if data is None:
        return default()
    try:
        return validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "file"
        raise StateError(f"{path}: invalid {what} at {loc}: {err['msg']}; {fix}", path) from None


def move_aside(path: str | os.PathLike) -> Path:
    """Rename a bad state file to `<name>.corrupt-<ts>` and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    _fsync_dir(path.parent)
    return target


async def awrite_json_atomic(path: str | os.PathLike, data: Any) -> None:
    # Serialise on the loop: `data` may be mutated by the caller right after.
    await asyncio.to_thread(write_text_atomic, path, dump_json(data))


async def aread_json(path: str | os.PathLike, default: Any = None) -> Any:
    return await asyncio.to_thread(read_json, path, default)
