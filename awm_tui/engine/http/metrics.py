"""Per-run counters behind the metrics pane: requests, retries, pool, latency, tokens.

A `RunMetrics` is owned by one run (or by one shared session, such as the fleet's
evaluation client) and mutated on the event loop only, so it needs no locks. Every
`record_*` hook is O(1) and allocation-light because it runs once per HTTP request;
the sorting and copying happen in `snapshot()`, which the UI asks for about once a
second. Windows are bounded deques, so memory stays flat over long runs.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from awm_tui.engine.events import HostConnections, MetricsData

LATENCY_WINDOW = 512
"""LLM calls kept for the p50/p95 latency figures."""
RATE_WINDOW_S = 60.0
"""Evaluations per minute are counted over this rolling window."""
RATE_SAMPLES = 4096
"""Most evaluation timestamps kept; beyond it the rate is extrapolated from the window."""


class HostCounters:
    """Connection counters for one `host[:port]`."""

    __slots__ = ("open", "created", "reused")

    def __init__(self) -> None:
        self.open = 0
        self.created = 0
        self.reused = 0


class RunMetrics:
    """Mutable counters of one run; `snapshot()` hands out an immutable copy.

    Who records what:
    - the traced session (`make_session`): requests, errors (HTTP >= 400 and
      transport failures), 429s, connections created / reused / open per host;
    - the LLM client: retries (`record_retry`), latency, tokens and cost
      (`record_llm`), replies cut at max_tokens (`record_truncated`), and error replies the session cannot see (a 200 whose body
      is an error, a body that fails to read) via `record_error`;
    - the evaluation client: `record_evaluation`.
    """

    __slots__ = (
        "requests", "errors", "retries", "rate_limited",
        "connections_open", "connections_created", "connections_reused",
        "evaluations", "prompt_tokens", "completion_tokens", "cost", "truncated_replies",
        "cached_tokens", "cache_saving",
        "_hosts", "_latencies", "_eval_times", "_clock",
    )

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = 0
        self.errors = 0
        self.retries = 0
        self.rate_limited = 0
        self.connections_open = 0
        self.connections_created = 0
        self.connections_reused = 0
        self.evaluations = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.truncated_replies = 0
        self.cached_tokens = 0
        self.cache_saving = 0.0
        self._hosts: dict[str, HostCounters] = {}
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._eval_times: deque[float] = deque(maxlen=RATE_SAMPLES)
        self._clock = clock

    # -- hooks (hot path: keep O(1)) -------------------------------------------------

    def host(self, key: str) -> HostCounters:
        counters = self._hosts.get(key)
        if counters is None:
            counters = self._hosts[key] = HostCounters()
        return counters

    def record_request(self) -> None:
        self.requests += 1

    def record_response(self, status: int) -> None:
        if status >= 400:
            self.errors += 1
            if status == 429:
                self.rate_limited += 1

    def record_error(self) -> None:
        """A failed request the session could not see as one (bad body, lost read)."""
        self.errors += 1

    def record_retry(self, status: int | None = None) -> None:
        """One retry about to happen. `status` is informational: the session already
        counted the answer (429s included) when it arrived."""
        self.retries += 1

    def record_connection_created(self, host: str) -> None:
        self.connections_created += 1
        self.host(host).created += 1

    def record_connection_reused(self, host: str) -> None:
        self.connections_reused += 1
        self.host(host).reused += 1

    def record_connection_opened(self, host: str | None) -> None:
        """A transport came up (None: host not known yet, see `attribute_open`)."""
        self.connections_open += 1
        if host is not None:
            self.host(host).open += 1

    def attribute_open(self, host: str) -> None:
        """Name the host of a connection already counted by `record_connection_opened(None)`."""
        self.host(host).open += 1

    def record_connection_closed(self, host: str | None) -> None:
        self.connections_open -= 1
        if host is not None:
            self.host(host).open -= 1

    def record_llm(self, latency_s: float, prompt_tokens: int = 0,
                   completion_tokens: int = 0, cost: float = 0.0, cached_tokens: int = 0,
                   cache_saving: float = 0.0) -> None:
        self._latencies.append(latency_s)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost += cost
        self.cached_tokens += cached_tokens
        self.cache_saving += cache_saving

    def record_truncated(self) -> None:
        """A reply the server cut at max_tokens (`finish_reason: "length"`)."""
        self.truncated_replies += 1

    def record_evaluation(self, duration_s: float | None = None) -> None:
        """One evaluation finished (`duration_s` is the caller's to report in events)."""
        self.evaluations += 1
        self._eval_times.append(self._clock())

    # -- reading -----------------------------------------------------------------------

    def evaluations_per_minute(self) -> float:
        times = self._eval_times
        if not times:
            return 0.0
        now = self._clock()
        horizon = now - RATE_WINDOW_S
        while times and times[0] < horizon:
            times.popleft()
        if len(times) < RATE_SAMPLES:
            return float(len(times)) * (60.0 / RATE_WINDOW_S)
        # The deque is full and still inside the window: extrapolate from its span.
        span = max(now - times[0], 1e-6)
        return len(times) * 60.0 / span

    def snapshot(self) -> MetricsData:
        lat = sorted(self._latencies)
        return MetricsData(
            requests=self.requests,
            errors=self.errors,
            retries=self.retries,
            rate_limited=self.rate_limited,
            connections_open=self.connections_open,
            connections_created=self.connections_created,
            connections_reused=self.connections_reused,
            per_host=tuple(
                HostConnections(host=h, open=c.open, created=c.created, reused=c.reused)
                for h, c in sorted(self._hosts.items())
            ),
            llm_latency_p50=_percentile(lat, 0.50),
            llm_latency_p95=_percentile(lat, 0.95),
            evaluations=self.evaluations,
            evaluations_per_minute=self.evaluations_per_minute(),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
            truncated_replies=self.truncated_replies,
            cached_tokens=self.cached_tokens,
            cache_saving=self.cache_saving,
        )

    def __repr__(self) -> str:
        return (f"RunMetrics(requests={self.requests}, errors={self.errors}, "
                f"retries={self.retries}, open={self.connections_open})")


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
