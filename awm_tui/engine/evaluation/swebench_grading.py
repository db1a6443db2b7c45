"""Rows that carry an `eval_script`: run it in the agent's sandbox, grade the way SWE-bench grades.

The parsing and the rules are the `swebench` package's own (`make_test_spec`,
`grading.get_eval_report`, `log_parsers.PARSER_REGISTRY`), an optional extra
imported only when such a row is graded. A log SWE-bench cannot grade (the
suite never started, the markers are missing, the test command's exit code
contradicts the log, the tests timed out) is an error, not a result.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from types import ModuleType
from typing import TYPE_CHECKING, Any

from awm_tui.engine.evaluation.client import EvaluationError
from awm_tui.engine.outcomes import ErrorKind, InfraError
from awm_tui.engine.tasks import Task

if TYPE_CHECKING:
    from awm_tui.engine.evaluation.harness import _Repo

EXTRA = "pip install 'awm-tui[swebench]'"
LOG_LIMIT = 64 * 1024 * 1024
"""Bytes of the eval script's log read back for grading."""
TAIL = 2000

_modules: tuple[ModuleType, ModuleType, ModuleType] | None = None


def _import() -> tuple[ModuleType, ModuleType, ModuleType]:
    global _modules
    if _modules is None:
        try:
            from swebench.harness import constants, grading, utils
        except ImportError as exc:
            raise InfraError(f"grading this row needs the swebench package ({exc.name or exc} is missing): "
                             f"{EXTRA}", ErrorKind.SETUP) from None
        _modules = (constants, grading, utils)
    return _modules


async def swebench_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(constants, grading, utils) of the swebench package; InfraError(SETUP) without the extra.

    Imported in a thread: the package pulls in `datasets`, a second of CPU."""
    return _modules if _modules is not None else await asyncio.to_thread(_import)


def _instance(task: Task) -> dict[str, Any]:
    return {"instance_id": task.instance_id, "image": task.image or "", "repo": task.repo,
            "version": task.version, "FAIL_TO_PASS": list(task.FAIL_TO_PASS),
            "PASS_TO_PASS": list(task.PASS_TO_PASS), "log_parser": task.log_parser,
            "eval_type": task.eval_type or "pass_and_fail", "eval_script": task.eval_script}


async def run_eval_script(repo: _Repo, task: Task) -> dict:
    """Run the row's eval script after the agent's patch; the graded report (EvaluationError if none)."""
    constants, grading, utils = await swebench_modules()
    if task.log_parser not in grading.PARSER_REGISTRY:
        raise InfraError(f"{task.instance_id}: field log_parser: unknown parser {task.log_parser!r} "
                         "in this swebench version", ErrorKind.SETUP)
    spec = utils.make_test_spec(_instance(task))  # records the test command's exit code
    script = await repo.write("eval.sh", spec.eval_script)
    log = repo.path("eval.log")
    run = await repo.run(f"bash {script} >{log} 2>&1", cap=3600)
    read = await repo.run(f"cat {log}", max_output=LOG_LIMIT, deadline=False, cap=120)
    text = read.output
    if run.timed_out:
        raise EvaluationError(f"{task.instance_id}: the eval script timed out after {run.duration_s:.0f}s")
    report = await asyncio.to_thread(_grade, grading, spec, task, text)
    graded = report[task.instance_id]
    if not graded.get("patch_successfully_applied"):
        raise EvaluationError(f"{task.instance_id}: {_why_ungradable(constants, grading, spec, text)}")
    tests = graded.get("tests_status") or {}
    return {"resolved": bool(graded["resolved"]), "log_parser": task.log_parser,
            "exit_code": grading.parse_test_exit_code(text), "tests_status": tests,
            "duration_s": round(run.duration_s, 3), "output_tail": text[-TAIL:].strip()}


def _grade(grading: ModuleType, spec: Any, task: Task, log: str) -> dict:
    """SWE-bench's own report for one instance (it reads the log from a file)."""
    fd, path = tempfile.mkstemp(prefix="awm-eval-", suffix=".log")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
            fh.write(log)
        prediction = {"instance_id": task.instance_id, "model_name_or_path": "awm-tui", "model_patch": "x"}
        return grading.get_eval_report(spec, prediction, path, include_tests_status=True)
    finally:
        os.unlink(path)


def _why_ungradable(constants: ModuleType, grading: ModuleType, spec: Any, log: str) -> str:
    """One line on why SWE-bench's grading found no result in the log."""
    tail = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "no output")[:200]
    for marker in (constants.APPLY_PATCH_FAIL, constants.RESET_FAILED, constants.TESTS_ERROR,
                   constants.TESTS_TIMEOUT):
        if marker in log:
            return f"the eval script reported {marker.strip('> ')!r}; last line: {tail}"
    start, end = constants.START_TEST_OUTPUT, constants.END_TEST_OUTPUT
    if start not in log or end not in log:
        return f"the eval script never reached its tests (no start/end marker); last line: {tail}"
    code = grading.parse_test_exit_code(log)
    exited = f" (the test command exited {code})" if code is not None else ""
    if not grading.PARSER_REGISTRY[spec.log_parser](log.split(start)[1].split(end)[0], spec):
        return f"the test suite never started: no test results in the log{exited}"
    return f"the test command exited {code} while the log reports no failing test: the log is not of this run"
