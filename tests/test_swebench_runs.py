"""Real SWE-bench rows end to end: the real dockerd, the real `swebench` package, the simulated model.

The rows are sweinfra's two marshmallow fixes (`tests/data/swebench`), in SWE-bench's classic
schema and in the harness schema; their image is the offline SWE-bench-layout one
`scripts/swebench-image` builds. The simulated model is told per task what to submit
(`SimOptions.submit`): the gold patch, a wrong one, or nothing.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from pydantic import SecretStr

from awm_tui.config.plan import resolve_run
from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.engine.events import Event, ImagePull, TaskFinished, TaskStarted
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.engine.sandbox.docker import image_exists
from awm_tui.engine.state.checkpoint import Checkpoint
from awm_tui.engine.tasks import swebench_image_name
from awm_tui.servers.eval_server import EvalServer
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

GOLD, WRONG = "marshmallow-code__marshmallow-2102", "marshmallow-code__marshmallow-2150"
KEY = SecretStr("sim-swebench-key-0000-2102")
CATEGORIES = ("resolved_ids", "unresolved_ids", "empty_patch_ids", "error_ids", "not_evaluated_ids",
              "incomplete_ids")


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["instance_id"]: row for row in rows}


def renamed(row: dict[str, Any], instance_id: str) -> dict[str, Any]:
    return {**row, "instance_id": instance_id}


def sim_profile(sim: SimLLMServer) -> LLMProfile:
    return LLMProfile(model="awm-sim", base_url=sim.url, label="simulated", timeout=60, num_retries=2,
                      retry_min_wait=0.05, retry_max_wait=0.2)


async def run_once(tmp_path: Path, dataset: Path, *, submit: dict[str, str], out: Path, limit: int,
                   docker: DockerConfig, eval_config: EvalConfig | None = None,
                   name: str = "swe") -> tuple[list[Event], Any]:
    events: list[Event] = []
    options = SimOptions(seed=1, datasets=(str(dataset),), submit=tuple(submit.items()))  # type: ignore[arg-type]
    async with SimLLMServer(options) as sim:
        run = RunConfig(name=name, llm="llm.sim", output_dir=out, dataset=str(dataset), limit=limit,
                        sandbox="docker", induce_every=10, induction="rule", command_timeout=300,
                        max_steps=10)
        config = AppConfig(llm={"llm.sim": sim_profile(sim)}, runs=[run], docker=docker,
                           eval=eval_config or EvalConfig(mode="local", timeout=600))
        async with Fleet(config, events.append, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())[name]
    return events, outcome


def finished(events: list[Event]) -> dict[str, TaskFinished]:
    return {e.instance_id: e for e in events if isinstance(e, TaskFinished)}


def assert_report_agrees(out: Path, expected: dict[str, Outcome]) -> dict:
    """report.json has the harness's categories, disjoint and covering the run's tasks, and
    says what checkpoint.json and preds.json say."""
    report = json.loads((out / "report.json").read_text())
    checkpoint = Checkpoint.load(out / "checkpoint.json")
    preds = json.loads((out / "preds.json").read_text())
    assert report["schema_version"] == 2 and report["total_instances"] == len(expected)
    seen = [i for key in CATEGORIES for i in report[key]]
    assert sorted(seen) == sorted(expected), "each task in exactly one category"
    for key in CATEGORIES[:4]:
        count = key.replace("_ids", "_instances")
        assert report[count] == len(report[key]), count
    for iid, outcome in expected.items():
        key = f"{outcome}_ids"
        assert iid in report[key], (iid, key, report)
        if outcome is Outcome.ERROR:
            assert not checkpoint.is_done(iid) and iid not in preds  # errors are never results
            assert report["failure_reasons"][iid] and report["error_kinds"][iid]
        else:
            assert checkpoint.finished[iid].outcome is outcome
            assert iid in preds and iid in report["submitted_ids"]
    assert sorted(report["completed_ids"]) == sorted(report["resolved_ids"] + report["unresolved_ids"])
    assert sorted(report["submitted_ids"]) == sorted(preds)
    return report


async def test_harness_rows_gold_wrong_empty(tmp_path: Path, swebench_images, swebench_harness,
                                             swebench_harness_rows, docker_url: str) -> None:
    """Gold patch -> resolved, wrong -> unresolved (both by SWE-bench's parser), nothing -> empty_patch."""
    rows = by_id(swebench_harness_rows)
    empty = f"{GOLD}-empty"
    dataset = write_rows(tmp_path / "harness.jsonl", [rows[GOLD], rows[WRONG], renamed(rows[GOLD], empty)])
    out = tmp_path / "out"
    events, outcome = await run_once(tmp_path, dataset, out=out, limit=3, docker=DockerConfig(url=docker_url),
                                     submit={GOLD: "gold", WRONG: "wrong", empty: "empty"})
    assert outcome.status == "finished", outcome
    done = finished(events)
    assert {i: e.outcome for i, e in done.items()} == {
        GOLD: Outcome.RESOLVED, WRONG: Outcome.UNRESOLVED, empty: Outcome.EMPTY_PATCH}
    assert done[GOLD].grader == done[WRONG].grader == "swebench:parse_log_marshmallow"
    assert done[empty].grader == ""  # SWE-bench grades no empty patch
    trajectory = json.loads((out / "trajectories" / f"{GOLD}.json").read_text())
    status = trajectory["evaluation"]["tests"]["tests_status"]
    assert status["FAIL_TO_PASS"]["failure"] == [] and len(status["FAIL_TO_PASS"]["success"]) == 4
    wrong = json.loads((out / "trajectories" / f"{WRONG}.json").read_text())
    assert wrong["evaluation"]["tests"]["tests_status"]["FAIL_TO_PASS"]["failure"]
    report = assert_report_agrees(out, {GOLD: Outcome.RESOLVED, WRONG: Outcome.UNRESOLVED,
                                        empty: Outcome.EMPTY_PATCH})
    assert report["graders"] == {GOLD: "swebench:parse_log_marshmallow", WRONG: "swebench:parse_log_marshmallow"}


async def test_a_suite_that_cannot_start_is_an_error_retried_on_rerun(
        tmp_path: Path, swebench_images, swebench_harness, swebench_harness_rows, docker_url: str) -> None:
    row = by_id(swebench_harness_rows)[GOLD]
    broken = {**row, "eval_script": row["eval_script"].replace("\npytest -rA ", "\nno-such-test-runner -rA ")}
    assert broken["eval_script"] != row["eval_script"]
    out = tmp_path / "out"
    docker = DockerConfig(url=docker_url)
    events, outcome = await run_once(tmp_path, write_rows(tmp_path / "broken.jsonl", [broken]), out=out, limit=1,
                                     docker=docker, submit={GOLD: "gold"})
    assert outcome.status == "finished" and outcome.errors == 1, outcome
    task = finished(events)[GOLD]
    assert (task.outcome, task.error_kind) == (Outcome.ERROR, ErrorKind.EVALUATION)
    assert "never started" in task.error and "\n" not in task.error
    assert not Checkpoint.load(out / "checkpoint.json").is_done(GOLD)
    assert_report_agrees(out, {GOLD: Outcome.ERROR})

    # The same directory again, the eval script fixed: the task is retried and resolved.
    events, outcome = await run_once(tmp_path, write_rows(tmp_path / "fixed.jsonl", [row]), out=out, limit=1,
                                     docker=docker, submit={GOLD: "gold"})
    assert [e.instance_id for e in events if isinstance(e, TaskStarted)] == [GOLD]
    assert finished(events)[GOLD].outcome is Outcome.RESOLVED
    assert_report_agrees(out, {GOLD: Outcome.RESOLVED})


async def test_classic_rows_derived_image_missing_one_pulled_none_kept(
        tmp_path: Path, swebench_images, swebench_classic_rows, docker_url: str,
        docker_client: aiodocker.Docker) -> None:
    """Classic rows name no image: it is derived with SWE-bench's rule under the configured
    namespace. One row's image is absent and cannot be pulled (no network): one clear line,
    an image error, and the run goes on to the next row, which resolves in the testbed env
    (graded by the pytest fallback: no eval_script). keep_images = "none" removes its image;
    it is a throwaway tag of the shared fixture, which stays."""
    namespace = f"awm-test-{secrets.token_hex(3)}"
    rows = by_id(swebench_classic_rows)
    missing = "marshmallow-code__marshmallow-9999"
    dataset = write_rows(tmp_path / "classic.jsonl", [renamed(rows[GOLD], missing), rows[GOLD]])
    throwaway = swebench_image_name(GOLD, namespace=namespace)
    repo, tag = throwaway.rsplit(":", 1)
    await docker_client.images.tag(swebench_images.base, repo, tag=tag)
    out = tmp_path / "out"
    try:
        events, outcome = await run_once(
            tmp_path, dataset, out=out, limit=2, submit={GOLD: "gold"},
            docker=DockerConfig(url=docker_url, namespace=namespace, keep_images="none"))
        assert outcome.status == "finished", outcome
        done = finished(events)
        lost = done[missing]
        assert (lost.outcome, lost.error_kind) == (Outcome.ERROR, ErrorKind.IMAGE)
        absent = swebench_image_name(missing, namespace=namespace)
        assert lost.error.startswith(f"cannot pull {absent}:") and "\n" not in lost.error
        pulls = [e for e in events if isinstance(e, ImagePull) and e.instance_id == missing]
        assert pulls and pulls[-1].done and pulls[-1].error and pulls[0].free_bytes is not None
        assert (done[GOLD].outcome, done[GOLD].grader) == (Outcome.RESOLVED, "pytest")
        assert_report_agrees(out, {missing: Outcome.ERROR, GOLD: Outcome.RESOLVED})
        assert not await image_exists(docker_client, throwaway)
        assert await image_exists(docker_client, swebench_images.base)
    finally:
        if await image_exists(docker_client, throwaway):
            await docker_client.images.delete(throwaway)


async def test_the_eval_server_grades_a_harness_row_with_the_same_code(
        tmp_path: Path, swebench_images, swebench_harness, swebench_harness_rows, docker_url: str) -> None:
    rows = by_id(swebench_harness_rows)
    dataset = write_rows(tmp_path / "harness.jsonl", [rows[WRONG]])
    async with EvalServer([str(dataset)], docker_url=docker_url, timeout_s=600) as server:
        events, outcome = await run_once(
            tmp_path, dataset, out=tmp_path / "out", limit=1, submit={WRONG: "gold"},
            docker=DockerConfig(url=docker_url),
            eval_config=EvalConfig(mode="server", server_url=server.url, timeout=600))
    task = finished(events)[WRONG]
    assert outcome.status == "finished" and task.outcome is Outcome.RESOLVED, (outcome, task)
    assert task.grader == f"server {server.url} (swebench:parse_log_marshmallow)"
