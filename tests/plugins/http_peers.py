"""Real HTTP peers on loopback: a scripted chat-completions endpoint and a plain
JSON server, plus a psutil count of this process's sockets to a port."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from aiohttp import web

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Recorded:
    headers: dict[str, str]
    body: Any
    at: float
    """time.time() when the request arrived."""


def completion(content: str = "done", *, prompt_tokens: int = 10, completion_tokens: int = 5,
               cost: float | None = None, model: str = "moonshotai/kimi-k2") -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}
    if cost is not None:
        usage["cost"] = cost
    return {"id": "gen-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage}


def ok(content: str = "done", **kwargs: Any) -> Reply:
    return answer(200, completion(content, **kwargs))


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    async def reply(_request: web.Request) -> web.StreamResponse:
        text = body if isinstance(body, str) else json.dumps(body if body is not None else {})
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)
    return reply


def drop() -> Reply:
    """Close the connection without answering (a reset / stale keep-alive)."""
    async def reply(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError  # nothing left to answer on
    return reply


def stall(seconds: float, then: Reply) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(request)
    return reply


class ScriptedChat:
    """An OpenAI-compatible `/v1/chat/completions` answering from a script.

    Replies are used in order; once the script runs out every call gets `ok()`.
    """

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.server: Any = None

    def then(self, *replies: Reply) -> ScriptedChat:
        self.script.extend(replies)
        return self

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/v1"))

    @property
    def port(self) -> int:
        return self.server.port

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(Recorded(dict(request.headers), body, time.time()))
        reply = self.script.popleft() if self.script else ok()
        return await reply(request)


@pytest.fixture
async def chat_peer(aiohttp_server: Any) -> ScriptedChat:
    peer = ScriptedChat()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", peer.handle)
    peer.server = await aiohttp_server(app)
    return peer


class JsonPeer:
    """`GET /ok?delay=s&status=n`: answers JSON after `delay`; tracks concurrency."""

    def __init__(self) -> None:
        self.server: Any = None
        self.active = 0
        self.max_active = 0

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, path: str = "/ok") -> str:
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            delay = float(request.query.get("delay", "0"))
            if delay:
                await asyncio.sleep(delay)
            status = int(request.query.get("status", "200"))
            return web.json_response({"ok": status < 400}, status=status)
        finally:
            self.active -= 1


async def _json_peer(aiohttp_server: Any, **server_kwargs: Any) -> JsonPeer:
    peer = JsonPeer()
    app = web.Application()
    app.router.add_get("/ok", peer.handle)
    peer.server = await aiohttp_server(app, **server_kwargs)
    return peer


@pytest.fixture
async def json_peer(aiohttp_server: Any) -> JsonPeer:
    return await _json_peer(aiohttp_server)


@pytest.fixture
async def short_keepalive_peer(aiohttp_server: Any) -> JsonPeer:
    """Closes idle keep-alive connections after 0.2 s, as real servers do."""
    return await _json_peer(aiohttp_server, keepalive_timeout=0.2)


def established_to(port: int) -> int:
    """ESTABLISHED TCP sockets of this process whose remote end is `port` (client side)."""
    return sum(
        1 for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.fixture
def os_connections() -> Callable[[int], Awaitable[int]]:
    """Async count of ESTABLISHED client sockets to a port (psutil off the loop)."""
    async def count(port: int) -> int:
        return await asyncio.to_thread(established_to, port)
    return count
