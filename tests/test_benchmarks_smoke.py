"""The benchmarks must not rot: run the quick ones at a tiny size (well under a minute)."""

from __future__ import annotations

import asyncio
import json

import pytest

from awm_tui.engine import protocol
from awm_tui.engine.agent import PATCH_COMMAND
from benchmarks import concurrency, connection_reuse, cost_per_call
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


@pytest.mark.timeout(60)
def test_concurrency_tiny_runs_all_three_contenders() -> None:
    res = concurrency.run(True, log=lambda _: None, ns=(2,), m=1)
    summary = res.data["summary"]
    for name in ("engine", "before", "terminals"):
        row = summary[f"{name}@2"]
        assert row["resolved"] == 2, row          # every task evaluated and resolved
        assert row["wall_s"] > 0 and row["efficiency"] > 0
    # the engine's 2 runs overlap; 'before' takes turns
    assert summary["before@2"]["wall_s"] > summary["engine@2"]["wall_s"]
    assert summary["before@2"]["connections"] == summary["before@2"]["requests"]


@pytest.mark.timeout(60)
def test_reuse_and_cost_tiny(tmp_path) -> None:
    reuse = connection_reuse.run(True, log=lambda _: None, n=2, m=2)
    assert reuse.data["summary"]["engine"]["connections"] <= 4
    cost = cost_per_call.run(True, log=lambda _: None, tasks=5)
    assert cost.data["ratio"] > 0


def test_cli_rejects_unknown_benchmark(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
