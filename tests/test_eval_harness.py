"""The evaluation harness against a real local sandbox holding a small real repository."""

from __future__ import annotations

import json
from pathlib import Path

from awm_tui.engine.evaluation.harness import evaluate_in_sandbox
from awm_tui.engine.evaluation.pytest_report import MISSING, grade, parse_summary
from awm_tui.engine.tasks import Dataset
from tests.plugins.eval_server import ADD_TESTS, FAST_TOTAL, FIX_ADD


def test_parse_summary_statuses_and_ids_with_spaces() -> None:
    output = "\n".join([
        "....F",
        "=========================== short test summary info ============================",
        "PASSED tests/test_a.py::test_ok",
        "FAILED tests/test_a.py::test_bad - assert 1 == 2",
        "\x1b[31mERROR\x1b[0m tests/test_a.py::test_err - NameError: x",
        "SKIPPED [1] tests/test_a.py:10: not today",
        "XFAIL tests/test_a.py::test_xf - known",
        "XPASS tests/test_a.py::test_xp unexpectedly passing",
        "PASSED tests/test_a.py::test_p[a - b]",
        "FAILED tests/test_a.py::test_both",
        "ERROR tests/test_a.py::test_both - teardown",
        "1 failed, 2 passed in 0.1s",
    ])
    expected = ["tests/test_a.py::test_p[a - b]", "tests/test_a.py::test_xp"]
    outcomes = parse_summary(output, expected)
    assert outcomes == {
        "tests/test_a.py::test_ok": "PASSED",
        "tests/test_a.py::test_bad": "FAILED",
        "tests/test_a.py::test_err": "ERROR",
        "tests/test_a.py::test_xf": "XFAIL",
        "tests/test_a.py::test_xp": "XPASS",
        "tests/test_a.py::test_p[a - b]": "PASSED",
        "tests/test_a.py::test_both": "ERROR",
    }
    report = grade(outcomes, ["tests/test_a.py::test_xf"], ["tests/test_a.py::test_ok", "gone::test"])
    assert report["FAIL_TO_PASS"]["passed"] == 1  # XFAIL counts as a pass, as in SWE-bench
    assert report["PASS_TO_PASS"]["status"]["gone::test"] == MISSING
    assert report["resolved"] is False


