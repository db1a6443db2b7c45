"""Traced sessions and RunMetrics against a real loopback server and the OS socket table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from awm_tui.config.models import HttpConfig
from awm_tui.engine.http import RunMetrics, TelemetryConnector, make_session, session_metrics
from awm_tui.engine.http.metrics import LATENCY_WINDOW
from tests.plugins.http_peers import JsonPeer

OSCount = Callable[[int], Awaitable[int]]


async def get(session: aiohttp.ClientSession, url: str, **kw: object) -> int:
    async with session.get(url, **kw) as resp:   # type: ignore[arg-type]
        await resp.read()
        return resp.status


async def test_session_settings() -> None:
    http = HttpConfig(limit=30, limit_per_host=7, total=1234.0, connect=9.0, sock_read=77.0)
    session = make_session(http, None)
    try:
        assert isinstance(session.connector, TelemetryConnector)
        assert (session.connector.limit, session.connector.limit_per_host) == (30, 7)
        assert (session.timeout.total, session.timeout.connect, session.timeout.sock_read) == (1234.0, 9.0, 77.0)
        assert isinstance(session_metrics(session), RunMetrics)
    finally:
        await session.close()


async def test_sequential_requests_reuse_one_connection(json_peer: JsonPeer, os_connections: OSCount) -> None:
    metrics = RunMetrics()
    session = make_session(HttpConfig(), metrics)
    try:
        for _ in range(200):
            assert await get(session, json_peer.url()) == 200
        snap = metrics.snapshot()
        assert snap.requests == 200 and snap.errors == 0
        assert snap.connections_created == 1 and snap.connections_reused == 199
        assert snap.connections_open == 1 == await os_connections(json_peer.port)
        (host,) = snap.per_host
        assert host.host == f"127.0.0.1:{json_peer.port}"
        assert (host.open, host.created, host.reused) == (1, 1, 199)
    finally:
        await session.close()
    assert metrics.snapshot().connections_open == 0
    assert metrics.snapshot().per_host[0].open == 0
    assert await os_connections(json_peer.port) == 0


async def test_pool_limit_matches_the_os(json_peer: JsonPeer, os_connections: OSCount) -> None:
    metrics = RunMetrics()
    session = make_session(HttpConfig(limit=100, limit_per_host=5), metrics)
    seen_os: list[int] = []
    seen_ours: list[int] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            seen_os.append(await os_connections(json_peer.port))
            seen_ours.append(metrics.connections_open)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        url = json_peer.url() + "?delay=0.02"
        for _ in range(3):
            statuses = await asyncio.gather(*(get(session, url) for _ in range(20)))
            assert statuses == [200] * 20
            # A quiet point: nothing in flight, the pool holds its idle connections.
            assert metrics.snapshot().connections_open == await os_connections(json_peer.port) == 5
    finally:
        done.set()
        await sampler
        await session.close()
    assert len(seen_os) > 5
    assert max(seen_os) <= 5 and max(seen_ours) <= 5 and json_peer.max_active <= 5
    snap = metrics.snapshot()
    assert snap.connections_created == 5 and snap.connections_reused == 55
    assert snap.connections_open == 0 == await os_connections(json_peer.port)


async def test_server_closing_idle_connections_is_seen(
        short_keepalive_peer: JsonPeer, os_connections: OSCount) -> None:
    # No trace hook fires when the server drops an idle keep-alive socket; the
    # transport count must still follow the OS.
    metrics = RunMetrics()
    session = make_session(HttpConfig(), metrics)
    try:
        await asyncio.gather(*(get(session, short_keepalive_peer.url() + "?delay=0.02") for _ in range(3)))
        assert metrics.connections_open == 3
        for _ in range(100):
            if metrics.connections_open == 0:
                break
            await asyncio.sleep(0.02)
        assert metrics.connections_open == 0 == await os_connections(short_keepalive_peer.port)
        assert await get(session, short_keepalive_peer.url()) == 200   # a fresh one is made
        assert metrics.connections_open == 1 and metrics.connections_created == 4
    finally:
        await session.close()


async def test_shared_session_charges_each_run(json_peer: JsonPeer) -> None:
    fleet, run_a, run_b = RunMetrics(), RunMetrics(), RunMetrics()
    session = make_session(HttpConfig(), fleet)
    try:
        await get(session, json_peer.url(), trace_request_ctx={"metrics": run_a})
        await get(session, json_peer.url(), trace_request_ctx={"metrics": run_a})
        await get(session, json_peer.url() + "?status=503", trace_request_ctx=run_b)
        await get(session, json_peer.url())
    finally:
        await session.close()
    a, b, f = run_a.snapshot(), run_b.snapshot(), fleet.snapshot()
    assert (a.requests, a.errors, a.connections_created, a.connections_reused) == (2, 0, 1, 1)
    assert (b.requests, b.errors, b.connections_created, b.connections_reused) == (1, 1, 0, 1)
    assert (f.requests, f.errors) == (1, 0)
    # The pool's own view covers every connection event; open ones are the pool's.
    assert (f.connections_created, f.connections_reused) == (1, 3)
    assert a.connections_open == b.connections_open == f.connections_open == 0


async def test_error_answers_and_refused_connections_count(json_peer: JsonPeer, unused_tcp_port: int) -> None:
    metrics = RunMetrics()
    session = make_session(HttpConfig(), metrics)
    try:
        assert await get(session, json_peer.url() + "?status=429") == 429
        assert await get(session, json_peer.url() + "?status=500") == 500
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(session, f"http://127.0.0.1:{unused_tcp_port}/")
    finally:
        await session.close()
    snap = metrics.snapshot()
    assert (snap.requests, snap.errors, snap.rate_limited) == (3, 3, 1)
    assert snap.connections_open == 0


def test_latency_window_is_bounded_and_percentiles() -> None:
    metrics = RunMetrics()
    assert metrics.snapshot().llm_latency_p50 is None
    for i in range(1, 101):
        metrics.record_llm(float(i), prompt_tokens=1, completion_tokens=2, cost=0.01)
    snap = metrics.snapshot()
    assert (snap.llm_latency_p50, snap.llm_latency_p95) == (50.0, 95.0)
    assert (snap.prompt_tokens, snap.completion_tokens) == (100, 200)
    assert snap.cost == pytest.approx(1.0)
    for _ in range(10 * LATENCY_WINDOW):
        metrics.record_llm(1.0)
    assert len(metrics._latencies) == LATENCY_WINDOW
    assert metrics.snapshot().llm_latency_p95 == 1.0


def test_evaluations_per_minute_is_a_rolling_window() -> None:
    now = [1000.0]
    metrics = RunMetrics(clock=lambda: now[0])
    for _ in range(6):
        metrics.record_evaluation(2.5)
        now[0] += 5.0                      # six evaluations over 30 s
    assert metrics.snapshot().evaluations_per_minute == 6.0
    now[0] += 50.0                         # 60 s back from 1080: only 1020 and 1025 remain
    snap = metrics.snapshot()
    assert snap.evaluations == 6 and snap.evaluations_per_minute == 2.0
    now[0] += 120.0
    assert metrics.snapshot().evaluations_per_minute == 0.0


def test_evaluation_rate_beyond_the_sample_cap_is_extrapolated() -> None:
    now = [0.0]
    metrics = RunMetrics(clock=lambda: now[0])
    for _ in range(10_000):                # 10 000 per 10 s = 60 000 per minute
        metrics.record_evaluation()
        now[0] += 0.001
    assert len(metrics._eval_times) < 10_000
    assert metrics.snapshot().evaluations_per_minute == pytest.approx(60_000, rel=0.01)
