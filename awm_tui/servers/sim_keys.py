"""Per-key accounts of the simulated model: a rate limit, a credit limit, and
OpenRouter's `GET /api/v1/key`.

Each key the simulator sees gets one account: the times its chat requests arrived
(what tests measure a fleet's request rate against), how many it refused with 429
for going over `key_rate_limit` requests per second, and what its replies cost
(drawn from `key_credit_limit`; a key with none left gets OpenRouter's 402). The
accounts are the simulator's own ledger: tests compare the engine's figures to it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from awm_tui.config.keys import key_identity, mask_key

RATE_WINDOW_S = 1.0
"""The rate limit counts the requests admitted in the last second (a sliding window;
longer for a rate below one per second, so 0.5/s admits one per 2 s)."""
MAX_TIMES = 100_000
"""Arrival times kept per key (the oldest are dropped past it: stats stay bounded)."""


@dataclass
class KeyAccount:
    identity: str
    masked: str
    limit: float | None
    usage: float = 0.0
    """USD charged to this key (the sum of its replies' `usage.cost`)."""
    replies: int = 0
    rate_limited: int = 0
    """Requests refused with 429 for exceeding the key's rate limit."""
    out_of_credit: int = 0
    """Requests refused with 402 because the key's credit limit was used up."""
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_TIMES))
    """time.time() of every chat request with this key, refused ones included."""
    limited_at: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_TIMES))
    admitted: deque[float] = field(default_factory=deque)
    """Admission times within the current rate window."""

    @property
    def limit_remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.usage)

    def snapshot(self) -> dict[str, Any]:
        return {"identity": self.identity, "usage": round(self.usage, 10), "limit": self.limit,
                "limit_remaining": None if self.limit_remaining is None else round(self.limit_remaining, 10),
                "replies": self.replies, "rate_limited": self.rate_limited,
                "out_of_credit": self.out_of_credit,
                "arrivals": list(self.arrivals), "limited_at": list(self.limited_at)}


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    retry_after: float | None = None


class KeyAccounts:
    """Every key's account; `admit` before answering a chat request, `charge` after."""

    def __init__(self, *, rate_limit: float = 0.0, credit_limit: float | None = None) -> None:
        self.rate_limit = rate_limit
        self.credit_limit = credit_limit
        self.window_s = max(RATE_WINDOW_S, 1.0 / rate_limit) if rate_limit > 0 else RATE_WINDOW_S
        self.capacity = max(1, math.floor(rate_limit * self.window_s + 1e-9))
        self.by_identity: dict[str, KeyAccount] = {}

    def account(self, key: str) -> KeyAccount:
        identity = key_identity(SecretStr(key))
        found = self.by_identity.get(identity)
        if found is None:
            found = self.by_identity[identity] = KeyAccount(identity, mask_key(key), self.credit_limit)
        return found

    def admit(self, key: str, now: float | None = None) -> Refusal | None:
        """Record the request's arrival; a refusal when the key is over its rate or credit limit."""
        account = self.account(key)
        now = time.time() if now is None else now
        account.arrivals.append(now)
        if account.limit is not None and account.usage >= account.limit:
            account.out_of_credit += 1
            return Refusal(402, "insufficient credits: this (simulated) key's limit is used up")
        if self.rate_limit > 0:
            window = account.admitted
            while window and window[0] <= now - self.window_s:
                window.popleft()
            if len(window) >= self.capacity:
                account.rate_limited += 1
                account.limited_at.append(now)
                wait = max(0.01, window[0] + self.window_s - now)
                return Refusal(429, f"rate limited: over {self.rate_limit:g} requests/s on this (simulated) key",
                               retry_after=math.ceil(wait * 100) / 100)
            window.append(now)
        return None

    def charge(self, key: str, cost: float) -> None:
        account = self.account(key)
        account.usage += cost
        account.replies += 1

    def key_info(self, key: str) -> dict[str, Any]:
        """OpenRouter's `GET /api/v1/key` body for this key."""
        account = self.account(key)
        usage = round(account.usage, 10)
        remaining = account.limit_remaining
        return {"data": {
            "label": account.masked, "limit": account.limit,
            "limit_remaining": None if remaining is None else round(remaining, 10),
            "limit_reset": None, "usage": usage, "usage_daily": usage, "usage_weekly": usage,
            "usage_monthly": usage, "byok_usage": 0, "is_free_tier": False,
            "is_provisioning_key": False, "include_byok_in_limit": False, "expires_at": None,
            "simulated": True}}

    def snapshot(self) -> dict[str, Any]:
        """By masked key, as the rest of the simulator's stats."""
        return {a.masked: a.snapshot() for a in self.by_identity.values()}
