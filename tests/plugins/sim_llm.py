"""Fixtures for the simulated model: a real aiohttp server on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from awm_tui.servers.sim_llm import SimLLMServer, SimOptions


@pytest.fixture
async def sim_llm() -> AsyncIterator[SimLLMServer]:
    """The simulated model with default options (bundled `sample` dataset, no faults)."""
    async with SimLLMServer(SimOptions()) as server:
        yield server


@pytest.fixture
async def sim_llm_factory() -> AsyncIterator[Callable[..., Awaitable[SimLLMServer]]]:
    """Start simulated models with custom options: `await sim_llm_factory(rate_429=0.5)`."""
    servers: list[SimLLMServer] = []

    async def start(options: SimOptions | None = None, **fields: object) -> SimLLMServer:
        server = SimLLMServer(options or SimOptions(**fields))
        servers.append(server)
        await server.start("127.0.0.1", 0)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.close()
