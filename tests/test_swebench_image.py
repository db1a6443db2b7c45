"""The SWE-bench-layout image and rows keep SWE-bench's promises (scripts/swebench-image).

Checked directly in real containers (network "none"): the repository at /testbed
is the rows' base_commit, `conda activate testbed` gives pytest and the project,
and each row's eval_script, graded by swebench's own parser and rules, leaves
FAIL_TO_PASS failing at base and resolves the instance with the gold patch.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from awm_tui.config.models import DockerConfig
from awm_tui.engine.sandbox.docker import DockerSandbox, normalize_docker_url
from tests.plugins.swebench import HARNESS_ROWS, SwebenchImages, read_rows

ROWS = read_rows(HARNESS_ROWS)
IDS = [row["instance_id"] for row in ROWS]
CLASSIC_FIELDS = {
    "instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement",
    "hints_text", "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS",
    "environment_setup_commit",
}
HARNESS_FIELDS = {"image", "eval_script", "log_parser", "eval_type"}
ENV = "/opt/miniconda3/envs/testbed"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "swebench-image"
EVAL_OUTPUT = 8 * 1024 * 1024  # a full pytest -rA log, never cut


def test_rows_come_in_both_schemas(swebench_classic_rows, swebench_harness_rows):
    assert len(swebench_classic_rows) >= 2
    for classic, harness in zip(swebench_classic_rows, swebench_harness_rows, strict=True):
        assert set(classic) == CLASSIC_FIELDS
        assert set(harness) == CLASSIC_FIELDS | HARNESS_FIELDS
        assert {k: harness[k] for k in CLASSIC_FIELDS} == classic
        # As SWE-bench ships them: JSON-encoded lists of pytest node ids.
        f2p, p2p = json.loads(classic["FAIL_TO_PASS"]), json.loads(classic["PASS_TO_PASS"])
        assert f2p and p2p and not set(f2p) & set(p2p)
        assert all("::" in test for test in f2p + p2p)
        # SWE-bench's naming rule for the instance image.
        name = classic["instance_id"].lower().replace("__", "_1776_")
        assert harness["image"] == f"swebench/sweb.eval.x86_64.{name}:latest"


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_eval_script_has_the_harness_shape(row, swebench_harness):
    """swebench's make_test_spec recognises every part of the script it ships."""
    c = swebench_harness.constants
    # The classic fields are exactly the package's own dataset row type.
    assert set(swebench_harness.types.SWEbenchInstance.__annotations__) == CLASSIC_FIELDS
    assert row["log_parser"] in swebench_harness.parsers
    assert row["eval_type"] in {t.value for t in c.EvalType}
    spec = swebench_harness.make_test_spec(row)
    assert row["eval_script"].startswith("#!/bin/bash\nset -uxo pipefail\n")
    # The test command's exit code is recorded only when the end marker is found.
    assert f'echo "{c.TEST_EXIT_CODE}: ${c.TEST_EXIT_CODE_VAR}"' in spec.eval_script
    assert spec.eval_script.replace(f"{c.TEST_EXIT_CODE_VAR}=$?\n", "").replace(
        f'echo "{c.TEST_EXIT_CODE}: ${c.TEST_EXIT_CODE_VAR}"\n', ""
    ) == row["eval_script"]
    lines = row["eval_script"].splitlines()
    start, end = lines.index(f": '{c.START_TEST_OUTPUT}'"), lines.index(f": '{c.END_TEST_OUTPUT}'")
    assert end == start + 2 and lines[start + 1].startswith("pytest -rA tests/")
    reset = f"git checkout {row['base_commit']} "
    assert lines[-1].startswith(reset) and lines[-1] in lines[:start]
    assert f"git apply -v - <<'EOF_114329324912'\n{row['test_patch']}\nEOF_114329324912" in row["eval_script"]