async def test_correct_patch_resolves(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    Path(sandbox.workdir, "calc", "ops.py").write_text(FIX_ADD)
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__add-1"))
    assert outcome.resolved and outcome.reward == 1.0, outcome.info
    assert outcome.speedup is None
    tests = outcome.info["tests"]
    assert set(tests["FAIL_TO_PASS"]["status"].values()) == {"PASSED"}
    assert tests["PASS_TO_PASS"]["passed"] == 2
    assert outcome.info["patch"]["files"] == ["calc/ops.py"]
    json.dumps(outcome.info)  # the server sends it as is


async def test_wrong_patch_is_not_resolved_with_per_test_detail(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    ops = Path(sandbox.workdir, "calc", "ops.py")
    ops.write_text(ops.read_text().replace("return a - b", "return a * 2"))
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__add-1"))
    assert not outcome.resolved and outcome.reward == 0.0
    statuses = outcome.info["tests"]["FAIL_TO_PASS"]["status"]
    # 1 * 2 == 1 + 1 holds by accident; the other two fail.
    assert statuses == {
        "tests/test_add.py::test_add": "FAILED",
        "tests/test_add.py::test_add_param[1-1]": "PASSED",
        "tests/test_add.py::test_add_param[0-5]": "FAILED",
    }
    assert outcome.info["tests"]["PASS_TO_PASS"]["failed"] == 0
    assert "failed" in outcome.info["tests"]["output_tail"]


async def test_pass_to_pass_broken_by_the_patch(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    Path(sandbox.workdir, "calc", "ops.py").write_text(FIX_ADD.replace("return a * b", "return a + b"))
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__add-1"))
    assert not outcome.resolved
    assert outcome.info["tests"]["FAIL_TO_PASS"]["failed"] == 0
    assert outcome.info["tests"]["PASS_TO_PASS"]["status"]["tests/test_ops.py::test_mul"] == "FAILED"


async def test_missing_tests_count_as_failed(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__missing-3")
    Path(sandbox.workdir, "NOTES.md").write_text("an untracked change\n")
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__missing-3"))
    assert not outcome.resolved
    f2p = outcome.info["tests"]["FAIL_TO_PASS"]
    assert f2p["status"] == {"tests/test_ops.py::test_nowhere": MISSING}
    assert f2p["missing"] == 1
    # pytest refuses the whole run over one unknown id; the output says why.
    assert outcome.info["tests"]["exit_code"] == 4
    assert "not found" in outcome.info["tests"]["output_tail"]
    assert "pytest ran no tests (exit 4): not found: " in outcome.info["error"]
    assert "tests/test_ops.py::test_nowhere" in outcome.info["error"]


async def test_empty_patch_is_not_resolved(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__add-1")
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__add-1"))
    assert not outcome.resolved and outcome.reward == 0.0
    assert "empty patch" in outcome.info["error"]
    assert "tests" not in outcome.info


async def test_submitted_patch_is_applied_to_a_clean_tree(task_sandbox, calc_dataset: Dataset) -> None:
    task = calc_dataset.get("calc__add-1")
    sandbox = await task_sandbox("calc__add-1")
    outcome = await evaluate_in_sandbox(sandbox, task, patch=task.patch)
    assert outcome.resolved, outcome.info
    assert outcome.info["patch"]["source"] == "submitted result"
    bad = await evaluate_in_sandbox(await task_sandbox("calc__add-1"), task, patch="not a diff")
    assert not bad.resolved and "does not apply" in bad.info["error"]


async def test_benchmark_speedup_for_a_faster_patch(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__fast-2")
    Path(sandbox.workdir, "calc", "ops.py").write_text(FAST_TOTAL)
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__fast-2"))
    assert outcome.resolved, outcome.info
    bench = outcome.info["benchmark"]
    assert min(bench["before_s"]) >= 0.4 > max(bench["after_s"])
    assert outcome.speedup is not None and outcome.speedup > 1.5


async def test_agent_changes_survive_the_evaluation(task_sandbox, calc_dataset: Dataset) -> None:
    """Benchmark and tests switch the tree back and forth; the agent's work comes back intact."""
    sandbox = await task_sandbox("calc__fast-2")
    root = Path(sandbox.workdir)
    (root / "calc" / "ops.py").write_text(FAST_TOTAL)
    (root / "calc" / "new_module.py").write_text("X = 1\n")          # untracked
    (root / "tests" / "test_add.py").write_text(ADD_TESTS + "\n# mine\n")  # untracked test file
    (root / "README.md").write_text("agent notes\n")                 # untracked
    (root / "pyproject.toml").unlink()                               # a deletion
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
              if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts}
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__fast-2"))
    assert outcome.speedup is not None
    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
             if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts}
    assert after == before
    status = await sandbox.exec("git status --porcelain")
    assert sorted(status.output.split("\n")) == sorted(
        ["", " M calc/ops.py", " D pyproject.toml", "?? README.md", "?? calc/new_module.py", "?? tests/test_add.py"]
    )


async def test_timeout_gives_reward_zero_not_an_exception(task_sandbox, calc_dataset: Dataset) -> None:
    sandbox = await task_sandbox("calc__fast-2")
    Path(sandbox.workdir, "calc", "ops.py").write_text(FAST_TOTAL.replace("return sum", "time.sleep(30)\n    return sum"))
    outcome = await evaluate_in_sandbox(sandbox, calc_dataset.get("calc__fast-2"), timeout_s=4)
    assert not outcome.resolved
    assert "timed out" in outcome.info["error"]
    assert "time.sleep(30)" in Path(sandbox.workdir, "calc", "ops.py").read_text()
