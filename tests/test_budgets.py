"""Hard budgets over whole runs: task (`max_cost`), run, key and fleet, checked before
each call against the simulated model's own per-key accounting (what it charged).

Real peers: the simulated model on loopback, local sandboxes, local evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from awm_tui.config.keys import mask_key
from awm_tui.config.models import AppConfig, EvalConfig, FleetConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, RunFinished, SpendUpdated, TaskFinished
from awm_tui.engine.fleet import Fleet
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import subset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

IDS = ["minicsv__minicsv-3", "minicsv__minicsv-7", "textkit__textkit-4", "textkit__textkit-9"]
PRICES = dict(price_prompt=2e-6, price_completion=8e-6)
KEY_A = SecretStr("sim-budget-key-alpha-000011112222")
KEY_B = SecretStr("sim-budget-key-beta-0000333344445")


def profile(sim: SimLLMServer, **kw: Any) -> LLMProfile:
    fields: dict[str, Any] = dict(model="awm-sim", base_url=sim.url, label="simulated", timeout=30, num_retries=2,
                                  retry_min_wait=0.05, retry_max_wait=0.2, max_output_tokens=1000,
                                  input_cost_per_token=2e-6, output_cost_per_token=8e-6)
    fields.update(kw)
    return LLMProfile(**fields)


def a_run(tmp_path: Path, name: str, **kw: Any) -> RunConfig:
    fields: dict[str, Any] = dict(name=name, llm="llm.sim", output_dir=tmp_path / name, limit=len(IDS),
                                  dataset=str(subset(tmp_path, "four", IDS)), sandbox="local",
                                  induction="rule", command_timeout=60)
    fields.update(kw)
    return RunConfig(**fields)


def charged(sim: SimLLMServer, key: SecretStr) -> float:
    """USD the simulator's own account of the key (`sim_keys`) charged."""
    return sim.stats()["keys"].get(mask_key(key), {}).get("usage", 0.0)


async def run_fleet(config: AppConfig, keys: dict[str, SecretStr], events: list[Event]) -> dict:
    async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
        for run in config.runs:
            await fleet.start(resolve_run(config, run, api_key=keys[run.name]))
        return await fleet.wait()


def checkpointed(out: Path) -> dict[str, Any]:
    return json.loads((out / "checkpoint.json").read_text())["finished"]


@pytest.mark.parametrize("workers", [1, 2])
async def test_run_budget_stops_the_run_and_a_higher_budget_resumes(tmp_path: Path, workers: int) -> None:
    """With two tasks in flight (workers = 2) their calls reserve on one run ledger too."""
    async with SimLLMServer(SimOptions(seed=3, **PRICES)) as sim:
        limit = {1: 0.03, 2: 0.04}[workers]   # room for a task to finish while the other spends too
        run = a_run(tmp_path, "capped", budget=limit, workers=workers)
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        events: list[Event] = []
        outcome = (await run_fleet(config, {"capped": KEY_A}, events))["capped"]
        first = charged(sim, KEY_A)

        assert outcome.status == "stopped" and outcome.reason.startswith(f"budget reached: run budget ${limit:.4f} (capped): $")
        assert 0 < first <= limit                 # never above it, as the provider counted
        assert 0 < outcome.done < len(IDS)        # stopped part-way, what was done is kept
        done = checkpointed(run.output_dir)
        assert len(done) == outcome.done
        finished = [e for e in events if isinstance(e, RunFinished)]
        assert finished[-1].stopped and finished[-1].reason == outcome.reason
        spend = [e for e in events if isinstance(e, SpendUpdated)][-1]
        assert spend.run_spend.limit == limit and spend.run_spend.spent == pytest.approx(first)

        # The same budget again: the checkpointed spend counts, so it stops at once or soon.
        # A higher one continues from the task in flight and finishes.
        bigger = RunConfig.model_validate({**run.model_dump(), "budget": 1.0})
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[bigger], eval=EvalConfig(mode="local"))
        events = []
        resumed = (await run_fleet(config, {"capped": KEY_A}, events))["capped"]
        assert resumed.status == "finished" and resumed.done == len(IDS), resumed
        assert set(done) <= set(checkpointed(run.output_dir))
        started = {e.instance_id for e in events if isinstance(e, TaskFinished)}
        assert started == set(IDS) - set(done)    # the checkpointed ones were not redone
        assert charged(sim, KEY_A) <= 1.0


async def test_fleet_budget_across_two_runs(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=4, **PRICES)) as sim:
        runs = [a_run(tmp_path, "one"), a_run(tmp_path, "two")]
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=runs, eval=EvalConfig(mode="local"),
                           fleet=FleetConfig(budget=0.04))
        events: list[Event] = []
        outcomes = await run_fleet(config, {"one": KEY_A, "two": KEY_B}, events)
        total = charged(sim, KEY_A) + charged(sim, KEY_B)
    assert total <= 0.04                        # both runs' calls together, in flight at once
    assert charged(sim, KEY_A) > 0 and charged(sim, KEY_B) > 0
    for outcome in outcomes.values():
        assert outcome.status == "stopped" and outcome.reason.startswith("budget reached: fleet budget"), outcome
    last = [e for e in events if isinstance(e, SpendUpdated)][-1]
    assert last.fleet_spend.limit == 0.04 and last.fleet_spend.spent == pytest.approx(total)


async def test_key_budget_shared_by_two_runs_on_one_key(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=5, **PRICES)) as sim:
        runs = [a_run(tmp_path, "left"), a_run(tmp_path, "right")]
        config = AppConfig(llm={"llm.sim": profile(sim, key_budget=0.03)}, runs=runs, eval=EvalConfig(mode="local"))
        events: list[Event] = []
        outcomes = await run_fleet(config, {"left": KEY_A, "right": KEY_A}, events)
        spent = charged(sim, KEY_A)
        assert spent <= 0.03
    assert {o.status for o in outcomes.values()} == {"stopped"}
    assert all(o.reason.startswith("budget reached: key budget") for o in outcomes.values())
    # One count of the key's spend (its KeyState's ledger), whichever run reports it.
    last = [e.key_spend for e in events if isinstance(e, SpendUpdated) and e.key_spend is not None][-1]
    assert last.limit == 0.03 and last.spent == pytest.approx(spent)


async def test_task_max_cost_is_never_crossed(tmp_path: Path) -> None:
    """Before, the check came after each call, so the call that crossed max_cost was made."""
    async with SimLLMServer(SimOptions(seed=6, **PRICES)) as sim:
        run = a_run(tmp_path, "tight", max_cost=0.006, limit=2)
        config = AppConfig(llm={"llm.sim": profile(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        events: list[Event] = []
        outcome = (await run_fleet(config, {"tight": KEY_A}, events))["tight"]
    assert outcome.status == "finished"
    finished = [e for e in events if isinstance(e, TaskFinished)]
    assert finished and all(e.cost <= 0.006 for e in finished)
    assert {e.exit_status for e in finished} == {"CostLimit"}
