"""Fixtures for evaluation: a tiny real project and dataset, local sandboxes, the eval server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from awm_tui.engine.sandbox.local import LocalSandbox
from awm_tui.engine.tasks import Dataset, Task, load_dataset
from awm_tui.servers.eval_server import EvalServer

CALC_OPS = '''import time


def add(a, b):
    return a - b


def mul(a, b):
    return a * b


def total(n):
    time.sleep(0.4)
    return sum(range(n))
'''
CALC_TESTS = '''from calc.ops import mul, total


def test_mul():
    assert mul(2, 3) == 6


def test_total():
    assert total(4) == 6
'''
ADD_TESTS = '''import pytest

from calc.ops import add


def test_add():
    assert add(2, 3) == 5


@pytest.mark.parametrize("a,b", [(1, 1), (0, 5)])
def test_add_param(a, b):
    assert add(a, b) == a + b
'''
PYPROJECT = '[project]\nname = "calc"\nversion = "0"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
FIX_ADD = CALC_OPS.replace("return a - b", "return a + b")
FAST_TOTAL = CALC_OPS.replace("    time.sleep(0.4)\n", "")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout


def _diff(repo: Path, changes: dict[str, str]) -> str:
    """A git diff of `changes` against the committed base, then the repo is reset."""
    for name, text in changes.items():
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    patch = _git(repo, "diff", "--cached")
    _git(repo, "reset", "-q", "--hard")
    return patch


def write_calc_dataset(root: Path) -> Path:
    """A `calc` project under `root/repos/calc` and `root/tasks.jsonl` with three tasks."""
    repo = root / "repos" / "calc"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "ops.py").write_text(CALC_OPS)
    (repo / "tests" / "test_ops.py").write_text(CALC_TESTS)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    test_patch = _diff(repo, {"tests/test_add.py": ADD_TESTS})
    tasks = [
        {
            "instance_id": "calc__add-1",
            "repo": "demo/calc",
            "problem_statement": "add() subtracts.",
            "patch": _diff(repo, {"calc/ops.py": FIX_ADD}),
            "test_patch": test_patch,
            "FAIL_TO_PASS": json.dumps([
                "tests/test_add.py::test_add",
                "tests/test_add.py::test_add_param[1-1]",
                "tests/test_add.py::test_add_param[0-5]",
            ]),
            "PASS_TO_PASS": json.dumps(["tests/test_ops.py::test_mul", "tests/test_ops.py::test_total"]),
            "repo_snapshot": "repos/calc",
        },
        {
            "instance_id": "calc__fast-2",
            "repo": "demo/calc",
            "problem_statement": "total() is slow.",
            "patch": _diff(repo, {"calc/ops.py": FAST_TOTAL}),
            "PASS_TO_PASS": ["tests/test_ops.py::test_total"],
            "benchmark_command": "python3 -c 'from calc.ops import total; total(10)'",
            "repo_snapshot": "repos/calc",
        },
        {
            "instance_id": "calc__missing-3",
            "repo": "demo/calc",
            "problem_statement": "A test that does not exist.",
            "FAIL_TO_PASS": ["tests/test_ops.py::test_nowhere"],
            "PASS_TO_PASS": ["tests/test_ops.py::test_mul"],
            "repo_snapshot": "repos/calc",
        },
    ]
    # The snapshot is plain files, as bundled datasets ship it; sandboxes `git init` it.
    subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)
    path = root / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


@pytest.fixture
def calc_dataset(tmp_path: Path) -> Dataset:
    return load_dataset(write_calc_dataset(tmp_path / "calc-dataset"))


async def prepare_sandbox(sandbox: LocalSandbox, dataset: Dataset, task: Task) -> LocalSandbox:
    """Copy the task's snapshot in and commit it as the base, as a run does."""
    await sandbox.start()
    snapshot = dataset.snapshot_path(task)
    assert snapshot is not None
    await sandbox.put_directory(snapshot)
    result = await sandbox.exec(
        "git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base"
    )
    assert result.exit_code == 0, result.output
    return sandbox


@pytest.fixture
async def task_sandbox(calc_dataset: Dataset) -> AsyncIterator[Callable[[str], Awaitable[LocalSandbox]]]:
    """`await task_sandbox(instance_id)`: a local sandbox holding that task's base repo."""
    made: list[LocalSandbox] = []

    async def make(instance_id: str) -> LocalSandbox:
        task = calc_dataset.get(instance_id)
        assert task is not None
        sandbox = LocalSandbox(run_name="test", instance_id=instance_id)
        made.append(sandbox)
        return await prepare_sandbox(sandbox, calc_dataset, task)

    try:
        yield make
    finally:
        for sandbox in made:
            await sandbox.close()


@pytest.fixture
async def eval_server(calc_dataset: Dataset) -> AsyncIterator[EvalServer]:
    """The real evaluation server on a loopback port, serving the calc dataset."""
    async with EvalServer([calc_dataset]) as server:
        yield server


@pytest.fixture
async def eval_server_factory(calc_dataset: Dataset) -> AsyncIterator[Callable[..., Awaitable[EvalServer]]]:
    """Start evaluation servers with options: `await eval_server_factory(simulate=0.2)`."""
    servers: list[EvalServer] = []

    async def start(**options: object) -> EvalServer:
        server = EvalServer(options.pop("datasets", [calc_dataset]), **options)  # type: ignore[arg-type]
        servers.append(server)
        await server.start("127.0.0.1", 0)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.close()
