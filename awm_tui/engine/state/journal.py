"""`journal.jsonl`: the one durable write per task, from which the state views are derived.

Each line is one JSON record; appending it and fsyncing is the commit point of
a task (or an induction). The views users read (memory.json, buffer.json,
checkpoint.json, preds.json) are rewritten after it, each atomically; a kill
between the append and the last rename leaves views that lag the journal, and
the next load replays the journal onto them (store.py). Records carry absolute
values (a workflow's use counts after the task, the whole memory after an
induction), so replaying a record a view already holds changes nothing.

Compaction (when a run starts on the directory, under its lock, and when the
journal grows past a few MB) makes the views durable and then replaces the
journal by one `base` line: what the views cannot hold (when
the last induction ran). A kill during it leaves the journal as it was: replayed
again, to the same result.

Kinds: `{"kind": "base", "induced_at": t | null}`,
`{"kind": "task", "result", "prediction", "experience" | null, "uses": {id: [uses, successes]}}`,
`{"kind": "induction", "at": t, "memory": {...} | null}` (null: it changed nothing).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import StateError, _fsync_dir, dump_json, fault_point, write_text_atomic


@dataclass(frozen=True)
class JournalContent:
    records: list[dict[str, Any]]
    """Every complete record, the `base` line first when there is one."""
    torn: bool = False
    """The last line was cut short by a kill (it never committed)."""
    exists: bool = True


def read_journal(path: Path) -> JournalContent:
    """The committed records; a torn last line is dropped, any other bad line refused."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalContent([], exists=False)
    except OSError as exc:
        raise StateError(f"{path}: cannot read ({exc.strerror})", path) from None
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as every commit does
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or "kind" not in record:
                raise ValueError("not a record")
        except ValueError:
            if number == len(lines) and not tail:
                return JournalContent(records, torn=True)  # cut short mid-line by a kill
            raise StateError(f"{path}: line {number} is not a journal record; move the file aside "
                             "(the state files then stand as they are)", path) from None
        records.append(record)
    return JournalContent(records, torn=bool(tail))


def append_record(path: Path, record: dict[str, Any]) -> int:
    """Append one record and fsync it: the commit point. Returns the bytes written."""
    data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # The fault test kills here with half the line written: a torn, uncommitted record.
        fault_point(f"append {record['kind']}", lambda: os.write(fd, data[: len(data) // 2]))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)
    return len(data)


def reset_journal(path: Path, induced_at: float | None) -> None:
    """Replace the journal by its `base` line (the views must be durable first)."""
    write_text_atomic(path, dump_json({"kind": "base", "induced_at": induced_at}, pretty=False))
