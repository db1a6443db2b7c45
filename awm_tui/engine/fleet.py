"""Runs side by side on one event loop, sharing one evaluation client and Docker link."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from awm_tui.config.keys import NO_KEY
from awm_tui.config.models import AppConfig, RunConfig
from awm_tui.config.plan import ResolvedRun
from awm_tui.config.twins import twin_of
from awm_tui.engine.evaluation import EvaluationError, Evaluator, LocalEvaluator, ServerEvaluator
from awm_tui.engine.events import EventSink, StatusChanged
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.llm.budget import FleetBudgets
from awm_tui.engine.llm.keyhealth import KeyRegistry
from awm_tui.engine.run import AWMRun, RunOutcome, RunRefused
from awm_tui.engine.sandbox.base import SandboxError
from awm_tui.engine.sandbox.factory import SandboxFactory, SandboxKind, open_factory
from awm_tui.engine.sandbox.local import sweep_local
from awm_tui.engine.scheduler import RunStatus
from awm_tui.engine.tasks import Dataset, TaskError, load_dataset

if TYPE_CHECKING:
    from awm_tui.engine.evaluation.client import EvalClient

__all__ = ["Fleet", "RunHandle", "RunOutcome", "RunRefused", "RunStatus"]


@dataclass
class RunHandle:
    name: str
    run: RunConfig
    awm: AWMRun
    task: asyncio.Task[RunOutcome]

    @property
    def metrics(self) -> RunMetrics:
        return self.awm.metrics

    @property
    def output_dir(self) -> Path:
        return self.awm.out.path

    @property
    def active(self) -> bool:
        return not self.task.done()


class Fleet:
    """Start, stop and wait for runs. `async with` it: leaving stops every run cleanly."""

    def __init__(self, config: AppConfig, sink: EventSink, *, metrics_interval: float = 1.0) -> None:
        self.config, self.sink, self.metrics_interval = config, sink, metrics_interval
        self.handles: dict[str, RunHandle] = {}
        self._factories: dict[str, SandboxFactory] = {}
        self._swept_local = False
        self._datasets: dict[str, Dataset] = {}
        self._evaluator: Evaluator | None = None
        self._eval_client: EvalClient | None = None
        self.eval_metrics = RunMetrics()
        """The shared evaluation pool: its open connections belong to no single run."""
        self._guard = asyncio.Lock()  # start() checks then acts; keep that atomic
        self.budgets = FleetBudgets(config)
        """The fleet's budget and each key's, charged by every run's calls."""
        self.keys = KeyRegistry(sink, config.http, interval=metrics_interval)
        """Every key's health, shared by the runs (and workers) using it."""

    async def __aenter__(self) -> Fleet:
        if self.config.eval.mode == "server":
            from awm_tui.engine.evaluation.client import EvalClient
            client = self._eval_client = EvalClient(self.config.eval, self.config.http, self.eval_metrics)
            self._evaluator = ServerEvaluator(client, self.config.eval)
        else:
            self._evaluator = LocalEvaluator(self.config.eval)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.stop_all()
        await self.keys.aclose()
        if self._eval_client is not None:
            await self._eval_client.aclose()
            self._eval_client = None
        factories, self._factories = list(self._factories.values()), {}
        for factory in dict.fromkeys(factories):
            await factory.aclose()

    # -- runs ---------------------------------------------------------------------

    def open_connections(self) -> int:
        """Every connection this process holds: the runs' LLM pools and the evaluation pool."""
        runs = sum(h.metrics.connections_open for h in self.handles.values())
        return runs + self.eval_metrics.connections_open

    @property
    def evaluator(self) -> Evaluator | None:
        """What runs evaluate with: one shared client/pool (server) or the local harness."""
        return self._evaluator

    @property
    def active(self) -> list[str]:
        return [name for name, handle in self.handles.items() if handle.active]

    async def start(self, resolved: ResolvedRun) -> RunHandle:
        """Start one run with the profile and key `resolve_run` chose; RunRefused (one line) when it cannot."""
        if self._evaluator is None:
            raise RuntimeError("use `async with Fleet(...)` before starting runs")
        run = resolved.run
        async with self._guard:
            old = self.handles.get(run.name)
            if old is not None and old.active:
                raise RunRefused(f"run {run.name!r} is already running; stop it first or pick another name")
            for other in self.handles.values():
                if other.active and other.output_dir == Path(run.output_dir).resolve():
                    raise RunRefused(f"output directory {run.output_dir} is in use by run {other.name!r}; "
                                     "give each run its own directory")
            if resolved.api_key is None:
                raise RunRefused(f"run {run.name!r}: {resolved.key_problem or NO_KEY}")
            dataset = await self._dataset(run.dataset)
            if not run.skip_eval:
                await self._evaluator_ready()
            sandboxes = await self._sandboxes(run.sandbox)
            awm = AWMRun(run, resolved.profile, http=self.config.http, sandboxes=sandboxes,
                         evaluator=None if run.skip_eval else self._evaluator, dataset=dataset,
                         sink=self.sink, metrics_interval=self.metrics_interval,
                         sizes=self.config.dataset.sizes,
                         key_state=self.keys.state_for(resolved.api_key, resolved.profile, run.name))
            await awm.prepare()
            assert awm.key_state is not None  # given just above
            awm.budget = self.budgets.for_run(run, awm.key_state.ledger, awm.spent_before(), str(awm.out.path))
            await self._sweep_leftovers(sandboxes, awm)
            task = asyncio.create_task(awm.execute(), name=f"awm-run-{run.name}")
            handle = self.handles[run.name] = RunHandle(run.name, run, awm, task)
        self.sink(StatusChanged(run=run.name, phase="starting", detail=sandboxes.description))
        return handle

    async def stop(self, name: str) -> RunOutcome | None:
        """Cancel the run's in-flight task; returns once its checkpoint and containers are settled."""
        handle = self.handles.get(name)
        if handle is None:
            return None
        if handle.active:
            handle.task.cancel()
        return await self._outcome(handle)

    # -- live control: each says False when no such run is going ----------------------
    # Pause, resume, limit and workers reach the run's no-memory twin too, when it is going:
    # the pair must take the same tasks at the same pace for their curves to compare.

    def pause(self, name: str) -> bool:
        """The run's tasks in flight finish; it starts no new one until `resume`."""
        return self._control(name, lambda awm: awm.pause(), twin=True)

    def resume(self, name: str) -> bool:
        return self._control(name, lambda awm: awm.resume(), twin=True)

    def set_limit(self, name: str, limit: int) -> bool:
        """Grow or shrink a running run's limit (ValueError below 1)."""
        return self._control(name, lambda awm: awm.set_limit(limit), twin=True)

    def set_workers(self, name: str, workers: int) -> bool:
        """Tasks of the run in flight at once from now on (ValueError below 1)."""
        return self._control(name, lambda awm: awm.set_workers(workers), twin=True)

    def set_budget(self, name: str, budget: float | None) -> bool:
        """The run's own budget from now on (ValueError at 0 or below; None: none). Not its
        twin's: a twin's spend is its own."""
        return self._control(name, lambda awm: awm.set_budget(budget))

    def _control(self, name: str, change: Callable[[AWMRun], None], *, twin: bool = False) -> bool:
        handle = self.handles.get(name)
        if handle is None or not handle.active:
            return False
        change(handle.awm)
        if twin and (follower := self._twin_of(name)) is not None:
            change(follower.awm)
        return True

    def _twin_of(self, name: str) -> RunHandle | None:
        """The going no-memory twin of run `name` (`config.twins`), if there is one."""
        return next((h for h in self.handles.values()
                     if h.active and not h.run.memory and twin_of(h.name) == name), None)

    def status(self) -> list[RunStatus]:
        """Every run's status now, running ones first (what SIGUSR1 prints in batch mode)."""
        handles = sorted(self.handles.values(), key=lambda h: not h.active)
        return [h.awm.status() for h in handles]

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(name) for name in self.active))

    async def wait(self, name: str | None = None) -> dict[str, RunOutcome]:
        names = [name] if name else list(self.handles)
        results = await asyncio.gather(*(self._outcome(self.handles[n]) for n in names))
        return dict(zip(names, results))

    @staticmethod
    async def _outcome(handle: RunHandle) -> RunOutcome:
        """The run's outcome, also when its task was cancelled before it ever ran: then
        `execute` never got to release the output directory, so it is released here."""
        result = (await asyncio.gather(handle.task, return_exceptions=True))[0]
        if isinstance(result, RunOutcome):
            return result
        await handle.awm.abandon()
        return handle.awm.outcome("stopped", "stopped before it began")

    # -- shared parts -----------------------------------------------------------------

    async def _dataset(self, spec: str) -> Dataset:
        if spec not in self._datasets:
            try:
                self._datasets[spec] = await asyncio.to_thread(load_dataset, spec)
            except TaskError as exc:
                raise RunRefused(str(exc)) from None
        return self._datasets[spec]

    async def _evaluator_ready(self) -> None:
        assert self._evaluator is not None
        try:
            await self._evaluator.ready()
        except EvaluationError as exc:
            raise RunRefused(str(exc)) from None

    async def _sandboxes(self, kind: SandboxKind) -> SandboxFactory:
        if kind in ("auto", "docker"):  # one pool per fleet: capacities hold across runs' kinds
            other = self._factories.get("docker" if kind == "auto" else "auto")
            if other is not None and other.kind == "docker":
                return other
        if kind not in self._factories:
            try:
                factory = await open_factory(kind, self.config.docker)
            except SandboxError as exc:
                raise RunRefused(str(exc)) from None
            if factory.pool is not None:
                factory.pool.sink = self.sink  # HostStatus events, with [[docker.hosts]]
            self._factories[kind] = factory
        return self._factories[kind]

    async def _sweep_leftovers(self, sandboxes: SandboxFactory, awm: AWMRun) -> None:
        """Containers a killed process left (this run's directory, whose lock we hold now,
        or any process that is gone; never a live batch's), or the local task copies of
        any killed awm-tui process.

        A failed sweep is worth a warning, not a refusal: the run itself can go on."""
        if sandboxes.kind == "local":
            if not self._swept_local:  # local copies carry their process's pid: once is enough
                self._swept_local = True
                if removed := await asyncio.to_thread(sweep_local):
                    awm.warn(f"removed {removed} local sandbox copies left by a killed awm-tui")
            return
        try:
            removed = await sandboxes.sweep_leftovers(awm.name, awm.out.path)
        except Exception as exc:  # the daemon hiccuped; the containers stay for the next start
            awm.warn(f"could not sweep containers left by an earlier crash: {exc}")
            return
        if removed:
            awm.warn(f"removed {removed} container(s) left by an earlier crash")
