"""When to retry an LLM call and how long to wait: server hints first, then backoff."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

MAX_SERVER_WAIT_S = 300.0
"""Longest Retry-After / X-RateLimit-Reset we honour; beyond it the hint is clamped."""

RATE_LIMIT_PATIENCE_S = 3600.0
"""Longest one call keeps waiting out 429s. Inside a task the task's own time budget
(`task_timeout`, the agent's asyncio.timeout) ends the wait sooner."""

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))")


class RetryableError(Exception):
    """One attempt failed in a way another attempt may fix (never leaves this package)."""

    def __init__(self, reason: str, *, status: int | None = None, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait_s = wait_s


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After`: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:   # a date without a zone is not HTTP-date
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_ratelimit_reset(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from `X-RateLimit-Reset`-style headers.

    Providers disagree: epoch milliseconds (OpenRouter), epoch seconds, delta
    seconds, or a Go-style duration such as `6m0s` / `250ms` (OpenAI). Magnitude
    tells them apart: no delta is ever near the epoch.
    """
    if not value:
        return None
    value = value.strip()
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            return None
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    if number >= 1e11:          # epoch milliseconds
        return max(0.0, number / 1000.0 - now)
    if number >= 1e9:           # epoch seconds
        return max(0.0, number - now)
    return max(0.0, number)     # delta seconds


def server_wait_hint(headers: Mapping[str, str]) -> float | None:
    """How long the server asked us to wait, if it said so (clamped to MAX_SERVER_WAIT_S)."""
    wait = parse_retry_after(headers.get("Retry-After"))
    if wait is None:
        resets = [parse_ratelimit_reset(headers.get(name)) for name in
                  ("X-RateLimit-Reset", "X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens")]
        known = [r for r in resets if r is not None]
        wait = max(known) if known else None
    return None if wait is None else min(wait, MAX_SERVER_WAIT_S)


class wait_server_hint_or(wait_base):
    """The server's Retry-After when it gave one (even beyond the backoff's max),
    else the fallback backoff (exponential with jitter).

    With `hold`, a 429's wait is the key's, not the call's: `hold(seconds)` makes
    every call on the key wait it out (this one at its next attempt), so tenacity
    itself sleeps 0 and the wait is never served twice."""

    def __init__(self, fallback: wait_base, hold: Callable[[float], None] | None = None) -> None:
        self.fallback = fallback
        self.hold = hold

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetryableError) and exc.wait_s is not None:
            wait = exc.wait_s
        else:
            wait = self.fallback(retry_state)
        if self.hold is not None and is_rate_limit(exc):
            self.hold(wait)
            return 0.0
        return wait


def is_rate_limit(exc: BaseException | None) -> bool:
    return isinstance(exc, RetryableError) and exc.status == 429


class stop_after_failures(stop_base):
    """Stop after `attempts` failed attempts that were not rate limits.

    A 429 says "not yet", not "this failed": it costs no attempt, only time, so a
    rate-limit storm makes a call wait (up to `patience_s` in all) instead of failing
    the task and discarding its finished agent steps. Other errors keep their bound.
    """

    def __init__(self, attempts: int, patience_s: float = RATE_LIMIT_PATIENCE_S) -> None:
        self.attempts, self.patience_s = attempts, patience_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if is_rate_limit(exc):
            waited = (retry_state.seconds_since_start or 0.0) + (retry_state.upcoming_sleep or 0.0)
            return waited > self.patience_s
        # One state per call (tenacity makes a new one each time it is iterated).
        failures = getattr(retry_state, "awm_failures", 0) + 1
        retry_state.awm_failures = failures  # type: ignore[attr-defined]
        return failures >= self.attempts
