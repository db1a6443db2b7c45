"""What a call costs (provider's figure, or tokens × prices with the cache priced apart),
prompt caching breakpoints, and the budget check made before each call.

Real peers: the simulated model (its per-key accounting is what it charged) and a
scripted endpoint for reply shapes the simulator does not send.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from awm_tui.config.keys import mask_key
from awm_tui.config.models import HttpConfig, LLMProfile
from awm_tui.engine.http import RunMetrics
from awm_tui.engine.llm import LLMClient
from awm_tui.engine.llm.budget import Budget, BudgetReached, Ledger
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.plugins.http_peers import ScriptedChat, answer

KEY = SecretStr("sk-sim-cost-key-0123456789abcdef")
SYSTEM = {"role": "system", "content": "You are a careful engineer. " * 40}
TASK = {"role": "user", "content": "Fix the bug in minicsv. " * 40}


def client(base_url: str, **kw: Any) -> LLMClient:
    fields: dict[str, Any] = dict(model="awm-sim", base_url=base_url, num_retries=0, timeout=10)
    fields.update(kw)
    return LLMClient(LLMProfile(**fields), api_key=KEY, http=HttpConfig(), metrics=RunMetrics(), run_name="r")


def charged(sim: SimLLMServer) -> dict[str, Any]:
    """The simulator's own account of the key (`sim_keys`): `usage` is what it charged."""
    return sim.stats()["keys"][mask_key(KEY)]


async def test_reported_cost_overrides_token_prices() -> None:
    async with SimLLMServer(SimOptions()) as sim:
        # Profile prices a thousand times the simulator's: the provider's usage.cost wins.
        async with client(sim.url, input_cost_per_token=1e-4, output_cost_per_token=4e-4) as llm:
            result = await llm.chat([SYSTEM, TASK])
        assert result.cost == pytest.approx(charged(sim)["usage"])
        assert result.cost < result.prompt_tokens * 1e-4


async def test_a_keys_spend_is_counted_once_whatever_chain_a_call_is_charged_to() -> None:
    """The key's ledger is its KeyState's: a client's own chain, a task's chain and a chain
    given without it all settle there, once per call."""
    async with SimLLMServer(SimOptions()) as sim:
        async with client(sim.url) as llm:
            await llm.chat([SYSTEM, TASK])
            await llm.chat([SYSTEM, TASK], budget=llm.budget.with_task(1.0, "t"))
            await llm.chat([SYSTEM, TASK], budget=Budget(Ledger("run", "other", None)))
        assert llm.budget.get("key") is llm.key.ledger
        assert llm.key.spent == pytest.approx(charged(sim)["usage"]) and llm.key.spent > 0


async def test_cached_tokens_priced_at_the_cache_price() -> None:
    options = SimOptions(prompt_cache=True, report_cost=False, price_prompt=3e-6, price_completion=1.5e-5,
                         price_cache_read=3e-7, price_cache_write=3.75e-6)
    async with SimLLMServer(options) as sim:
        metrics = RunMetrics()
        profile = LLMProfile(model="openrouter/anthropic/claude-sonnet-4", base_url=sim.url, num_retries=0,
                             input_cost_per_token=3e-6, output_cost_per_token=1.5e-5,
                             cache_read_input_token_cost=3e-7, cache_creation_input_token_cost=3.75e-6)
        async with LLMClient(profile, api_key=KEY, http=HttpConfig(), metrics=metrics, run_name="r") as llm:
            first = await llm.chat([SYSTEM, TASK])
            second = await llm.chat([SYSTEM, TASK, {"role": "assistant", "content": first.content},
                                     {"role": "user", "content": "exit code 0"}])
    assert first.cached_tokens == 0
    # The system message and the task were marked as breakpoints, so the second call read them back.
    assert second.cached_tokens >= (len(SYSTEM["content"]) + len(TASK["content"])) // 4
    assert metrics.cached_tokens == second.cached_tokens
    # Priced by us (no usage.cost) exactly as the provider charged: cached tokens at the cache price.
    assert first.cost + second.cost == pytest.approx(charged(sim)["usage"])
    assert second.cache_saving == pytest.approx(second.cached_tokens * (3e-6 - 3e-7))


async def test_caching_prompt_off_sends_no_breakpoints() -> None:
    async with SimLLMServer(SimOptions(prompt_cache=True)) as sim:
        async with client(sim.url, model="openrouter/anthropic/claude-sonnet-4", caching_prompt=False) as llm:
            await llm.chat([SYSTEM, TASK])
            second = await llm.chat([SYSTEM, TASK])
    assert second.cached_tokens == 0