@pytest.mark.docker
async def test_image_script_is_idempotent(docker_client, docker_url, swebench_images):
    """Set-up runs it every time: with the images built it only says so."""
    before = (await docker_client.images.inspect(swebench_images.base))["Id"]
    removed = swebench_images.by_instance[IDS[0]]
    await docker_client.images.delete(removed)
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        env={**os.environ, "DOCKER_HOST": normalize_docker_url(docker_url)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    assert proc.returncode == 0, out
    assert out.splitlines() == [
        f"swebench-image: {swebench_images.base} present; tagged its {len(IDS)} instance images"
    ]
    # Nothing rebuilt; the removed instance tag is back on the same image.
    assert (await docker_client.images.inspect(swebench_images.base))["Id"] == before
    assert (await docker_client.images.inspect(removed))["Id"] == before


@pytest.fixture
async def start_testbed(
    docker_client: aiodocker.Docker, docker_run_name: str, swebench_images: SwebenchImages
) -> AsyncIterator[Callable[[str], Awaitable[DockerSandbox]]]:
    sandboxes: list[DockerSandbox] = []

    async def start(instance_id: str) -> DockerSandbox:
        sandbox = DockerSandbox(
            docker_client,
            image=swebench_images.by_instance[instance_id],
            run_name=docker_run_name,
            instance_id=instance_id,
            limits=DockerConfig(memory="1g"),
        )
        sandboxes.append(sandbox)
        await sandbox.start()
        return sandbox

    try:
        yield start
    finally:
        for sandbox in sandboxes:
            await sandbox.close()


async def _run(sandbox: DockerSandbox, command: str, **kwargs: Any) -> str:
    result = await sandbox.exec(command, **kwargs)
    assert result.exit_code == 0, result.output[-2000:]
    return result.output


@pytest.mark.docker
@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_testbed_is_the_base_commit_clean(row, start_testbed):
    sandbox = await start_testbed(row["instance_id"])
    out = await _run(sandbox, "git rev-parse HEAD; git status --porcelain; git log --format='%an <%ae> %aI' -1")
    assert out.splitlines() == [row["base_commit"], "awm-tui <awm-tui@localhost> 2022-11-11T00:00:00+00:00"]
    # The eval script's `git show` prints the root commit's header, not the whole tree.
    assert len(await _run(sandbox, "git show")) < 1000


@pytest.mark.docker
async def test_conda_activate_testbed_has_pytest_and_the_project(start_testbed):
    sandbox = await start_testbed(IDS[0])
    out = await _run(
        sandbox,
        "set -uo pipefail; source /opt/miniconda3/bin/activate && conda activate testbed"
        " && echo \"$CONDA_DEFAULT_ENV $CONDA_PREFIX\" && command -v python pytest"
        " && python -c 'import marshmallow; print(marshmallow.__version__, marshmallow.__file__)'"
        " && python -m pytest --version",
    )
    lines = out.splitlines()
    assert lines[:4] == [
        f"testbed {ENV}", f"{ENV}/bin/python", f"{ENV}/bin/pytest",
        # Installed in editable mode: the code imported is the code at /testbed.
        "3.19.0 /testbed/src/marshmallow/__init__.py",
    ]
    assert lines[4].startswith("pytest ")

    # The project and pytest are in the env only: without it no suite can start.
    outside = await sandbox.exec("python3 -c 'import marshmallow'")
    assert outside.exit_code == 1 and "No module named 'marshmallow'" in outside.output
    assert (await sandbox.exec("pytest --version")).exit_code == 127
    # A login to the container (interactive bash) lands in testbed, as in SWE-bench's images.
    assert (await _run(sandbox, "bash -ic 'echo $CONDA_DEFAULT_ENV' 2>/dev/null")).strip() == "testbed"
    # An unknown env is one line and a failure; deactivate leaves the env.
    unknown = await sandbox.exec("source /opt/miniconda3/bin/activate && conda activate nope")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "EnvironmentNameNotFound: Could not find conda environment: nope"
    left = await _run(
        sandbox,
        "source /opt/miniconda3/bin/activate; conda activate testbed; conda deactivate; command -v python",
    )
    assert left.strip() == "/opt/miniconda3/bin/python"


async def _grade(swebench_harness, row: dict, log: str, patch: str, tmp_path: Path) -> dict:
    path = tmp_path / f"{row['instance_id']}.log"
    await asyncio.to_thread(path.write_text, log)
    spec = swebench_harness.make_test_spec(row)
    prediction = {"instance_id": row["instance_id"], "model_patch": patch, "model_name_or_path": "gold"}
    report = swebench_harness.grading.get_eval_report(spec, prediction, str(path), include_tests_status=True)
    return report[row["instance_id"]]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_eval_script_fails_at_base_and_resolves_with_the_gold_patch(
    row, start_testbed, swebench_harness, tmp_path
):
    sandbox = await start_testbed(row["instance_id"])
    # As the harness runs it: the row's script with swebench's exit-code lines added.
    await sandbox.write_file("/eval.sh", swebench_harness.make_test_spec(row).eval_script)
    exit_code = swebench_harness.grading.parse_test_exit_code
    f2p, p2p = json.loads(row["FAIL_TO_PASS"]), json.loads(row["PASS_TO_PASS"])

    base = await sandbox.exec("/bin/bash /eval.sh", timeout_s=600, max_output=EVAL_OUTPUT)
    assert not base.truncated
    report = await _grade(swebench_harness, row, base.output, "", tmp_path)
    tests = report["tests_status"]
    assert not report["resolved"]
    assert sorted(tests["FAIL_TO_PASS"]["failure"]) == sorted(f2p)
    assert sorted(tests["PASS_TO_PASS"]["success"]) == sorted(p2p)
    # pytest's own exit code agrees with the log (else the harness calls it an error).
    assert exit_code(base.output) == 1
    # The script leaves the repository as it found it.
    assert await _run(sandbox, "git status --porcelain") == ""

    await sandbox.write_file("/tmp/patch.diff", row["patch"])
    await _run(sandbox, "git apply -v /tmp/patch.diff")
    gold = await sandbox.exec("/bin/bash /eval.sh", timeout_s=600, max_output=EVAL_OUTPUT)
    report = await _grade(swebench_harness, row, gold.output, row["patch"], tmp_path)
    assert report["resolved"], report["tests_status"]["FAIL_TO_PASS"]
    assert exit_code(gold.output) == 0
    assert sorted(report["tests_status"]["PASS_TO_PASS"]["success"]) == sorted(p2p)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=IDS)
async def test_wrong_patch_is_graded_unresolved(
    row, start_testbed, swebench_harness, swebench_wrong_patches, tmp_path
):
    wrong = swebench_wrong_patches[row["instance_id"]]["patch"]
    sandbox = await start_testbed(row["instance_id"])
    await sandbox.write_file("/eval.sh", row["eval_script"])
    await sandbox.write_file("/tmp/patch.diff", wrong)
    await _run(sandbox, "git apply -v /tmp/patch.diff")
    result = await sandbox.exec("/bin/bash /eval.sh", timeout_s=600, max_output=EVAL_OUTPUT)
    report = await _grade(swebench_harness, row, result.output, wrong, tmp_path)
    # Graded (the suite ran and was parsed), and not resolved.
    assert report["patch_successfully_applied"] and not report["resolved"]
    tests = report["tests_status"]
    assert tests["FAIL_TO_PASS"]["failure"] or tests["PASS_TO_PASS"]["failure"]
