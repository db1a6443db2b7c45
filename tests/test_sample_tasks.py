"""The bundled `sample` dataset is genuine: every task's bug is real and its fix works.

For each task, in a throw-away git copy of its snapshot: the reference patch and
the test patch apply; with only the test patch, every FAIL_TO_PASS test fails and
every PASS_TO_PASS test passes; with both, everything passes. Performance tasks
must also be measurably faster after the patch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from awm_tui.engine.tasks import Task, load_dataset

DATASET = load_dataset("sample")
TASKS = list(DATASET.tasks)
TEST_COMMAND = "python3 -m pytest -rA -q -p no:cacheprovider {tests}"
GIT = ["git", "-c", "user.name=awm", "-c", "user.email=awm@example.invalid", "-c", "commit.gpgsign=false"]
RESULT_LINE = re.compile(r"^(PASSED|FAILED|ERROR)\s+(\S+)")
# Sub-processes must not leave bytecode behind and must find the running interpreter as `python3`.
ENV = {
    **os.environ,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
}


def _run(cmd: list[str], cwd: Path, *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, input=stdin, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _checkout(task: Task, dest: Path) -> Path:
    """A committed git copy of the task's snapshot, as the engine puts it at /testbed."""
    source = DATASET.snapshot_path(task)
    assert source is not None and source.is_dir(), f"{task.instance_id}: snapshot {task.repo_snapshot!r} missing"
    repo = dest / "testbed"
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    _run(GIT + ["init", "-q"], repo)
    _run(GIT + ["add", "-A"], repo)
    _run(GIT + ["commit", "-q", "-m", "snapshot"], repo)
    return repo


def _apply(repo: Path, patch: str, *, check_only: bool = False) -> None:
    _run(GIT + ["apply", *(["--check"] if check_only else []), "-"], repo, stdin=patch)


def _pytest(repo: Path, node_ids: list[str]) -> dict[str, str]:
    """Run the named tests the way the task's test_command does; outcome by node id."""
    result = _run([sys.executable, "-m", "pytest", "-rA", "-q", "-p", "no:cacheprovider", *node_ids], repo, check=False)
    outcomes: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = RESULT_LINE.match(line)
        if match:
            outcomes[match.group(2)] = match.group(1)
    missing = [n for n in node_ids if n not in outcomes]
    assert not missing, f"tests not run: {missing}\n{result.stdout}\n{result.stderr}"
    return outcomes


def _project(task: Task) -> str:
    return Path(task.repo_snapshot or "").name


# ---------------------------------------------------------------- the set as a whole


def test_dataset_shape():
    assert len(TASKS) >= 9
    ids = [t.instance_id for t in TASKS]
    assert len(set(ids)) == len(ids)
    per_project = Counter(_project(t) for t in TASKS)
    assert len(per_project) >= 3
    assert min(per_project.values()) >= 2, per_project
    assert any(t.benchmark_command for t in TASKS)
    sizes = Counter(t.size for t in TASKS)
    assert sizes["small"] >= 1 and sizes["medium"] >= 1, sizes
    assert len(DATASET.select(limit=None)) < len(DATASET.select(limit=None, include_medium=True))


def test_snapshots_are_clean():
    roots = {DATASET.snapshot_path(t) for t in TASKS}
    for root in roots:
        assert root is not None and (root / "README.md").is_file() and (root / "tests").is_dir(), root
        junk = [p for p in root.rglob("*") if p.name in {".git", "__pycache__", ".pytest_cache"} or p.suffix == ".pyc"]
        assert not junk, f"snapshot {root} contains {junk}"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.instance_id)
def test_task_fields(task: Task):
    project = _project(task)
    assert re.fullmatch(rf"{project}__{project}-\d+", task.instance_id)
    assert task.repo == f"awm-samples/{project}"
    assert task.repo_snapshot == f"repos/{project}"
    assert task.base_commit and task.problem_statement.strip()
    assert task.test_command == TEST_COMMAND
    assert task.FAIL_TO_PASS and task.PASS_TO_PASS
    assert not set(task.FAIL_TO_PASS) & set(task.PASS_TO_PASS)
    # Test patches only add new files, so they never conflict with each other or the fix.
    assert "--- /dev/null" in task.test_patch
    assert not re.search(r"^--- a/", task.test_patch, re.M)
    # The reference fix does not touch tests.
    assert not re.search(r"^\+\+\+ b/tests/", task.patch, re.M)
    raw = json.loads(DATASET.root.joinpath("tasks.jsonl").read_text().splitlines()[TASKS.index(task)])
    assert isinstance(raw["FAIL_TO_PASS"], str) and isinstance(raw["PASS_TO_PASS"], str)


# ---------------------------------------------------------------- each task is genuine


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.instance_id)
def test_task_is_genuine(task: Task, tmp_path: Path):
    repo = _checkout(task, tmp_path)
    _apply(repo, task.patch, check_only=True)
    _apply(repo, task.test_patch, check_only=True)

    _apply(repo, task.test_patch)
    tests = [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]
    before = _pytest(repo, tests)
    still_passing = [n for n in task.FAIL_TO_PASS if before[n] != "FAILED"]
    assert not still_passing, f"FAIL_TO_PASS tests do not fail on the buggy snapshot: {still_passing}"
    broken = [n for n in task.PASS_TO_PASS if before[n] != "PASSED"]
    assert not broken, f"PASS_TO_PASS tests do not pass on the buggy snapshot: {broken}"

    _apply(repo, task.patch)
    after = _pytest(repo, tests)
    failing = [n for n, outcome in after.items() if outcome != "PASSED"]
    assert not failing, f"tests still failing with the reference patch: {failing}"


def _time(command: str, repo: Path) -> float:
    start = time.perf_counter()
    _run(["bash", "-c", command], repo)
    return time.perf_counter() - start


@pytest.mark.parametrize("task", [t for t in TASKS if t.benchmark_command], ids=lambda t: t.instance_id)
def test_benchmark_is_faster_after_patch(task: Task, tmp_path: Path):
    repo = _checkout(task, tmp_path)
    assert task.benchmark_command
    slow = statistics.median(_time(task.benchmark_command, repo) for _ in range(2))
    _apply(repo, task.patch)
    fast = statistics.median(_time(task.benchmark_command, repo) for _ in range(2))
    assert slow < 10, f"benchmark too slow to be cheap: {slow:.2f}s"
    assert slow >= 1.5 * fast, f"patch does not speed the benchmark up: {slow:.3f}s -> {fast:.3f}s"
