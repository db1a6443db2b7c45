"""Hard budgets: a chain of ledgers (task → run → key → fleet) checked before each call.

A call first reserves its worst cost (`CostEstimator.worst`) on every ledger of its
chain; if any ledger cannot take it, the call is not made (`BudgetReached`). After
the call the reservation is settled with the real cost. Everything runs on the one
event loop, so check-and-reserve is atomic: runs and workers sharing a key or the
fleet never overshoot together, however many calls are in flight.
"""

from __future__ import annotations

from typing import Literal

from awm_tui.config.models import AppConfig, RunConfig
from awm_tui.engine.events import Spend, SpendUpdated

Scope = Literal["task", "run", "key", "fleet"]


class Ledger:
    """One budget: what was spent, what calls in flight have reserved, and the limit."""

    __slots__ = ("scope", "label", "limit", "spent", "reserved")

    def __init__(self, scope: Scope, label: str, limit: float | None, spent: float = 0.0) -> None:
        self.scope, self.label, self.limit = scope, label, limit
        self.spent = spent
        """USD settled (for a run, its checkpointed tasks of earlier sessions included)."""
        self.reserved = 0.0

    def refuses(self, estimate: float) -> bool:
        if self.limit is None:
            return False
        return self.spent >= self.limit or self.spent + self.reserved + estimate > self.limit

    def spend(self) -> Spend:
        return Spend(self.spent, self.limit)

    def __repr__(self) -> str:
        limit = "none" if self.limit is None else f"${self.limit:.4f}"
        return f"Ledger({self.scope} {self.label}: ${self.spent:.4f} spent, ${self.reserved:.4f} reserved, {limit})"


class BudgetReached(Exception):
    """The next call could cross a budget, so it was not made. Not an LLMError: no call
    failed. A task's budget ends that task (CostLimit); any other ends the run."""

    def __init__(self, ledger: Ledger, estimate: float) -> None:
        self.scope: Scope = ledger.scope
        self.ledger = ledger
        self.estimate = estimate
        assert ledger.limit is not None
        named = f" ({ledger.label})" if ledger.label else ""
        super().__init__(f"{ledger.scope} budget ${ledger.limit:.4f}{named}: ${ledger.spent:.4f} spent"
                         + (f", ${ledger.reserved:.4f} in flight" if ledger.reserved > 0 else "")
                         + f", the next call could cost ${estimate:.4f}")


class Reservation:
    __slots__ = ("ledgers", "amount", "_open")

    def __init__(self, ledgers: tuple[Ledger, ...], amount: float) -> None:
        self.ledgers, self.amount, self._open = ledgers, amount, True
        for ledger in ledgers:
            ledger.reserved += amount

    def settle(self, cost: float) -> None:
        """The call is over: its reservation goes, its real cost (0 if it failed) stays."""
        if not self._open:
            return
        self._open = False
        for ledger in self.ledgers:
            ledger.reserved = max(ledger.reserved - self.amount, 0.0)
            ledger.spent += cost


class Budget:
    """The ledgers one call is charged to, innermost first."""

    __slots__ = ("ledgers",)

    def __init__(self, *ledgers: Ledger | None) -> None:
        self.ledgers = tuple(ledger for ledger in ledgers if ledger is not None)

    def with_task(self, limit: float, instance_id: str) -> Budget:
        """This chain with a fresh ledger for one task (`max_cost`) in front."""
        return Budget(Ledger("task", instance_id, limit), *self.ledgers)

    def with_key(self, key: Ledger) -> Budget:
        """This chain charging `key` too (in its place, before the fleet), unless it already has a key."""
        if self.get("key") is not None:
            return self
        inner = tuple(ledger for ledger in self.ledgers if ledger.scope in ("task", "run"))
        outer = tuple(ledger for ledger in self.ledgers if ledger.scope == "fleet")
        return Budget(*inner, key, *outer)

    def reserve(self, estimate: float) -> Reservation:
        """Reserve `estimate` on every ledger, or raise BudgetReached naming the first
        (innermost) that cannot take it; nothing is reserved then."""
        for ledger in self.ledgers:
            if ledger.refuses(estimate):
                raise BudgetReached(ledger, estimate)
        return Reservation(self.ledgers, estimate)

    def get(self, scope: Scope) -> Ledger | None:
        return next((ledger for ledger in self.ledgers if ledger.scope == scope), None)

    def event(self, run: str) -> SpendUpdated:
        """What this chain's run, key and fleet ledgers stand at (a run's own chain)."""
        own, key, fleet = self.get("run"), self.get("key"), self.get("fleet")
        run_spend = own.spend() if own else Spend()
        return SpendUpdated(run=run, run_spend=run_spend, fleet_spend=fleet.spend() if fleet else run_spend,
                            key=key.label if key else "", key_spend=key.spend() if key else None)


class FleetBudgets:
    """The fleet's ledger, for one process; each key's ledger is its `KeyState.ledger`,
    shared by every run on the key."""

    def __init__(self, config: AppConfig) -> None:
        self.fleet = Ledger("fleet", "", config.fleet.budget)
        self._runs: dict[str, Ledger] = {}
        """The latest run ledger per output directory: what the fleet counted for it."""

    def for_run(self, run: RunConfig, key: Ledger, spent_before: float, where: str) -> Budget:
        """A run's chain; `spent_before` (its checkpointed tasks' cost) counts against the
        run and the fleet, so a resumed run's budget covers its earlier sessions too. A
        directory restarted in this process is not counted twice (`where`: its path).
        `key` is the run's `KeyState.ledger` (whose limit the key's clients set)."""
        earlier = self._runs.get(where)
        self.fleet.spent += max(spent_before - (earlier.spent if earlier else 0.0), 0.0)
        ledger = self._runs[where] = Ledger("run", run.name, run.budget, spent_before)
        return Budget(ledger, key, self.fleet)


def standalone(run: RunConfig, spent_before: float = 0.0) -> Budget:
    """A run's chain outside a fleet (its own budget only)."""
    return Budget(Ledger("run", run.name, run.budget, spent_before))
