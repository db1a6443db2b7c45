"""Live control of running runs through the Fleet: a budget changed while the run goes, and
a run's no-memory twin following its pause, resume, limit and workers (not its budget).

Real peers: the simulated model on loopback (its own per-key accounting), local sandboxes,
local evaluation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from awm_tui.config.models import AppConfig, EvalConfig
from awm_tui.config.plan import resolve_pair, resolve_run
from awm_tui.engine.events import Event, LLMCall, LogLine, RunControlled, SpendUpdated
from awm_tui.engine.fleet import Fleet
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_budgets import IDS, KEY_A, PRICES, a_run, charged, profile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def until(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_budget_lowered_below_the_spend_stops_the_run_at_its_next_call(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=3, latency=0.1, **PRICES)) as sim:
        run = a_run(tmp_path, "lowered")
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        events: list[Event] = []
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY_A))
            awm = fleet.handles[run.name].awm
            await until(lambda: awm.checkpoint.done >= 1, "a first task done")
            with pytest.raises(ValueError):
                fleet.set_budget(run.name, 0)
            assert not fleet.set_budget("no-such-run", 1.0)
            ledger = awm.budget.get("run") if awm.budget else None
            assert ledger is not None and ledger.limit is None
            lowered = ledger.spent / 2
            mark = len(events)
            assert fleet.set_budget(run.name, lowered)
            outcome = (await fleet.wait())[run.name]
    assert outcome.status == "stopped" and outcome.reason.startswith(f"budget reached: run budget ${lowered:.4f}")
    assert outcome.done < len(IDS)
    after = events[mark:]
    spend = next(e for e in after if isinstance(e, SpendUpdated))
    assert spend.run_spend.limit == lowered      # what the pane's spend line shows at once
    said = [e.message for e in after if isinstance(e, LogLine) and e.level == "warning"]
    assert any(m.startswith(f"budget set to ${lowered:.4f}, below the $") and "stops at its next model call" in m
               for m in said), said
    # One worker: the call in flight when the budget fell ends, no other is made.
    assert len([e for e in after if isinstance(e, LLMCall)]) <= 1


async def test_a_budget_raised_while_the_run_goes_lets_it_finish(tmp_path: Path) -> None:
    """0.03 stops this run part-way (test_budgets); raised to 1.0 as it starts, it finishes."""
    async with SimLLMServer(SimOptions(seed=3, latency=0.1, **PRICES)) as sim:
        run = a_run(tmp_path, "raised", budget=0.03)
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        events: list[Event] = []
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY_A))
            assert fleet.set_budget(run.name, 1.0)
            outcome = (await fleet.wait())[run.name]
    assert outcome.status == "finished" and outcome.done == len(IDS), outcome
    assert 0.03 < charged(sim, KEY_A) <= 1.0
    assert [e for e in events if isinstance(e, SpendUpdated)][-1].run_spend.limit == 1.0


async def test_the_twin_follows_its_runs_pause_resume_limit_and_workers(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=4, latency=0.2, **PRICES)) as sim:
        run = a_run(tmp_path, "paired", twin=True)
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        events: list[Event] = []
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            for resolved in resolve_pair(config, run, api_key=KEY_A):
                await fleet.start(resolved)
            own, twin = fleet.handles["paired"].awm, fleet.handles["paired-nomem"].awm
            await until(lambda: own.in_flight and twin.in_flight, "both runs under way")
            assert fleet.pause("paired")
            assert twin.control.paused and own.control.paused
            await until(lambda: not own.in_flight and not twin.in_flight, "both paused runs to drain")
            limit = max(own.checkpoint.done, twin.checkpoint.done) + 1
            assert limit <= len(IDS)
            assert fleet.set_limit("paired", limit) and fleet.set_workers("paired", 2)
            assert (twin.control.limit, twin.control.workers) == (limit, 2)
            assert fleet.set_budget("paired", 5.0)  # the twin's spend is its own: not followed
            twin_ledger = twin.budget.get("run") if twin.budget else None
            assert twin_ledger is not None and twin_ledger.limit is None
            assert fleet.resume("paired")
            outcomes = await fleet.wait()
    assert {name: (o.status, o.done) for name, o in outcomes.items()} == {
        "paired": ("finished", limit), "paired-nomem": ("finished", limit)}
    for name in ("paired", "paired-nomem"):
        controls = [(e.paused, e.limit, e.workers) for e in events if isinstance(e, RunControlled) and e.run == name]
        assert controls == [(True, len(IDS), 1), (True, limit, 1), (True, limit, 2), (False, limit, 2)], name
