"""The benchmarks must not rot: run the quick ones at a tiny size (well under a minute)."""

from __future__ import annotations

import asyncio
import json

import pytest

from awm_tui.engine import protocol
from awm_tui.engine.agent import PATCH_COMMAND
from benchmarks import concurrency, connection_reuse, cost_per_call, scale, shared_backoff, state_files, workers
from benchmarks.__main__ import main
from benchmarks.common import NullSandbox


def test_null_sandbox_answers_like_an_agent_expects() -> None:
    async def go() -> None:
        sb = NullSandbox()
        await sb.start()
        assert (await sb.exec(protocol.SUBMIT_COMMAND)).output.startswith(protocol.SUBMIT_MARKER)
        assert (await sb.exec(PATCH_COMMAND)).output.startswith("diff --git")
        assert (await sb.exec("ls")).exit_code == 0
        await sb.close()
    asyncio.run(go())


@pytest.mark.timeout(150)
def test_concurrency_tiny_runs_every_contender() -> None:
    res = concurrency.run(True, log=lambda _: None, ns=(2,), m=1)
    summary = res.data["summary"]
    for name in ("engine", "before", "terminals", "floor"):
        row = summary[f"{name}@2"]
        assert row["resolved"] == 2, row          # every task evaluated and resolved
        assert row["wall_s"] > 0 and row["efficiency"] > 0
    # the engine's 2 runs overlap; 'before' takes turns
    assert summary["before@2"]["wall_s"] > summary["engine@2"]["wall_s"]
    assert summary["before@2"]["connections"] == summary["before@2"]["requests"]
    # server CPU and the CPU budget are measured; the unsaturated x4 row runs the engine only
    assert summary["engine@2"]["server_cpu_s"] >= 0 and 0 < summary["engine@2"]["cpu_budget"] < 1
    for label in ("engine", "floor", "engine-no-state"):
        x4 = summary[f"{label}-x{concurrency.SCALE}@2"]
        assert x4["resolved"] == 2 and x4["latency_s"] == concurrency.LATENCY * concurrency.SCALE
    assert any(f"x{concurrency.SCALE}" in t.name for t in res.targets)


@pytest.mark.timeout(60)
def test_reuse_and_cost_tiny(tmp_path) -> None:
    reuse = connection_reuse.run(True, log=lambda _: None, n=2, m=2)
    assert reuse.data["summary"]["engine"]["connections"] <= 4
    cost = cost_per_call.run(True, log=lambda _: None, tasks=5)
    assert cost.data["ratio"] > 0


@pytest.mark.timeout(60)
def test_soak_tiny_runs_come_and_go() -> None:
    res = scale.run(True, log=lambda _: None, n=3, m=1, warmup=1, soak=2, long_s=2, latency=0.01, eval_time=0.02)
    soak, long = res.data["soak"], res.data["long"]
    assert soak["runs_done"] > soak["n"], soak          # slots started new runs after old ones finished
    assert soak["outcomes"].get("finished", 0) >= soak["n"] and soak["tasks_done"] > 0
    assert soak["threads_end"] <= soak["threads_after_warmup"] + soak["n"]  # no thread per finished run
    assert soak["lag_p99_ms"] >= 0 and soak["rss_end_mb"] > 0
    assert long["tasks_done"] > 10 and long["bytes_per_task"] == long["bytes_per_task"]  # a number
    assert {t.name.split(":")[0] for t in res.targets} >= {"one long run"}


def test_cli_rejects_unknown_benchmark(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nope"])


async def test_state_files_tiny(tmp_path) -> None:
    res = await state_files.trial(tmp_path, 2, 3)
    assert (res["n"], res["m"]) == (2, 3) and res["wait_ms_median"] > 0 and res["cpu_ms_per_commit"] > 0
    for run in ("run0", "run1"):  # the commits timed are real: every view holds them once the runs close
        finished = json.loads((tmp_path / run / "checkpoint.json").read_text())["finished"]
        assert list(finished) == ["t-0", "t-1", "t-2"]


async def test_shared_backoff_tiny() -> None:
    res = await shared_backoff.trial(True, 6)
    assert res["calls"] == 12 and res["failed"] == 0 and res["requests"] >= 12
    assert res["rate_limited"] == res["retries"]       # every 429 the simulator sent was retried once
    assert res["busiest_second"] >= 1 and res["wall_s"] > 0


@pytest.mark.timeout(60)
def test_workers_tiny_overlaps_the_tasks_of_one_run() -> None:
    res = workers.run(True, log=lambda _: None, tasks=6, workers=(1, 4), latency=0.05, jitter=0.0, eval_time=0.05)
    by = res.data["by_workers"]
    assert by["1"]["done"] == by["4"]["done"] == 6
    assert by["4"]["wall_s"] < by["1"]["wall_s"]  # the tasks overlapped
    assert 0 < by["4"]["efficiency"] and by["4"]["speedup"] > 1
    assert [t.name for t in res.targets] == ["speedup at workers=4"]


@pytest.mark.timeout(90)
def test_tui_lag_tiny_every_line_reaches_its_pane() -> None:
    from benchmarks import tui_lag

    res = asyncio.run(tui_lag.main(1.0, 200, 2))
    assert res["lines_sent"] > 0 and res["lines_in_logs"] == res["lines_sent"], res  # below the cap: all kept
    assert res["last_lines_match"], res  # each log ends with the last line sent to its run
    assert res["lag_p99_ms"] >= 0 and 0 < res["loop_cpu_share"]
