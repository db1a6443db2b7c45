"""Per-key health over loopback: shared backoff, adaptive in-flight calls, credits,
and rate-limit starvation as a task error, with the simulator's own ledger as the judge."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from awm_tui.config.keys import key_identity, mask_key
from awm_tui.config.models import AppConfig, HttpConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import CreditsLow, Event, KeyHealth, TaskFinished
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.llm import LLMClient, LLMFatalError
from awm_tui.engine.llm.keyhealth import KeyRegistry, KeyState, offers_key_endpoint
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

KEY = SecretStr("sk-or-v1-" + "c" * 64)
MESSAGES = [{"role": "user", "content": "hello"}]


def profile_for(sim: SimLLMServer, **overrides: object) -> LLMProfile:
    fields = dict(model="awm-sim", base_url=sim.url, label="simulated", timeout=30,
                  num_retries=3, retry_min_wait=0.05, retry_max_wait=0.2)
    fields.update(overrides)
    return LLMProfile(**fields)  # type: ignore[arg-type]


def runs_on(tmp_path: Path, names: list[str], **fields: object) -> list[RunConfig]:
    base: dict[str, object] = dict(llm="llm.sim", limit=2, sandbox="local", skip_eval=True, command_timeout=60)
    base.update(fields)
    return [RunConfig(name=n, output_dir=tmp_path / n, **base) for n in names]  # type: ignore[arg-type]


async def run_fleet(config: AppConfig, events: list[Event], key: SecretStr = KEY) -> dict:
    async with Fleet(config, events.append, metrics_interval=0.1) as fleet:
        for run in config.runs:
            await fleet.start(resolve_run(config, run, api_key=key))
        return await fleet.wait()


def peak_rate(times: list[float], window: float = 1.0) -> int:
    """Most requests that arrived within any `window` seconds."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the shared state itself -----------------------------------------------------------------

async def test_a_429_on_one_client_holds_the_other_clients_on_the_key():
    """Two clients (two runs) on one key: the Retry-After one of them is told is the other's too."""
    async with SimLLMServer(SimOptions(datasets=(), key_rate_limit=2)) as sim:
        profile = profile_for(sim, num_retries=5)
        state = KeyState(KEY)
        first = LLMClient(profile, api_key=KEY, http=HttpConfig(), metrics=RunMetrics(), key_state=state)
        second = LLMClient(profile, api_key=KEY, http=HttpConfig(), metrics=RunMetrics(), key_state=state)
        async with first, second:
            await first.chat(MESSAGES)                   # the window's two requests
            await first.chat(MESSAGES)
            limited = asyncio.create_task(first.chat(MESSAGES))   # 429, Retry-After ~1 s
            while state.rate_limited == 0:
                await asyncio.sleep(0.01)
            held = state.retry_after_s()
            hold_ends = time.time() + held
            await second.chat(MESSAGES)                  # waits the hold out
            await limited
        account = sim.stats()["keys"][mask_key(KEY)]
    assert held > 0.5
    first_429 = account["limited_at"][0]
    during_hold = [t for t in account["arrivals"] if first_429 < t < hold_ends - 0.05]
    assert during_hold == [], "a call on the held key went out before its Retry-After"
    assert state.limit == 1 and state.in_flight == 0


async def test_in_flight_calls_halve_on_429_and_grow_back_by_one_after_successes():
    state = KeyState(KEY, max_in_flight=8, grow_quiet_s=0.2)
    for _ in range(6):
        await state.acquire()
    state.release(429)
    assert state.limit == 3                      # six in flight together: halved to three
    state.release(429)
    assert state.limit == 3                      # the same burst shrinks once
    for _ in range(4):
        state.release(ok=True)
    for _ in range(10):
        await state.acquire()
        state.release(ok=True)
    assert state.limit == 3                      # successes right after a 429 do not grow it
    await asyncio.sleep(0.25)
    for _ in range(5):
        await state.acquire()
        state.release(ok=True)
    assert state.limit == 4 and state.in_flight == 0
    for _ in range(100):
        await state.acquire()
        state.release(ok=True)
    assert state.limit == 8                      # never past the cap


# -- runs sharing one key ------------------------------------------------------------------------

async def test_two_runs_on_one_rate_limited_key_stay_within_the_limit(tmp_path: Path):
    """4 requests/s allowed; replies take 0.3 s, so two runs calling at once go over it
    and one call at a time does not. Without the shared state each run waits out only
    its own 429s: 9 requests in a second and 29% of them refused, where shared backoff
    keeps to 4 + the one refused request that tells it, and under 10% refused."""
    limit = 4.0
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=1, latency=0.3, key_rate_limit=limit)) as sim:
        runs = runs_on(tmp_path, ["left", "right"], limit=2)
        config = AppConfig(llm={"llm.sim": profile_for(sim, num_retries=2)}, runs=runs)
        outcomes = await run_fleet(config, events)
        account = sim.stats()["keys"][mask_key(KEY)]

    for outcome in outcomes.values():
        assert (outcome.status, outcome.done, outcome.errors) == ("finished", 2, 0), outcome
    assert account["rate_limited"] >= 1, "the simulator never rate-limited: the test proves nothing"
    after = [t for t in account["arrivals"] if t >= account["limited_at"][0]]
    assert len(after) >= 8, after
    assert peak_rate(after) <= limit + 1, f"{peak_rate(after)} requests in one second (limit {limit:g})"
    assert account["rate_limited"] <= len(account["arrivals"]) * 0.2, account
    health = [e for e in events if isinstance(e, KeyHealth)]
    assert health and health[-1].identity == key_identity(KEY) and set(health[-1].runs) == {"left", "right"}
    assert health[-1].rate_limited == account["rate_limited"]
    assert any(e.retry_after_s > 0 for e in health)



