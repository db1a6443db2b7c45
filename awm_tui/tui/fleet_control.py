"""What the app asks of the engine's Fleet, and how it gets one.

The app is typed against this protocol, not the Fleet, so tests drive it with a
recording stand-in and the engine loads only once the app starts.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from awm_tui.config.models import AppConfig
from awm_tui.config.plan import ResolvedRun
from awm_tui.tui.relay import EventRelay


class FleetControl(Protocol):
    """What the app asks of the engine's Fleet (and of the tests' recording stand-in)."""

    @property
    def active(self) -> list[str]: ...
    def open_connections(self) -> int: ...
    async def start(self, resolved: ResolvedRun) -> object: ...
    async def stop(self, name: str) -> object: ...
    async def stop_all(self) -> None: ...
    # Live control of a running run; each says False when no such run is going.
    def pause(self, name: str) -> bool: ...
    def resume(self, name: str) -> bool: ...
    def set_limit(self, name: str, limit: int) -> bool: ...
    def set_workers(self, name: str, workers: int) -> bool: ...
    def set_budget(self, name: str, budget: float | None) -> bool: ...


FleetFactory = Callable[[AppConfig, EventRelay], AbstractAsyncContextManager[FleetControl]]
"""(config, sink) -> async context manager yielding a Fleet."""


def default_fleet_factory(config: AppConfig, sink: EventRelay) -> AbstractAsyncContextManager[FleetControl]:
    from awm_tui.engine.fleet import Fleet  # the engine loads only when the app starts

    return Fleet(config, sink)