async def test_anthropic_usage_shape(chat_peer: ScriptedChat) -> None:
    """Anthropic's counts via a litellm-style proxy: input tokens without the cache."""
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "cache_read_input_tokens": 900,
             "cache_creation_input_tokens": 0}
    chat_peer.then(answer(200, {"choices": [{"message": {"role": "assistant", "content": "ok"}}], "usage": usage}))
    async with client(chat_peer.base_url, input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                      cache_read_input_token_cost=1e-7) as llm:
        result = await llm.chat([TASK])
    assert (result.prompt_tokens, result.cached_tokens) == (1000, 900)
    assert result.cost == pytest.approx(100 * 1e-6 + 900 * 1e-7 + 10 * 2e-6)


async def test_call_that_could_cross_a_budget_is_not_made() -> None:
    async with SimLLMServer(SimOptions(price_prompt=1e-5, price_completion=4e-5)) as sim:
        run = Ledger("run", "r", limit=0.05)
        async with client(sim.url, input_cost_per_token=1e-5, output_cost_per_token=4e-5,
                          max_output_tokens=500) as llm:
            llm.budget = Budget(run)
            calls = 0
            with pytest.raises(BudgetReached) as refused:
                while True:
                    await llm.chat([SYSTEM, TASK])
                    calls += 1
        requests = sim.stats()["requests"]
    assert refused.value.scope == "run" and calls == requests >= 2
    assert charged(sim)["usage"] == pytest.approx(run.spent) and run.spent <= 0.05
    assert run.reserved == 0


async def test_calls_in_flight_together_do_not_overshoot() -> None:
    """Each call reserves its worst cost before it is sent: four at once on a budget for
    about two make two, the rest are refused without a request."""
    async with SimLLMServer(SimOptions(latency=0.3, price_prompt=1e-5, price_completion=4e-5)) as sim:
        fleet = Ledger("fleet", "", limit=0.06)
        async with client(sim.url, input_cost_per_token=1e-5, output_cost_per_token=4e-5,
                          max_output_tokens=500) as llm:
            llm.budget = Budget(fleet)
            worst = llm.estimators["agent"].worst(sum(len(m["content"]) + 16 for m in (SYSTEM, TASK)))
            assert 2 * worst <= 0.06 < 3 * worst
            results = await asyncio.gather(*(llm.chat([SYSTEM, TASK]) for _ in range(4)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BudgetReached)]
    assert len(refused) == 2 and sim.stats()["requests"] == 2
    assert charged(sim)["usage"] == pytest.approx(fleet.spent) and fleet.spent <= 0.06


async def test_without_prices_the_last_calls_cost_bounds_the_next() -> None:
    """No prices in the profile: the provider's reported costs, scaled by how much the
    prompt grew, keep a growing conversation within its budget, whatever the budget."""
    async with SimLLMServer(SimOptions(price_prompt=1e-5, price_completion=4e-5)) as sim:
        for cents in range(3, 12):
            sim.reset_stats()
            run = Ledger("run", "r", limit=cents / 100)
            async with client(sim.url) as llm:
                llm.budget = Budget(run)
                messages = [SYSTEM, TASK]
                with pytest.raises(BudgetReached):
                    for _ in range(100):
                        reply = await llm.chat(messages)
                        messages = messages + [{"role": "assistant", "content": reply.content},
                                               {"role": "user", "content": "exit 0\n" + "output line\n" * 300}]
            assert sim.stats()["requests"] >= 2
            assert charged(sim)["usage"] == pytest.approx(run.spent) and run.spent <= run.limit


def test_sim_flags_for_the_cache_and_the_cost() -> None:
    from awm_tui.servers.sim_llm import _parser, options_from_args

    options = options_from_args(_parser().parse_args(["--prompt-cache", "--no-cost", "--no-sample"]))
    assert options.prompt_cache and not options.report_cost
    assert not options_from_args(_parser().parse_args(["--no-sample"])).prompt_cache


def test_a_restarted_run_is_not_counted_twice_against_the_fleet(tmp_path) -> None:
    from awm_tui.config.models import AppConfig, FleetConfig, RunConfig
    from awm_tui.engine.llm.budget import FleetBudgets

    from awm_tui.engine.llm.keyhealth import KeyState

    budgets = FleetBudgets(AppConfig(fleet=FleetConfig(budget=1.0)))
    key = KeyState(KEY).ledger
    run = RunConfig(name="a", output_dir=tmp_path / "a")
    first = budgets.for_run(run, key, spent_before=0.30, where=str(run.output_dir))
    first.reserve(0.1).settle(0.08)            # this session: 0.08 more, checkpointed or not
    assert budgets.fleet.spent == pytest.approx(0.38)
    # Started again in the same process: its checkpoint now says 0.36 (one task's spend was lost).
    again = budgets.for_run(run, key, spent_before=0.36, where=str(run.output_dir))
    assert budgets.fleet.spent == pytest.approx(0.38) and again.get("run").spent == pytest.approx(0.36)
    other = RunConfig(name="b", output_dir=tmp_path / "b")
    budgets.for_run(other, key, spent_before=0.02, where=str(other.output_dir))
    assert budgets.fleet.spent == pytest.approx(0.40)
    assert key.spent == pytest.approx(0.08)   # the same key: one ledger
