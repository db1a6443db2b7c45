"""Per-key health, fleet-wide: one `KeyState` per API key, shared by every run using it.

A key's capacity is the provider's, not a run's: a profile's `requests_per_minute`
spaces the starts of every call on the key (`pace`), and when one run gets a 429 with a
Retry-After, every call on that key waits it out (`hold`), and the calls allowed
in flight on the key adapt, AIMD as inspect_ai's adaptive connections do: halved
on a 429 (at least 1), one more after `GROW_AFTER` successes in a row (and
`GROW_QUIET_S` without a 429), up to a cap. A rate-limited key so slows down instead of burning retries.

`KeyRegistry` (owned by the fleet) hands out the states, reads OpenRouter credits
(`GET {base}/key`) at start and every few minutes where the endpoint exists, and
reports each key as a `KeyHealth` event (masked key and identity, never the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from pydantic import SecretStr

from awm_tui.config.keys import key_identity, mask_key
from awm_tui.config.models import OPENROUTER_BASE_URL, HttpConfig, LLMProfile
from awm_tui.engine.events import CreditsLow, EventSink, KeyHealth
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.http.session import make_session
from awm_tui.engine.llm.budget import Ledger
from awm_tui.engine.llm.errors import LLMAuthError, LLMCreditsError, LLMFatalError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32
"""Cap on calls in flight per key (adaptive concurrency never grows past it)."""
GROW_AFTER = 5
"""Successes in a row after which one more call may be in flight..."""
GROW_QUIET_S = 5.0
"""...once the key has had no 429 for this long (growing into the next 429 at once
would make the limit saw between two values at the provider's expense)."""
CREDITS_EVERY_S = 180.0
"""How often a key's credits are read again."""
LOW_FRACTION, LOW_USD = 0.10, 1.0
"""Credits are low below 10% of the key's limit or below $1, whichever is more."""
FIRST_READ_WAIT_S = 5.0
"""How long a key's first call waits for its first credits read."""
KEY_WIDE_REFUSALS: dict[int, type[LLMFatalError]] = {401: LLMAuthError, 402: LLMCreditsError}
"""Refusals that hold for every call on the key (a 403 may be one model's access only):
once a call meets one, the key's other calls, of any run, fail at once instead of each
asking the provider again. A run that starts on the key later tries it afresh."""


def credits_low(remaining: float | None, limit: float | None) -> bool:
    if remaining is None:
        return False
    return remaining < max(LOW_USD, (limit or 0.0) * LOW_FRACTION)


def offers_key_endpoint(profile: LLMProfile) -> bool:
    """Whether `GET {base}/key` should be asked: the profile says so, or its base URL is OpenRouter's."""
    if profile.key_endpoint is not None:
        return profile.key_endpoint
    return profile.effective_base_url.rstrip("/") == OPENROUTER_BASE_URL


@dataclass(frozen=True, slots=True)
class Credits:
    limit: float | None
    remaining: float | None
    usage: float | None
    checked_at: float
    spent_before: float = 0.0
    """`KeyState.spent` when these were read: what was spent since is taken off `remaining`."""


class KeyState:
    """One key's calls, backoff and credits. Every LLMClient on the key calls
    `acquire` before each attempt and `release` after it."""

    def __init__(self, secret: SecretStr, *, max_in_flight: int = MAX_IN_FLIGHT,
                 grow_quiet_s: float = GROW_QUIET_S, on_change: Callable[[KeyState], None] | None = None) -> None:
        self.identity = key_identity(secret)
        self.masked = mask_key(secret)
        self._secret = secret
        self.max_in_flight = max(1, max_in_flight)
        self.grow_quiet_s = grow_quiet_s
        self.limit = self.max_in_flight
        self.in_flight = self.waiting = self.calls = self.rate_limited = 0
        self._successes = 0
        self.hold_until = 0.0
        """Loop time before which no call on the key starts (the Retry-After in force)."""
        self.interval = 0.0
        """Seconds between call starts on the key (`requests_per_minute`; 0: unpaced)."""
        self._next_start = -math.inf
        self._shrunk_at = self._last_429 = -math.inf
        self.ledger = Ledger("key", self.masked, None)
        """What the key's calls, of every run, spent and reserve (`key_budget` is its limit):
        the one count of the key's spend, settled by each call's budget chain."""
        self.refused: int | None = None
        self.refusal = ""
        self.credits: Credits | None = None
        self.runs: dict[str, None] = {}
        self.on_change = on_change
        self._changed: asyncio.Event | None = None
        self.first_read: asyncio.Event | None = None
        """Set once the first credits read has ended (None: the key's endpoint is not asked)."""

    def __repr__(self) -> str:
        return f"KeyState({self.masked}, {self.in_flight}/{self.limit} in flight)"

    # -- the call path --------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait out any hold on the key, then for a free in-flight slot."""
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            if self.first_read is not None and not self.first_read.is_set():
                # The credits are known before the key's first call, so a key that is
                # already low warns before anything is spent on it (bounded: a slow
                # endpoint never holds the calls up for long).
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.first_read.wait(), FIRST_READ_WAIT_S)
            while True:
                self._raise_if_refused()
                delay = self.hold_until - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)   # a longer hold set meanwhile: go round again
                    continue
                if (delay := self.pacing_s()) > 0:
                    await asyncio.sleep(delay)   # another call took the slot meanwhile: go round again
                    continue
                if self.in_flight < self.limit:
                    break
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        self.calls += 1
        self._next_start = loop.time() + self.interval
        self._notify()

    def release(self, status: int | None = None, *, ok: bool = False) -> None:
        """The attempt is over: `ok`, or the HTTP status it failed with (None: no answer)."""
        self.in_flight = max(0, self.in_flight - 1)
        if ok:
            self.refused, self.refusal = None, ""
            self._successes += 1
            quiet = asyncio.get_running_loop().time() - self._last_429 >= self.grow_quiet_s
            if self._successes >= GROW_AFTER and quiet and self.limit < self.max_in_flight:
                self.limit += 1
                self._successes = 0
        elif status == 429:
            self.rate_limited += 1
            self._successes = 0
            loop_now = self._last_429 = asyncio.get_running_loop().time()
            # One 429 burst is one signal: the calls that were in flight together all
            # come back 429, and halving once per burst is what AIMD means.
            if loop_now > self._shrunk_at + 1.0:
                self._shrunk_at = loop_now
                self.limit = max(1, min(self.limit, self.in_flight + 1) // 2)
        self._notify()

    def hold(self, seconds: float) -> None:
        """Every call on the key waits `seconds` from now (never shortens a hold in force)."""
        until = asyncio.get_running_loop().time() + max(0.0, seconds)
        if until > self.hold_until:
            self.hold_until = until
            self._notify()

    def pace(self, requests_per_minute: float | None) -> None:
        """At most this many call starts a minute on the key (the smallest asked wins)."""
        if requests_per_minute:
            self.interval = max(self.interval, 60.0 / requests_per_minute)

    def pacing_s(self) -> float:
        """How long the next call must wait for its turn under the key's pace."""
        if not self.interval:
            return 0.0
        return max(0.0, self._next_start - asyncio.get_running_loop().time())

    def cap(self, key_budget: float | None) -> None:
        """The profile's `key_budget` caps the key's spend (the smallest asked wins)."""
        if key_budget is not None:
            limit = self.ledger.limit
            self.ledger.limit = key_budget if limit is None else min(limit, key_budget)

    @property
    def spent(self) -> float:
        """USD the key's replies cost in this process (their `usage.cost`, or priced tokens)."""
        return self.ledger.spent

    def settled(self, cost: float) -> None:
        """A call on the key settled `cost` on its ledger: the credits left moved."""
        if cost > 0:
            self._notify()

    def remaining(self) -> float | None:
        """Credits left: the provider's last figure less what was spent since."""
        c = self.credits
        if c is None or c.remaining is None:
            return None
        return max(0.0, c.remaining - (self.spent - c.spent_before))

    def credits_low(self) -> bool:
        return self.credits is not None and credits_low(self.remaining(), self.credits.limit)

    def refuse(self, status: int, message: str) -> None:
        """The provider refused the key (401/402/403); waiting calls see it at once."""
        self.refused, self.refusal = status, message[:200]
        self._notify()

    def try_again(self) -> None:
        """A run starting on the key: a key-wide refusal is asked about afresh (the
        user may have fixed the key or topped the account up since)."""
        if self.refused in KEY_WIDE_REFUSALS:
            self.refused, self.refusal = None, ""
            self._notify()

    def _raise_if_refused(self) -> None:
        error = KEY_WIDE_REFUSALS.get(self.refused or 0)
        if error is not None:
            raise error(f"{self.refusal} (another call on this key was refused: it is not asked again)",
                        status=self.refused)

    def authorization(self) -> dict[str, str]:
        """The header for the key's own requests (GET /key); never logged or shown."""
        return {"Authorization": "Bearer " + self._secret.get_secret_value()}

    def retry_after_s(self) -> float:
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return 0.0
        return max(0.0, self.hold_until - now)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        if self.on_change is not None:
            self.on_change(self)

    # -- reporting ------------------------------------------------------------------------

    def snapshot(self) -> KeyHealth:
        c = self.credits
        return KeyHealth(
            run="", identity=self.identity, masked=self.masked, runs=tuple(self.runs),
            in_flight=self.in_flight, waiting=self.waiting, limit=self.limit,
            max_in_flight=self.max_in_flight, calls=self.calls, rate_limited=self.rate_limited,
            retry_after_s=round(self.retry_after_s(), 2), refused=self.refused, refusal=self.refusal,
            credits_limit=c.limit if c else None, credits_remaining=self.remaining(),
            credits_usage=None if c is None or c.usage is None else c.usage + self.spent - c.spent_before,
            credits_checked_at=c.checked_at if c else None, credits_low=self.credits_low())


class KeyRegistry:
    """The fleet's keys by identity; `async with` it or `aclose()` it."""

    def __init__(self, sink: EventSink, http: HttpConfig, *, interval: float = 1.0,
                 credits_every: float = CREDITS_EVERY_S, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.sink, self.http, self.interval = sink, http, interval
        self.credits_every, self.max_in_flight = credits_every, max_in_flight
        self.states: dict[str, KeyState] = {}
        self.metrics = RunMetrics()
        """The credits requests' own pool: it belongs to no run."""
        self._dirty: set[str] = set()
        self._polled: set[tuple[str, str]] = set()
        self._warned: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KeyRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def state_for(self, secret: SecretStr, profile: LLMProfile, run: str) -> KeyState:
        """The key's one state (made on first use); reads its credits when the endpoint exists."""
        identity = key_identity(secret)
        state = self.states.get(identity)
        if state is None:
            state = self.states[identity] = KeyState(secret, max_in_flight=self.max_in_flight,
                                                     on_change=self._mark)
        state.runs[run] = None
        state.try_again()
        base = profile.effective_base_url.rstrip("/")
        if offers_key_endpoint(profile) and (identity, base) not in self._polled:
            self._polled.add((identity, base))
            state.first_read = state.first_read or asyncio.Event()
            self._tasks.append(asyncio.create_task(self._poll(state, base), name=f"credits-{identity}"))
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="key-health")
        self._mark(state)
        return state

    def snapshots(self) -> list[KeyHealth]:
        return [s.snapshot() for s in self.states.values()]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks + ([self._ticker] if self._ticker else []), []
        self._ticker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flush()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- events -------------------------------------------------------------------------

    def _mark(self, state: KeyState) -> None:
        self._dirty.add(state.identity)
        if state.identity not in self._warned and state.credits_low():
            self._warned.add(state.identity)
            self._emit(CreditsLow(run="", identity=state.identity, masked=state.masked,
                                  remaining=state.remaining() or 0.0, limit=state.credits.limit if state.credits else None,
                                  runs=tuple(state.runs)))

    async def _tick(self) -> None:
        # Changes are coalesced: one KeyHealth per changed key per interval, however
        # many calls moved, and one more while a hold counts down.
        while True:
            await asyncio.sleep(self.interval)
            for state in self.states.values():
                if state.retry_after_s() > 0:
                    self._dirty.add(state.identity)
            self._flush()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for identity in dirty:
            if (state := self.states.get(identity)) is not None:
                self._emit(state.snapshot())

    def _emit(self, event: KeyHealth | CreditsLow) -> None:
        try:
            self.sink(event)
        except Exception:  # a broken face must not stop the key's bookkeeping
            log.exception("key health event failed in the face")

    # -- credits ----------------------------------------------------------------------------

    async def _poll(self, state: KeyState, base: str) -> None:
        while True:
            try:
                offered = await self.read_credits(state, base)
            finally:
                if state.first_read is not None:
                    state.first_read.set()
            if not offered:
                return
            await asyncio.sleep(self.credits_every)

    async def read_credits(self, state: KeyState, base: str) -> bool:
        """One `GET {base}/key`; False when the endpoint is not offered (stop asking)."""
        if self._session is None:
            self._session = make_session(self.http, self.metrics, headers={"X-Title": "awm-tui"})
        headers = state.authorization()
        try:
            async with self._session.get(f"{base}/key", headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=30)) as resp:
                body = await resp.json(content_type=None) if resp.status == 200 else None
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.info("credits of key %s: %s", state.masked, type(exc).__name__)
            return True   # try again next time
        if status in (404, 405):
            return False   # the endpoint is not offered here: silently
        if status in (401, 403):
            state.refuse(status, f"GET /key answered {status}")
            return True
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return status != 200   # a 200 of another shape: not OpenRouter's endpoint
        state.credits = Credits(_number(data.get("limit")), _number(data.get("limit_remaining")),
                                _number(data.get("usage")), time.time(), state.spent)
        state._notify()
        self._emit(state.snapshot())  # a read is news at once, not at the next coalescing tick
        self._dirty.discard(state.identity)
        return True


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