async def test_a_paced_key_meets_no_429(tmp_path: Path):
    """The same two runs on a 4 requests/s key as above, with the profile's
    `requests_per_minute = 210` (3.5/s): the calls of both runs are spaced on the key, so
    the provider refuses none of them and no second holds more than the limit."""
    limit = 4.0
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=1, latency=0.3, key_rate_limit=limit)) as sim:
        runs = runs_on(tmp_path, ["left", "right"], limit=2)
        config = AppConfig(llm={"llm.sim": profile_for(sim, num_retries=2, requests_per_minute=210)}, runs=runs)
        outcomes = await run_fleet(config, events)
        account = sim.stats()["keys"][mask_key(KEY)]

    for outcome in outcomes.values():
        assert (outcome.status, outcome.done, outcome.errors) == ("finished", 2, 0), outcome
    assert len(account["arrivals"]) >= 8, account
    assert account["rate_limited"] == 0, account
    assert peak_rate(account["arrivals"]) <= limit
    gaps = [b - a for a, b in zip(account["arrivals"], account["arrivals"][1:])]
    assert min(gaps) > 60 / 210 - 0.05, gaps


def test_the_smallest_key_budget_asked_for_a_key_wins():
    profiles = [LLMProfile(model="m", key_budget=2.0), LLMProfile(model="m"), LLMProfile(model="m", key_budget=0.5)]
    state = KeyState(KEY)
    clients = [LLMClient(p, api_key=KEY, http=HttpConfig(), metrics=RunMetrics(), key_state=state) for p in profiles]
    assert state.ledger.limit == 0.5 and all(c.budget.get("key") is state.ledger for c in clients)


async def test_the_slowest_pace_asked_for_a_key_wins():
    state = KeyState(KEY)
    state.pace(600)
    state.pace(60)
    state.pace(None)
    await state.acquire()
    state.release(ok=True)
    assert state.interval == 1.0 and 0.9 < state.pacing_s() <= 1.0

async def test_a_429_storm_over_three_runs_costs_no_task(tmp_path: Path):
    """Three runs of two workers each on one key, half the calls 429: six tasks in flight
    share the key's hold and in-flight limit, and none is lost."""
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=5, rate_429=0.5, retry_after=0.02)) as sim:
        runs = runs_on(tmp_path, ["one", "two", "three"], limit=2, workers=2)
        config = AppConfig(llm={"llm.sim": profile_for(sim, num_retries=1, retry_min_wait=0.01,
                                                        retry_max_wait=0.02)}, runs=runs)
        outcomes = await run_fleet(config, events)
        per_key = sim.stats()["by_key"][mask_key(KEY)]
    assert per_key["status"].get("429", 0) >= 10, per_key
    for outcome in outcomes.values():
        assert (outcome.status, outcome.done, outcome.errors) == ("finished", 2, 0), outcome
    assert not [e for e in events if isinstance(e, TaskFinished) and e.outcome is Outcome.ERROR]


async def test_a_task_starved_by_rate_limits_is_an_llm_error_not_a_result(tmp_path: Path):
    """Every call is 429 for longer than the task may take: before, the task ended
    `TimeLimit` with an empty patch and was checkpointed as a 0; now it is a task error
    (not checkpointed), so a rerun retries it. Two workers: each task's own calls decide."""
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=2, rate_429=1.0, retry_after=0.3)) as sim:
        runs = runs_on(tmp_path, ["starved"], limit=2, workers=2, task_timeout=1.0)
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs)
        outcome = (await run_fleet(config, events))["starved"]
    assert (outcome.done, outcome.errors) == (0, 2), outcome
    finished = [e for e in events if isinstance(e, TaskFinished)]
    assert [(e.outcome, e.error_kind) for e in finished] == [(Outcome.ERROR, ErrorKind.LLM)] * 2
    assert all("rate limited" in e.error and KEY.get_secret_value() not in e.error for e in finished)


# -- credits -------------------------------------------------------------------------------------------

