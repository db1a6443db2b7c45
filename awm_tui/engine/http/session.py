"""aiohttp sessions with pool limits, sane timeouts and telemetry.

Two sources feed a `RunMetrics`:

- a `TraceConfig` counts requests, error answers, 429s and connections created or
  reused. Its per-request context names the `RunMetrics` to charge, so one session
  can serve several runs: `session.post(url, trace_request_ctx={"metrics": m})`
  (or `trace_request_ctx=m`) charges run `m`; without it the session's own metrics.
- `TelemetryConnector` counts *open* connections from the transports themselves
  (the protocol's `connection_made` / `connection_lost`), so the figure is what the
  OS sees: a trace hook cannot observe a keep-alive socket closed by the server or
  by the pool's idle clean-up. Open connections belong to the pool, so they are
  charged to the session's own metrics, never to a run passed per request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from awm_tui.config.models import HttpConfig
from awm_tui.engine.http.metrics import RunMetrics


def host_key(url: Any) -> str:
    """`host[:port]` as shown per host (default ports omitted), from a yarl URL."""
    return url.raw_authority or url.raw_host or "?"


class _CountedHandler(ResponseHandler):
    """aiohttp's response protocol, reporting when its transport opens and closes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: RunMetrics) -> None:
        super().__init__(loop)
        self._awm_metrics = metrics
        self._awm_counted = False
        self._awm_host: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._awm_counted:
            self._awm_counted = True
            self._awm_metrics.record_connection_opened(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._awm_forget()
        super().connection_lost(exc)

    def _awm_attribute(self, host: str) -> None:
        if self._awm_counted and self._awm_host is None:
            self._awm_host = host
            self._awm_metrics.attribute_open(host)

    def _awm_forget(self) -> None:
        if self._awm_counted:
            self._awm_counted = False
            self._awm_metrics.record_connection_closed(self._awm_host)


class TelemetryConnector(aiohttp.TCPConnector):
    """A `TCPConnector` whose protocols count open transports into `metrics`."""

    def __init__(self, *, metrics: RunMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        # Every transport the connector opens (direct, happy-eyeballs winner,
        # proxy tunnel, TLS wrap) is built from this factory (aiohttp 3.14 internals;
        # tests/test_http_metrics.py checks the count against the OS on upgrades).
        self._factory = functools.partial(  # type: ignore[assignment]  # a ResponseHandler subclass
            _CountedHandler, loop=self._loop, metrics=metrics)

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> ResponseHandler:
        proto = await super()._create_connection(req, traces, timeout)
        if isinstance(proto, _CountedHandler):
            proto._awm_attribute(host_key(req.url))
        return proto

    async def _start_tls_connection(self, underlying_transport: asyncio.Transport,
                                    *args: Any, **kwargs: Any) -> Any:
        # TLS through a proxy: the raw protocol hands its socket to the TLS one and
        # never hears connection_lost, so stop counting it once the wrap succeeds.
        raw = underlying_transport.get_protocol()
        result = await super()._start_tls_connection(underlying_transport, *args, **kwargs)
        if isinstance(raw, _CountedHandler):
            raw._awm_forget()
        return result


class _RequestTrace:
    """Per-request trace context: which metrics to charge, and the request's host."""

    __slots__ = ("metrics", "host")

    def __init__(self, metrics: RunMetrics) -> None:
        self.metrics = metrics
        self.host = "?"


def _context_factory(default: RunMetrics):
    def factory(trace_request_ctx: Any = None) -> _RequestTrace:
        metrics = default
        if isinstance(trace_request_ctx, RunMetrics):
            metrics = trace_request_ctx
        elif isinstance(trace_request_ctx, Mapping):
            found = trace_request_ctx.get("metrics")
            if isinstance(found, RunMetrics):
                metrics = found
        return _RequestTrace(metrics)
    return factory


def make_trace_config(pool_metrics: RunMetrics) -> aiohttp.TraceConfig:
    """Trace hooks charging each request to its run (or `pool_metrics`)."""
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_context_factory(pool_metrics))

    async def on_request_start(_s: Any, ctx: Any, params: Any) -> None:
        ctx.host = host_key(params.url)
        ctx.metrics.record_request()

    async def on_request_end(_s: Any, ctx: Any, params: Any) -> None:
        ctx.metrics.record_response(params.response.status)

    async def on_request_exception(_s: Any, ctx: Any, params: Any) -> None:
        ctx.metrics.record_error()

    async def on_connection_create_end(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.metrics.record_connection_created(ctx.host)
        if ctx.metrics is not pool_metrics:   # the pool's own view stays complete
            pool_metrics.record_connection_created(ctx.host)

    async def on_connection_reuseconn(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.metrics.record_connection_reused(ctx.host)
        if ctx.metrics is not pool_metrics:
            pool_metrics.record_connection_reused(ctx.host)

    config.on_request_start.append(on_request_start)
    config.on_request_end.append(on_request_end)
    config.on_request_exception.append(on_request_exception)
    config.on_connection_create_end.append(on_connection_create_end)
    config.on_connection_reuseconn.append(on_connection_reuseconn)
    return config


def make_timeout(http: HttpConfig) -> aiohttp.ClientTimeout:
    """The configured timeouts (never aiohttp's 300 s total default)."""
    return aiohttp.ClientTimeout(total=http.total, connect=http.connect, sock_read=http.sock_read)


def make_session(
    http: HttpConfig,
    metrics: RunMetrics | None,
    *,
    headers: Mapping[str, str] | None = None,
    base_url: str | None = None,
    trust_env: bool = False,
) -> aiohttp.ClientSession:
    """A pooled, traced session; call inside the running loop, close it on every path.

    `metrics` receives the pool's figures and every request not charged to a run
    through `trace_request_ctx`; None gives the session private metrics, readable
    as `session_metrics(session)`. `trust_env` honours HTTP(S)_PROXY / NO_PROXY but
    also reads ~/.netrc in a thread on every request: prefer a per-request `proxy=`.
    """
    pool_metrics = metrics if metrics is not None else RunMetrics()
    connector = TelemetryConnector(
        metrics=pool_metrics,
        limit=http.limit,
        limit_per_host=http.limit_per_host,
    )
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=connector,
        timeout=make_timeout(http),
        headers=dict(headers) if headers else None,
        trace_configs=[make_trace_config(pool_metrics)],
        trust_env=trust_env,
    )


def session_metrics(session: aiohttp.ClientSession) -> RunMetrics | None:
    """The metrics a session made by `make_session` charges by default."""
    connector = session.connector
    return connector.metrics if isinstance(connector, TelemetryConnector) else None
