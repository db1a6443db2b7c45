"""LLMClient against a real scripted endpoint on loopback."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from typing import Any

import pytest
from pydantic import SecretStr

from awm_tui.config.models import HttpConfig, LLMProfile
from awm_tui.engine.http import RunMetrics
from awm_tui.engine.llm import (
    LLMAuthError,
    LLMClient,
    LLMCreditsError,
    LLMError,
    LLMFatalError,
)
from awm_tui.engine.llm.retry import parse_ratelimit_reset, parse_retry_after
from tests.plugins.http_peers import ScriptedChat, answer, drop, ok, stall

KEY = "sk-or-v1-" + "0123456789abcdef" * 3 + "0123456789abab12"
MASKED = "sk-or-v1-…ab12"


def profile(peer: ScriptedChat, **kw: Any) -> LLMProfile:
    fields: dict[str, Any] = dict(
        model="openrouter/moonshotai/kimi-k2", base_url=peer.base_url, num_retries=3,
        retry_min_wait=0.01, retry_max_wait=0.02, retry_multiplier=0.01, timeout=5.0)
    fields.update(kw)
    return LLMProfile(**fields)


def client(peer: ScriptedChat, metrics: RunMetrics | None = None, **kw: Any) -> LLMClient:
    return LLMClient(profile(peer, **kw), api_key=SecretStr(KEY), http=HttpConfig(),
                     metrics=metrics or RunMetrics(), run_name="run1")


MESSAGES = [{"role": "user", "content": "hi"}]


async def test_request_shape_and_result(chat_peer: ScriptedChat) -> None:
    chat_peer.then(ok("patched", prompt_tokens=100, completion_tokens=20, cost=0.0123))
    async with client(chat_peer, max_output_tokens=256, temperature=0.3) as llm:
        result = await llm.chat(MESSAGES)
    sent = chat_peer.requests[0]
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "moonshotai/kimi-k2", "messages": MESSAGES,
                         "temperature": 0.3, "top_p": 1.0, "max_tokens": 256}
    assert result.content == "patched"
    assert (result.prompt_tokens, result.completion_tokens, result.retries) == (100, 20, 0)
    assert result.cost == pytest.approx(0.0123)
    assert result.model == "moonshotai/kimi-k2"
    assert result.latency_s > 0


async def test_cost_from_prices_and_tokens_accumulate(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    chat_peer.then(ok(prompt_tokens=1000, completion_tokens=100),
                   ok(prompt_tokens=500, completion_tokens=50, cost=0.5))
    async with client(chat_peer, metrics, input_cost_per_token=1e-6,
                      output_cost_per_token=4e-6) as llm:
        first = await llm.chat(MESSAGES)
        second = await llm.chat(MESSAGES, purpose="induction")
    assert first.cost == pytest.approx(1000 * 1e-6 + 100 * 4e-6)
    assert second.cost == pytest.approx(0.5)       # the provider's figure wins
    snap = metrics.snapshot()
    assert (snap.prompt_tokens, snap.completion_tokens) == (1500, 150)
    assert snap.cost == pytest.approx(0.5014)
    assert snap.llm_latency_p50 is not None and snap.llm_latency_p95 is not None
    assert (snap.requests, snap.connections_created, snap.connections_reused) == (2, 1, 1)


async def test_429_retry_after_seconds_is_honoured(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    chat_peer.then(answer(429, {"error": {"message": "slow down", "code": 429}},
                          {"Retry-After": "1"}))
    # retry_max_wait is far below the server's ask: the ask still wins.
    async with client(chat_peer, metrics) as llm:
        result = await llm.chat(MESSAGES)
    first, second = chat_peer.requests
    assert second.at - first.at >= 1.0
    assert result.retries == 1
    snap = metrics.snapshot()
    assert (snap.retries, snap.rate_limited, snap.errors, snap.requests) == (1, 1, 1, 2)


async def test_a_run_of_429s_spends_no_retry(chat_peer: ScriptedChat) -> None:
    """Issue 12.7: a rate limit is waited out; only other failures spend num_retries."""
    for _ in range(6):
        chat_peer.then(answer(429, {"error": {"message": "slow down", "code": 429}}, {"Retry-After": "0"}))
    async with client(chat_peer, num_retries=1) as llm:
        result = await llm.chat(MESSAGES)
    assert result.retries == 6 and len(chat_peer.requests) == 7


async def test_429s_do_not_lift_the_bound_on_other_errors(chat_peer: ScriptedChat) -> None:
    for status in (429, 500, 429, 500, 429):
        chat_peer.then(answer(status, {"error": {"message": "busy", "code": status}}, {"Retry-After": "0"}))
    async with client(chat_peer, num_retries=1) as llm:
        with pytest.raises(LLMError) as info:
            await llm.chat(MESSAGES)
    assert info.value.status == 500 and len(chat_peer.requests) == 4


async def test_429_retry_after_http_date(chat_peer: ScriptedChat) -> None:
    target = math.ceil(time.time() + 0.2)          # HTTP dates have 1 s resolution
    chat_peer.then(answer(429, {"error": {"message": "later"}},
                          {"Retry-After": email.utils.formatdate(target, usegmt=True)}))
    async with client(chat_peer) as llm:
        result = await llm.chat(MESSAGES)
    assert chat_peer.requests[1].at >= target - 0.05
    assert result.retries == 1


async def test_429_x_ratelimit_reset_epoch_ms(chat_peer: ScriptedChat) -> None:
    reset_ms = int((time.time() + 0.4) * 1000)     # OpenRouter sends epoch milliseconds
    chat_peer.then(answer(429, {"error": {"message": "rate"}},
                          {"X-RateLimit-Reset": str(reset_ms)}))
    async with client(chat_peer) as llm:
        await llm.chat(MESSAGES)
    assert chat_peer.requests[1].at >= reset_ms / 1000 - 0.05


def test_wait_header_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after("soon") is None
    assert parse_ratelimit_reset(str(int((now + 12) * 1000)), now=now) == pytest.approx(12)
    assert parse_ratelimit_reset(str(now + 5), now=now) == pytest.approx(5)
    assert parse_ratelimit_reset("20", now=now) == 20.0
    assert parse_ratelimit_reset("6m0s", now=now) == 360.0
    assert parse_ratelimit_reset("250ms", now=now) == 0.25
    assert parse_ratelimit_reset(str(int(now - 100)), now=now) == 0.0   # already past
    assert parse_ratelimit_reset("garbage", now=now) is None


async def test_5xx_twice_then_ok(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    chat_peer.then(answer(500, {"error": {"message": "boom"}}), answer(502, "Bad gateway"))
    async with client(chat_peer, metrics) as llm:
        result = await llm.chat(MESSAGES)
    assert result.retries == 2
    snap = metrics.snapshot()
    assert (snap.retries, snap.errors, snap.requests, snap.rate_limited) == (2, 2, 3, 0)


async def test_dropped_connection_on_post_is_retried(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    chat_peer.then(drop(), drop())
    async with client(chat_peer, metrics) as llm:
        result = await llm.chat(MESSAGES)
        assert result.retries == 2 and result.content == "done"
    assert len(chat_peer.requests) == 3
    assert metrics.snapshot().errors == 2


async def test_timeout_is_retried(chat_peer: ScriptedChat) -> None:
    chat_peer.then(stall(1.0, ok("late")))
    async with client(chat_peer, timeout=0.2) as llm:
        result = await llm.chat(MESSAGES)
    assert (result.content, result.retries) == ("done", 1)


async def test_error_body_with_200_is_retried(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    chat_peer.then(answer(200, {"error": {"message": "upstream overloaded"}}),
                   answer(200, {"id": "x", "choices": []}))
    async with client(chat_peer, metrics) as llm:
        result = await llm.chat(MESSAGES)
    assert result.retries == 2
    assert metrics.snapshot().errors == 2


async def test_persistent_error_body_gives_llm_error(chat_peer: ScriptedChat) -> None:
    bad = answer(200, {"error": {"message": "provider returned error"}})
    chat_peer.then(*[bad] * 10)
    async with client(chat_peer, num_retries=2) as llm:
        with pytest.raises(LLMError) as info:
            await llm.chat(MESSAGES)
    err = info.value
    assert not isinstance(err, LLMFatalError)
    assert err.retries == 2 and len(chat_peer.requests) == 3
    assert "provider returned error" in str(err) and "\n" not in str(err)


async def test_exhausted_5xx_reports_status(chat_peer: ScriptedChat) -> None:
    chat_peer.then(*[answer(503, {"error": {"message": "no provider"}})] * 5)
    async with client(chat_peer, num_retries=1) as llm:
        with pytest.raises(LLMError) as info:
            await llm.chat(MESSAGES)
    assert info.value.status == 503 and info.value.retries == 1
    assert str(info.value).startswith("agent call failed after 1 retry: server error (HTTP 503: no provider)")


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_is_fatal_and_masks_key(chat_peer: ScriptedChat, status: int) -> None:
    metrics = RunMetrics()
    # A provider that echoes the key back must not get it into our message.
    chat_peer.then(answer(status, {"error": {"message": f"No auth for {KEY}", "code": status}}))
    async with client(chat_peer, metrics) as llm:
        with pytest.raises(LLMAuthError) as info:
            await llm.chat(MESSAGES)
        assert KEY not in repr(llm)
    err = info.value
    assert isinstance(err, LLMFatalError)
    assert len(chat_peer.requests) == 1 and err.retries == 0
    assert ("invalid API key" if status == 401 else "access denied for API key") in str(err)
    assert MASKED in str(err)
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in str(err.args)
    assert metrics.snapshot().retries == 0


async def test_403_for_a_flagged_prompt_fails_the_request_not_the_run(chat_peer: ScriptedChat) -> None:
    chat_peer.then(answer(403, {"error": {"code": 403, "message": "Your chosen model requires moderation "
                                          "and your input was flagged", "metadata": {"reasons": ["x"]}}}))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMError, match="refused by moderation") as info:
            await llm.chat(MESSAGES)
    assert not isinstance(info.value, LLMFatalError)  # the next task may be fine
    assert info.value.status == 403 and len(chat_peer.requests) == 1


async def test_402_is_out_of_credits(chat_peer: ScriptedChat) -> None:
    chat_peer.then(answer(402, {"error": {"message": "Insufficient credits", "code": 402}}))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMCreditsError, match="out of credits") as info:
            await llm.chat(MESSAGES)
    assert isinstance(info.value, LLMFatalError) and len(chat_peer.requests) == 1


async def test_auth_error_inside_a_200_body(chat_peer: ScriptedChat) -> None:
    chat_peer.then(answer(200, {"error": {"message": "User not found.", "code": 401}}))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMAuthError):
            await llm.chat(MESSAGES)
    assert len(chat_peer.requests) == 1


async def test_other_4xx_is_not_retried(chat_peer: ScriptedChat) -> None:
    chat_peer.then(answer(400, {"error": {"message": "context length exceeded"}}))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMError, match="context length exceeded") as info:
            await llm.chat(MESSAGES)
    assert not isinstance(info.value, LLMFatalError)
    assert info.value.status == 400 and len(chat_peer.requests) == 1


async def test_close_releases_every_connection(chat_peer: ScriptedChat) -> None:
    metrics = RunMetrics()
    llm = client(chat_peer, metrics)
    await llm.chat(MESSAGES)
    assert metrics.snapshot().connections_open == 1
    await llm.aclose()
    assert metrics.snapshot().connections_open == 0
    with pytest.raises(RuntimeError):
        await llm.chat(MESSAGES)


def test_plain_string_key_is_refused() -> None:
    with pytest.raises(TypeError) as info:
        LLMClient(LLMProfile(), api_key=KEY, http=HttpConfig(), metrics=RunMetrics())  # type: ignore[arg-type]
    assert KEY not in str(info.value)


async def test_parallel_runs_keep_their_own_key_pool_and_metrics(chat_peer: ScriptedChat) -> None:
    other_key = "sk-or-v1-" + "f" * 60 + "cd34"
    m1, m2 = RunMetrics(), RunMetrics()
    one = client(chat_peer, m1)
    two = LLMClient(profile(chat_peer), api_key=SecretStr(other_key), http=HttpConfig(),
                    metrics=m2, run_name="run2")
    async with one, two:
        await asyncio.gather(*(c.chat(MESSAGES) for c in (one, two, one, two, one)))
    keys = sorted(r.headers["Authorization"] for r in chat_peer.requests)
    assert keys == sorted([f"Bearer {KEY}"] * 3 + [f"Bearer {other_key}"] * 2)
    assert (m1.snapshot().requests, m2.snapshot().requests) == (3, 2)
    assert m1.snapshot().connections_open == m2.snapshot().connections_open == 0
