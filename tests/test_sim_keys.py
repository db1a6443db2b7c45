"""The simulated model's per-key accounts over real HTTP: rate limit, credit limit,
OpenRouter's GET /api/v1/key, and the ledger in its stats."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest

from awm_tui.config.keys import mask_key
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions, options_from_args, _parser

KEY_A = "sk-or-v1-" + "a" * 64
KEY_B = "sk-or-v1-" + "b" * 64
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def chat(session: aiohttp.ClientSession, url: str, key: str) -> tuple[int, dict[str, str], dict]:
    async with session.post(url + "/chat/completions", json={"model": "m", "messages": MESSAGES},
                            headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def key_info(session: aiohttp.ClientSession, url: str, key: str) -> tuple[int, dict]:
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, await resp.json()


async def test_a_key_over_its_rate_gets_429_with_retry_after_others_do_not(session):
    async with SimLLMServer(SimOptions(datasets=(), key_rate_limit=3)) as srv:
        a = await asyncio.gather(*(chat(session, srv.url, KEY_A) for _ in range(5)))
        b = await asyncio.gather(*(chat(session, srv.url, KEY_B) for _ in range(3)))
        statuses = sorted(s for s, _, _ in a)
        assert statuses == [200, 200, 200, 429, 429]
        waits = [float(h["Retry-After"]) for s, h, _ in a if s == 429]
        assert all(0 < w <= 1.0 for w in waits)
        assert [s for s, _, _ in b] == [200, 200, 200]   # limits are per key
        await asyncio.sleep(max(waits))
        assert (await chat(session, srv.url, KEY_A))[0] == 200   # waiting as told is enough
        keys = srv.stats()["keys"]
    account = keys[mask_key(KEY_A)]
    assert account["rate_limited"] == 2 and len(account["arrivals"]) == 6 and len(account["limited_at"]) == 2
    assert keys[mask_key(KEY_B)]["rate_limited"] == 0


async def test_replies_draw_the_credit_limit_down_then_402(session):
    async with SimLLMServer(SimOptions(datasets=(), key_credit_limit=1e-5)) as srv:
        url = srv.base_url + "/api/v1/key"
        status, before = await key_info(session, url, KEY_A)
        assert status == 200 and before["data"]["limit"] == 1e-5 and before["data"]["usage"] == 0
        assert before["data"]["label"] == mask_key(KEY_A) and KEY_A not in str(before)
        spent, replies = 0.0, 0
        while True:
            status, _, body = await chat(session, srv.url, KEY_A)
            if status != 200:
                break
            spent += body["usage"]["cost"]
            replies += 1
        assert status == 402 and replies >= 1 and spent >= 1e-5
        _, after = await key_info(session, srv.url + "/key", KEY_A)   # under the chat base URL too
        assert after["data"]["usage"] == pytest.approx(spent)
        assert after["data"]["limit_remaining"] == 0
        account = srv.stats()["keys"][mask_key(KEY_A)]
        assert account["usage"] == pytest.approx(spent) and account["replies"] == replies
        assert account["out_of_credit"] == 1
        # Another key has its own credit.
        assert (await chat(session, srv.url, KEY_B))[0] == 200


async def test_key_endpoint_refuses_a_bad_key_and_shows_unlimited_as_null(session):
    async with SimLLMServer(SimOptions(datasets=())) as srv:
        status, _ = await key_info(session, srv.url + "/key", "sk-invalid-key-123456")
        assert status == 401
        status, body = await key_info(session, srv.url + "/key", KEY_A)
        assert status == 200 and body["data"]["limit"] is None and body["data"]["limit_remaining"] is None


async def test_reset_stats_clears_the_accounts(session):
    async with SimLLMServer(SimOptions(datasets=(), key_credit_limit=1.0)) as srv:
        await chat(session, srv.url, KEY_A)
        assert srv.stats()["keys"][mask_key(KEY_A)]["usage"] > 0
        srv.reset_stats()
        assert srv.stats()["keys"] == {}


def test_cli_flags_set_the_key_options():
    options = options_from_args(_parser().parse_args(["--key-rate-limit", "2.5", "--key-credit-limit", "0.25"]))
    assert options.key_rate_limit == 2.5 and options.key_credit_limit == 0.25
    default = options_from_args(_parser().parse_args([]))
    assert default.key_rate_limit == 0 and default.key_credit_limit is None


async def test_cli_serves_the_key_endpoint(session):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui.servers.sim_llm", "--port", "0", "--no-sample",
        "--key-credit-limit", "2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.split(" on ", 1)[1].strip()
        status, body = await key_info(session, url + "/key", KEY_A)
        assert status == 200 and body["data"]["limit"] == 2 and body["data"]["limit_remaining"] == 2
    finally:
        proc.kill()
        await proc.wait()