async def test_credits_are_read_and_a_warning_comes_before_they_run_out(tmp_path: Path):
    """$1.00005 of credit: not low at start (the threshold is $1); the run's own spend,
    taken off between reads, brings it below: one CreditsLow, and KeyHealth says low."""
    events: list[Event] = []
    async with SimLLMServer(SimOptions(seed=1, key_credit_limit=1.00005)) as sim:
        runs = runs_on(tmp_path, ["spender"], limit=1)
        config = AppConfig(llm={"llm.sim": profile_for(sim, key_endpoint=True)}, runs=runs)
        outcome = (await run_fleet(config, events))["spender"]
        account = sim.stats()["keys"][mask_key(KEY)]
    assert outcome.status == "finished"
    health = [e for e in events if isinstance(e, KeyHealth) and e.credits_checked_at is not None]
    assert health and health[0].credits_limit == pytest.approx(1.00005)
    assert not health[0].credits_low
    assert health[-1].credits_low
    assert health[-1].credits_remaining == pytest.approx(account["limit_remaining"], abs=1e-9)
    low = [e for e in events if isinstance(e, CreditsLow)]
    assert len(low) == 1 and low[0].masked == mask_key(KEY) and low[0].runs == ("spender",)
    assert all(KEY.get_secret_value() not in repr(e) for e in events)


async def test_an_endpoint_without_key_info_is_asked_once_and_left_alone(aiohttp_server):
    asked: list[str] = []

    async def not_found(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/v1/key", not_found)
    server = await aiohttp_server(app)
    events: list[Event] = []
    profile = LLMProfile(model="m", base_url=str(server.make_url("/v1")), key_endpoint=True)
    async with KeyRegistry(events.append, HttpConfig(), interval=0.05, credits_every=0.05) as registry:
        state = registry.state_for(KEY, profile, "r")
        await asyncio.sleep(0.3)
    assert asked == ["/v1/key"]
    assert state.credits is None and state.refused is None
    assert not [e for e in events if isinstance(e, CreditsLow)]


def test_only_openrouter_or_a_profile_that_says_so_is_asked_for_credits():
    assert offers_key_endpoint(LLMProfile(model="openrouter/moonshotai/kimi-k2"))
    assert offers_key_endpoint(LLMProfile(model="x", base_url="https://openrouter.ai/api/v1/"))
    assert not offers_key_endpoint(LLMProfile(model="openai/gpt-4o"))
    assert not offers_key_endpoint(LLMProfile(model="x", base_url="http://127.0.0.1:8900/v1"))
    assert offers_key_endpoint(LLMProfile(model="x", base_url="http://127.0.0.1:8900/v1", key_endpoint=True))
    assert not offers_key_endpoint(LLMProfile(model="openrouter/x", key_endpoint=False))


async def test_a_keys_first_call_waits_for_its_first_credits_read(aiohttp_server):
    """The credits are known before anything is spent on the key, so a key already low
    warns first; a slow /key endpoint (0.3 s here) holds the first call, not later ones."""
    async def key_info(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response({"data": {"label": "k", "limit": 1.0, "limit_remaining": 0.5, "usage": 0.5}})

    app = web.Application()
    app.router.add_get("/v1/key", key_info)
    server = await aiohttp_server(app)
    profile = LLMProfile(model="m", base_url=str(server.make_url("/v1")), key_endpoint=True)
    async with KeyRegistry(lambda event: None, HttpConfig(), interval=0.05) as registry:
        state = registry.state_for(KEY, profile, "r")
        await state.acquire()
        assert state.credits is not None and state.credits_low  # read before the first call went
        state.release(200, ok=True)


# -- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("secret", "says"), [("sk-invalid-" + "d" * 40, "invalid API key"),
                                              ("sk-nocredit-" + "e" * 40, "out of credits")])
async def test_a_key_wide_refusal_fails_the_keys_other_calls_without_asking(secret: str, says: str):
    """A 401 (bad key) or 402 (no credits) met by one run's call holds for the key: the
    other runs' calls on it fail at once with the same reason, and the provider is asked
    once. A run that starts on the key afterwards asks again (it may have been fixed)."""
    key = SecretStr(secret)
    async with SimLLMServer(SimOptions(datasets=())) as sim:
        profile = profile_for(sim)
        async with KeyRegistry(lambda event: None, HttpConfig()) as registry:
            state = registry.state_for(key, profile, "first")
            clients = [LLMClient(profile, api_key=key, http=HttpConfig(), metrics=RunMetrics(), key_state=state)
                       for _ in range(3)]
            errors = []
            for llm in clients:
                async with llm:
                    with pytest.raises(LLMFatalError) as raised:
                        await llm.chat(MESSAGES)
                errors.append(raised.value)
            asked = sim.stats()["by_key"][mask_key(key)]["requests"]
            registry.state_for(key, profile, "later")
            async with LLMClient(profile, api_key=key, http=HttpConfig(), metrics=RunMetrics(),
                                 key_state=state) as llm:
                with pytest.raises(LLMFatalError):
                    await llm.chat(MESSAGES)
            asked_later = sim.stats()["by_key"][mask_key(key)]["requests"]
    assert asked == 1, f"the provider was asked {asked} times for one refused key"
    assert all(says in str(e) and secret not in str(e) for e in errors), errors
    assert asked_later == 2


async def test_a_403_is_not_taken_for_the_whole_key():
    """A 403 may be one model's access: the key's other calls still ask."""
    state = KeyState(KEY)
    state.refuse(403, "access denied for API key … (HTTP 403)")
    await state.acquire()
    state.release(ok=True)
    assert state.refused is None
