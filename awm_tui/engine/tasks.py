"""SWE-bench-style task instances and the datasets that hold them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Size = Literal["small", "medium", "large"]


class TaskError(ValueError):
    """A dataset could not be read; the message is one line for the user."""


class Task(BaseModel):
    """One SWE-bench instance, plus the optional fields awm-tui understands."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: str
    repo: str
    base_commit: str = ""
    problem_statement: str
    patch: str = ""
    """Reference (gold) patch; never shown to the agent."""
    test_patch: str = ""
    """Tests that check the fix; applied only at evaluation time."""
    FAIL_TO_PASS: tuple[str, ...] = ()
    PASS_TO_PASS: tuple[str, ...] = ()
    image: str | None = None
    """Docker image for this task; the run's default image when unset."""
    repo_snapshot: str | None = None
    """Directory (absolute, or relative to the dataset file) copied into the sandbox."""
    test_command: str | None = None
    """Command that runs named tests; `{tests}` is replaced by the quoted test ids."""
    benchmark_command: str | None = None
    """For performance tasks: timed before and after the patch to report speedup."""
    size: Size = "small"

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        # SWE-bench stores these as JSON-encoded strings.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else []
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc.msg}") from None
        return value


class Dataset(BaseModel):
    """A named set of tasks and the folder their relative snapshots live in."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    root: Path
    tasks: tuple[Task, ...] = Field(default_factory=tuple)

    def snapshot_path(self, task: Task) -> Path | None:
        if task.repo_snapshot is None:
            return None
        path = Path(task.repo_snapshot)
        return path if path.is_absolute() else (self.root / path)

    def get(self, instance_id: str) -> Task | None:
        return next((t for t in self.tasks if t.instance_id == instance_id), None)

    def select(self, *, limit: int | None, include_medium: bool = False) -> list[Task]:
        """Tasks a run takes: small ones, medium too with `include_medium`, in order."""
        sizes = {"small", "medium"} if include_medium else {"small"}
        chosen = [t for t in self.tasks if t.size in sizes]
        return chosen if limit is None else chosen[:limit]


SAMPLE = "sample"


def sample_dataset_path() -> Path:
    """The bundled sample tasks (works from a plain `pip install .`)."""
    return Path(str(resources.files("awm_tui.data") / "sample" / "tasks.jsonl"))


def load_dataset(spec: str | Path) -> Dataset:
    """Load `sample` or a local `.json` / `.jsonl` file of SWE-bench instances."""
    path = sample_dataset_path() if str(spec) == SAMPLE else Path(spec).expanduser()
    name = SAMPLE if str(spec) == SAMPLE else path.stem
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"dataset {str(spec)!r}: no such file; give a .json/.jsonl path or 'sample'") from None
    except OSError as exc:
        raise TaskError(f"dataset {str(spec)!r}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"dataset {str(spec)!r}: not UTF-8 text (byte {exc.start}); "
                        "SWE-bench files are UTF-8 JSON: re-export it") from None
    records = list(_records(text, path))
    if not records:
        raise TaskError(f"dataset {str(spec)!r}: holds no tasks; give a .json/.jsonl file of SWE-bench instances")
    tasks: list[Task] = []
    for lineno, record in records:
        try:
            tasks.append(Task.model_validate(record))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "record"
            raise TaskError(f"{path}:{lineno}: field {loc}: {err['msg']}") from None
    ids = [t.instance_id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise TaskError(f"{path}: duplicate instance_id {dupes[0]!r}; instance ids must be unique")
    return Dataset(name=name, root=path.parent, tasks=tuple(tasks))


def _records(text: str, path: Path) -> Iterable[tuple[int, dict]]:
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield lineno, _parse(line, path, lineno)
        return
    data = _parse(text, path, 1)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TaskError(f"{path}: expected a list of task objects")
    for index, record in enumerate(data):
        yield index + 1, record


def _parse(text: str, path: Path, lineno: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix the file") from None
