"""Who made a container: the run's output directory, host and process.

A start-up sweep removes containers a killed process left behind. It must never
touch a live process's containers — two `--parallel` batches both name their runs
`run_1..N` — so each container carries its owner, and a pid alone is not enough
(pids are reused): the process is named by its pid and its start time since boot.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

OWNER_DIR = "awm-tui.owner.dir"
OWNER_HOST = "awm-tui.owner.host"
OWNER_PID = "awm-tui.owner.pid"
OWNER_STARTED = "awm-tui.owner.started"


def process_started(pid: int) -> str | None:
    """`<boot id>:<start ticks>` of a live process, "" when /proc cannot tell, None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "" if process_exists(pid) else None
    # The command name (field 2) may hold spaces and ')'; field 22 (starttime) counts
    # from the field after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{_boot_id()}:{fields[19]}" if len(fields) > 19 else ""


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@dataclass(frozen=True)
class Owner:
    output_dir: str
    host: str
    pid: int
    started: str
    """See `process_started`; "" where /proc is missing (then the pid alone decides)."""

    @classmethod
    def this_process(cls, output_dir: str | os.PathLike | None) -> Owner:
        resolved = os.path.realpath(output_dir) if output_dir else ""
        pid = os.getpid()
        return cls(resolved, socket.gethostname(), pid, _started_once(pid))

    def labels(self) -> dict[str, str]:
        return {OWNER_DIR: self.output_dir, OWNER_HOST: self.host,
                OWNER_PID: str(self.pid), OWNER_STARTED: self.started}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Owner | None:
        """None for a container made before owners were recorded (or not by awm-tui)."""
        labels = labels or {}
        pid = labels.get(OWNER_PID, "")
        if not pid.isdigit() or OWNER_HOST not in labels:
            return None
        return cls(labels.get(OWNER_DIR, ""), labels[OWNER_HOST], int(pid), labels.get(OWNER_STARTED, ""))

    def gone(self) -> bool:
        """True only when this host's process is certainly not running any more.

        Blocking (reads /proc): call it in a thread. Another host's process cannot be
        checked from here, so it counts as alive."""
        if self.host != socket.gethostname():
            return False
        now = process_started(self.pid)
        if now is None:
            return True
        return bool(self.started and now and now != self.started)  # the pid was reused


@cache
def _started_once(pid: int) -> str:
    return process_started(pid) or ""
