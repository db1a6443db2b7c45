"""SWE-bench-style task instances and the datasets that hold them.

A row is one of three kinds (`Task.kind`):
- `classic`: SWE-bench's dataset schema (Lite, Verified, full); no image of its own, so
  its image is derived with SWE-bench's naming rule and holds the repository at /testbed;
- `harness`: the current `swebench` package's schema, with `image`, `eval_script`,
  `log_parser`, `eval_type`; graded by running the eval script;
- `extended`: our own rows (`repo_snapshot`, `test_command`, …), e.g. the bundled sample.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from awm_tui.config.models import Size, parse_slice

RowKind = Literal["classic", "harness", "extended"]


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
    size: Size | None = None
    """Rows that carry none are sized by `[dataset] sizes` (repo -> size), else small."""
    version: str = ""
    eval_script: str | None = None
    """SWE-bench harness rows: the script that applies the test patch and runs the tests."""
    log_parser: str | None = None
    """Name in `swebench.harness.log_parsers.PARSER_REGISTRY` for the eval script's log."""
    eval_type: str | None = None
    """`pass_and_fail` (default) or `fail_only`, as the harness defines them."""

    @property
    def kind(self) -> RowKind:
        if self.repo_snapshot is not None or self.test_command is not None:
            return "extended"
        if self.eval_script:
            return "harness"
        return "extended" if self.image else "classic"

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        return "" if value is None else str(value)  # "0.13" in JSON, 0.13 in parquet

    @field_validator("eval_script")
    @classmethod
    def _script_needs_parser(cls, value: str | None) -> str | None:
        return value or None

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

    def select(self, *, limit: int | None, include_medium: bool = False, filter: str | None = None,
               slice: str | None = None, shuffle: int | None = None,
               sizes: Mapping[str, Size] | None = None) -> list[Task]:
        """Tasks a run takes, as mini-swe-agent picks them: shuffled (`shuffle` seed, rows sorted
        by id first), then `filter` (regex on instance_id), then `slice`; then small ones (medium
        too with `include_medium`, a row's size or else `sizes[repo]`), up to `limit`."""
        rows = list(self.tasks)
        if shuffle is not None:
            rows.sort(key=lambda t: t.instance_id)
            random.Random(shuffle).shuffle(rows)
        if filter:
            pattern = re.compile(filter)
            rows = [t for t in rows if pattern.match(t.instance_id)]
        if slice:
            rows = rows[parse_slice(slice)]
        taken = {"small", "medium"} if include_medium else {"small"}
        sizes = sizes or {}
        chosen = [t for t in rows if (t.size or sizes.get(t.repo, "small")) in taken]
        return chosen if limit is None else chosen[:limit]


SAMPLE = "sample"


def sample_dataset_path() -> Path:
    """The bundled sample tasks (works from a plain `pip install .`)."""
    return Path(str(resources.files("awm_tui.data") / "sample" / "tasks.jsonl"))


def load_dataset(spec: str | Path) -> Dataset:
    """Load `sample` or a local `.json` / `.jsonl` / `.parquet` file of SWE-bench instances."""
    path = sample_dataset_path() if str(spec) == SAMPLE else Path(spec).expanduser()
    name = SAMPLE if str(spec) == SAMPLE else path.stem
    if not path.is_file():
        raise TaskError(f"dataset {str(spec)!r}: no such file; give a .json/.jsonl/.parquet path or 'sample'")
    try:
        if path.suffix == ".parquet":
            records = list(_parquet_records(path))
        else:
            records = list(_records(path.read_text(encoding="utf-8"), path))
    except OSError as exc:
        raise TaskError(f"dataset {str(spec)!r}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"dataset {str(spec)!r}: not UTF-8 text (byte {exc.start}); "
                        "SWE-bench files are UTF-8 JSON: re-export it") from None
    if not records:
        raise TaskError(f"dataset {str(spec)!r}: holds no tasks; give a .json/.jsonl/.parquet file of "
                        "SWE-bench instances")
    tasks: list[Task] = []
    for lineno, record in records:
        try:
            task = Task.model_validate(record)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "record"
            raise TaskError(f"{path}:{lineno}: field {loc}: {err['msg']}") from None
        if task.eval_script and not task.log_parser:
            raise TaskError(f"{path}:{lineno}: field log_parser: a row with an eval_script needs one "
                            "(a name in swebench's PARSER_REGISTRY, e.g. parse_log_pytest)")
        if task.eval_script and not task.image:
            raise TaskError(f"{path}:{lineno}: field image: a row with an eval_script needs its image")
        tasks.append(task)
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


def _parquet_records(path: Path) -> Iterable[tuple[int, dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskError(f"{path}: reading .parquet needs pyarrow: pip install pyarrow "
                        "(or export the dataset to .jsonl)") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises its own ArrowInvalid, OSError, …
        raise TaskError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    for index, record in enumerate(rows):
        yield index + 1, record


def swebench_image_name(instance_id: str, *, namespace: str = "swebench", arch: str = "x86_64",
                        tag: str = "latest") -> str:
    """SWE-bench's instance image name (`swebench.image_builder.image_spec`): lower-cased,
    `__` -> `_1776_` (Docker Hub allows no double underscore)."""
    key = f"sweb.eval.{arch}.{instance_id}:{tag}".lower()
    return f"{namespace}/{key}".replace("__", "_1776_") if namespace else key


def _parse(text: str, path: Path, lineno: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix the file") from None
