"""`stream = true`: replies as server-sent events, against real peers on loopback.

A streamed reply adds up to what the one-piece reply says; abandoning one (timeout or
cancel) closes the connection, which a streaming server notices at its next chunk and
stops (llama.cpp's non-streaming handler never does: tests/test_real_model.py); each chunk
is progress for the stall watchdog.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, HttpConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.http import RunMetrics
from awm_tui.engine.llm import LLMClient, LLMError
from awm_tui.engine.watchdog import watched
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for

KEY = SecretStr("sim-stream-key-0000-2222")
ASK = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "## Task\ninstance_id: minicsv__minicsv-3\nFix the bug."}]


def client(url: str, **fields: object) -> LLMClient:
    profile = LLMProfile(**{"model": "awm-sim", "base_url": url, "timeout": 30, "num_retries": 0,
                            **fields})  # type: ignore[arg-type]
    return LLMClient(profile, api_key=KEY, http=HttpConfig(), metrics=RunMetrics(), run_name="stream")


@pytest.mark.parametrize("max_tokens", [None, 16])
async def test_a_streamed_reply_adds_up_to_the_plain_one(max_tokens: int | None) -> None:
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        async with client(sim.url, max_output_tokens=max_tokens) as plain, \
                client(sim.url, max_output_tokens=max_tokens, stream=True) as streamed:
            one = await plain.chat(ASK)
            other = await streamed.chat(ASK)
    assert len(one.content) > 48  # more than one chunk, so the pieces were joined
    assert (other.content, other.prompt_tokens, other.completion_tokens, other.model, other.finish_reason) == \
        (one.content, one.prompt_tokens, one.completion_tokens, one.model, one.finish_reason)
    assert other.finish_reason == ("length" if max_tokens else "stop")


async def test_a_run_with_streamed_replies_resolves_its_task(tmp_path: Path) -> None:
    async with SimLLMServer(SimOptions(seed=1)) as sim:
        run = RunConfig(name="streamed", llm="llm.sim", output_dir=tmp_path / "out", limit=1, sandbox="local",
                        induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim, stream=True)}, runs=[run], eval=EvalConfig(mode="local"))
        async with Fleet(config, lambda event: None) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())["streamed"]
    assert outcome.status == "finished" and (outcome.done, outcome.resolved) == (1, 1), outcome


@dataclass
class Dribble:
    """Streams one content chunk every `every` seconds, `chunks` of them (0: forever)."""

    every: float
    chunks: int = 0
    written: int = 0
    gone_after: list[float] = field(default_factory=list)
    """Seconds from the request to the server failing to write: it saw the client go."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while not self.chunks or self.written < self.chunks:
                event = {"model": "dribble", "choices": [{"index": 0, "delta": {"content": "x"},
                                                          "finish_reason": None}]}
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
                self.written += 1
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
                await asyncio.sleep(self.every)
            done = {"model": "dribble", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (ConnectionResetError, OSError):
            self.gone_after.append(time.monotonic() - started)
        return response


@pytest.fixture
async def dribble() -> AsyncIterator[tuple[Dribble, str]]:
    peer = Dribble(every=0.2)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", peer.chat)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield peer, f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


async def test_a_timed_out_stream_is_closed_and_the_server_stops(dribble: tuple[Dribble, str]) -> None:
    peer, url = dribble
    async with client(url, stream=True, timeout=1.0) as llm:
        with pytest.raises(LLMError, match="no reply within 1s"):
            await llm.chat(ASK)
        for _ in range(40):
            if peer.gone_after:
                break
            await asyncio.sleep(0.05)
    assert peer.gone_after and peer.gone_after[0] < 2.0, peer.gone_after
    assert peer.written <= 10  # it stopped at the close, not at some later limit


async def test_each_streamed_chunk_is_progress_for_the_watchdog(dribble: tuple[Dribble, str]) -> None:
    """A reply that takes 2 s, a chunk every 0.2 s, outlives a 0.6 s stall_timeout."""
    peer, url = dribble
    peer.chunks = 10
    async with client(url, stream=True) as llm:
        reply = await watched(llm.chat(ASK), 0.6)
    assert reply.content == "x" * 10 and reply.finish_reason == "stop"


async def test_a_stream_without_usage_is_estimated_and_priced() -> None:
    """llama-cpp-python streams no usage, even when asked: the tokens are estimated from
    characters and priced, so the pane's tokens and every budget still count the call."""
    async with SimLLMServer(SimOptions(seed=3, stream_usage=False, report_cost=False)) as sim:
        async with client(sim.url) as plain, \
                client(sim.url, stream=True, input_cost_per_token=1e-5, output_cost_per_token=2e-5) as streamed:
            counted = await plain.chat(ASK)
            reply = await streamed.chat(ASK)
    assert not counted.usage_estimated and reply.usage_estimated
    assert reply.content == counted.content
    assert reply.completion_tokens == -(-len(reply.content) // 4)
    assert 0.5 * counted.prompt_tokens <= reply.prompt_tokens <= 2 * counted.prompt_tokens
    assert reply.cost == pytest.approx(reply.prompt_tokens * 1e-5 + reply.completion_tokens * 2e-5)
