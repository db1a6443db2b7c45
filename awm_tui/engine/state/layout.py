"""Where a run's files live in its `--output-dir`: paths only, nothing touched.

Names are fixed (the users' scripts read them)::

    memory.json  buffer.json  checkpoint.json  preds.json   the state views users read
    journal.jsonl       the durable record they are derived from (see journal.py)
    events.jsonl        one engine event per line, appended
    trajectories/<instance_id>.json
    inductions/NNNN.json each LLM induction's prompt, reply and outcome
    report.json         outcomes in the SWE-bench harness's report schema, derived (report.py)
    summary.json        written by batch mode at the end
    .awm-tui.lock       held (flock) by the run using the directory

The engine writes through `store.py`; readers (the TUI, batch summaries) take
the same paths from here instead of spelling file names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".awm-tui.lock"


def _safe_name(instance_id: str) -> str:
    # Instance ids are filenames here; never let one escape trajectories/.
    return instance_id.replace("/", "__").replace("\\", "__").lstrip(".") or "_"


@dataclass(frozen=True)
class OutputLayout:
    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike) -> OutputLayout:
        return cls(Path(path).expanduser().absolute())

    @property
    def memory(self) -> Path:
        return self.path / "memory.json"

    @property
    def buffer(self) -> Path:
        return self.path / "buffer.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.json"

    @property
    def preds(self) -> Path:
        return self.path / "preds.json"

    @property
    def journal(self) -> Path:
        return self.path / "journal.jsonl"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def report(self) -> Path:
        """Outcomes in the SWE-bench harness's report schema (state/report.py), derived."""
        return self.path / "report.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def trajectories(self) -> Path:
        return self.path / "trajectories"

    @property
    def inductions(self) -> Path:
        return self.path / "inductions"

    def trajectory(self, instance_id: str) -> Path:
        return self.trajectories / f"{_safe_name(instance_id)}.json"
