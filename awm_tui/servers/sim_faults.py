"""Fault injection for the simulated model: latency, 429, 5xx, drops, error bodies.

Faults are drawn from one seeded stream, one draw set per request, so a run
with the same seed and the same request order sees the same faults, while a
retry of a failed request gets a fresh draw (and can succeed).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["none", "drop", "429", "5xx", "error_body"]

SERVER_ERRORS = (500, 502, 503)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    delay: float = 0.0
    status: int = 200


class FaultInjector:
    """Decides, per request, how long to wait and which fault (if any) to inject."""

    def __init__(self, *, seed: int, latency: float, latency_jitter: float, rate_drop: float,
                 rate_429: float, rate_5xx: float, rate_error_body: float) -> None:
        self._rng = random.Random(seed)
        self._latency = max(0.0, latency)
        self._jitter = max(0.0, latency_jitter)
        # One uniform draw against cumulative thresholds keeps each rate exact
        # (as long as they sum to at most 1) instead of shadowing later ones.
        bands: list[tuple[float, FaultKind]] = []
        edge = 0.0
        rates: tuple[tuple[float, FaultKind], ...] = (
            (rate_drop, "drop"), (rate_429, "429"), (rate_5xx, "5xx"), (rate_error_body, "error_body"))
        for rate, kind in rates:
            edge += min(max(rate, 0.0), 1.0)
            bands.append((edge, kind))
        self._bands = bands

    def next(self) -> Fault:
        # Always three draws, so the stream stays aligned whatever the outcome.
        jitter, pick, which = self._rng.random(), self._rng.random(), self._rng.random()
        delay = self._latency + self._jitter * jitter
        for edge, kind in self._bands:
            if pick < edge:
                status = {"drop": 0, "429": 429, "error_body": 200}.get(kind) or SERVER_ERRORS[
                    int(which * len(SERVER_ERRORS))]
                return Fault(kind, delay, status)
        return Fault("none", delay, 200)


def chance(seed: int, *parts: str) -> float:
    """A stable number in [0, 1) for these inputs: same conversation, same decision."""
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
