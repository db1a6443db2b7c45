"""The control center app: owns the Fleet, routes its events to panes, runs the actions.

Engine code never touches a widget: the Fleet calls `EventRelay`, which posts
merged, typed messages; the handlers here hand them to the pane of each run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import KeyProblem, aresolve_key, is_file_reference, key_file_path
from awm_tui.config.models import AppConfig, RunConfig
from awm_tui.config.plan import OVERRIDE, resolve_run
from awm_tui.config.twins import twin_config, twin_dir, twin_name
from awm_tui.engine.state import StateError
from awm_tui.engine.state.trajectory import last_finished
from awm_tui.tui.messages import MetricsArrived, RunEventsArrived
from awm_tui.tui.output_reading import OutputSummary, read_output_dir
from awm_tui.tui.commands import pane_commands
from awm_tui.tui.fleet_control import FleetControl, FleetFactory, default_fleet_factory
from awm_tui.tui.fleet_status import FleetStatus
from awm_tui.tui.live_control import apply_live
from awm_tui.tui.relay import EventRelay
from awm_tui.tui.run_view import RunView, latest_fleet_spend
from awm_tui.tui.screens.curves import FleetCurvesScreen
from awm_tui.tui.screens.dialogs import OpenOutputDir, QuitConfirm
from awm_tui.tui.screens.hosts import HostsScreen
from awm_tui.tui.screens.main import MainScreen
from awm_tui.tui.screens.keys import KeysScreen
from awm_tui.tui.screens.memory import MemoryScreen
from awm_tui.tui.screens.trajectory import TrajectoryScreen
from awm_tui.tui.themes import DEFAULT_THEME, load_all_themes, stylesheet_path
from awm_tui.tui.widgets.fleet_bar import FleetBar, FleetTotals
from awm_tui.tui.widgets.pane_form import LIVE_FIELDS, Note
from awm_tui.tui.widgets.run_pane import RunPane, RunProblem, link_twins

class AWMApp(App[int]):
    CSS_PATH = stylesheet_path()
    TITLE = "awm-tui"
    BINDINGS = [
        Binding("ctrl+n", "add_pane", "Add pane"),
        Binding("ctrl+r", "remove_pane", "Remove"),
        Binding("ctrl+s", "start_pane", "Start"),
        Binding("ctrl+t", "stop_pane", "Stop"),
        Binding("ctrl+g", "start_all", "Start all"),
        Binding("ctrl+l", "memory", "Memory"),
        Binding("ctrl+o", "open_output_dir", "Open dir"),
        # Not in the footer (full already at 80 columns); the palette and README list it.
        Binding("f4", "trajectory", "Trajectory", show=False),
        Binding("f5", "pane_curves", "Curves", show=False),
        Binding("f6", "pause_pane", "Pause/resume", show=False),
        Binding("f9", "fleet_curves", "Fleet curves", show=False),
        Binding("f2", "maximize_pane", "Maximise"),
        Binding("f3", "toggle_hosts", "Hosts"),
        Binding("f8", "next_pane", "Next pane"),
        Binding("f7", "keys", "Keys", show=False),
        Binding("f10", "docker_hosts", "Docker hosts", show=False),
    ]

    PANE_ACTIONS = frozenset({"add_pane", "remove_pane", "start_pane", "stop_pane", "start_all", "memory",
                              "open_output_dir", "maximize_pane", "toggle_hosts", "next_pane", "trajectory",
                              "pause_pane", "apply_live", "docker_hosts", "pane_curves", "fleet_curves"})
    """Actions on the main screen's panes: off (and out of the footer) on any other screen."""

    def __init__(self, config: AppConfig, *, theme: str | None = None, demo: Any = None,
                 fleet_factory: FleetFactory | None = None, output_root: Path | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 key_problems: Mapping[str, KeyProblem] | None = None) -> None:
        super().__init__()
        self.config = config
        self.key_problems = dict(key_problems or {})
        """The loader's unresolved key references by key path (`runs[0].api_key`, `llm.NAME.api_key`)."""
        self.demo = demo
        self._theme_choice = theme or config.ui.theme
        self._fleet_factory = fleet_factory or default_fleet_factory
        self._output_root = output_root or Path("outputs")
        self._clock = clock
        self._first_start: float | None = None
        self._pane_count = 0
        self.relay = EventRelay(self.post_message, log_lines=config.ui.log_lines)
        self.fleet: FleetControl | None = None
        self._fleet_ready = asyncio.Event()
        self._fleet_error: str | None = None
        self._quitting = asyncio.Event()
        self._fleet_worker: Worker | None = None
        self.status = FleetStatus()
        """The latest health of every key and Docker host the fleet uses (f7, f10)."""
        self.panes_ready = asyncio.Event()
        """Set once the configured runs have their panes (tests and scripts wait on it)."""
        self.main_screen: MainScreen

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # In the memory browser or a dialog the panes are hidden: ctrl+s there started
        # a run nobody could see, ctrl+l stacked another browser.
        if action in self.PANE_ACTIONS:
            stack = self.screen_stack
            return bool(stack) and stack[-1] is getattr(self, "main_screen", None)
        return True

    # -- start-up -----------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        self.main_screen = MainScreen(self.config)
        return self.main_screen

    def on_mount(self) -> None:
        self._apply_themes()
        self._fleet_worker = self.run_worker(self._hold_fleet(), group="fleet", name="fleet",
                                             description="engine (Fleet)", exit_on_error=False)

    async def on_main_screen_ready(self) -> None:
        for run in self.config.runs:
            await self.add_pane(run, focus=False)
            if run.twin:  # a twin has a pane of its own: its figures, its log, its Stop
                await self.add_pane(twin_config(run), focus=False)
        if not self.config.runs:
            await self.add_pane(focus=False)
        if self.main_screen.panes:
            self.main_screen.show_pane(self.main_screen.panes[0])
        self.refresh_fleet_bar()
        # What is alive now (modules, Textual, this app and its panes) lives as long as
        # the app. Frozen, a full collection during a log flood no longer walks it:
        # benchmarks/tui_lag p99 145-177 ms -> 79-103 ms. Without gc.collect() first
        # (~100 ms of a stalled loop); the little startup garbage is released at exit.
        gc.freeze()
        self.panes_ready.set()
        self.set_interval(1.0, self.refresh_fleet_bar)

    def _apply_themes(self) -> None:
        themes, problems = load_all_themes()
        for theme in themes:
            self.register_theme(theme)
        for problem in problems:
            self.notify(problem, title="theme skipped", severity="warning", timeout=8)
        wanted = self._theme_choice
        if wanted not in self.available_themes:
            fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
            self.notify(f"theme {wanted!r} is not available; using {fallback}", severity="warning", timeout=8)
            wanted = fallback
        self.theme = wanted

    def on_unmount(self) -> None:
        self.relay.close()  # no batches posted into a closing app
        gc.unfreeze()  # the process may live on (tests, embedding): let the app be collected

    async def _hold_fleet(self) -> None:
        async with self._fleet_factory(self.config, self.relay) as fleet:
            self.fleet = fleet
            self._fleet_ready.set()
            await self._quitting.wait()
        self.fleet = None

    async def _wait_fleet(self) -> FleetControl:
        await self._fleet_ready.wait()
        if self.fleet is None:
            raise RuntimeError(self._fleet_error or "the engine is not running")
        return self.fleet

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        # The one place background failures land: notify, never crash.
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        line = f"{type(error).__name__}: {error}".splitlines()[0] if error else "unknown error"
        if worker.group == "fleet":
            self._fleet_error = f"engine failed to start: {line}"
            self._fleet_ready.set()
            line = self._fleet_error
        self.notify(line, title=worker.description or worker.name, severity="error", timeout=10)

    # -- panes --------------------------------------------------------------------------
    def _new_pane_defaults(self) -> tuple[str, str]:
        used = {pane.values().name for pane in self.main_screen.panes}
        n = 1
        while f"run_{n}" in used:
            n += 1
        return f"run_{n}", str(self._output_root / f"run_{n}")

    async def add_pane(self, base: RunConfig | None = None, *, output: str | None = None,
                       name: str | None = None, limit: int | None = None, focus: bool = True,
                       read_output: bool = True) -> RunPane:
        self._pane_count += 1
        default_name, default_output = self._new_pane_defaults()
        profiles = list(self.config.llm)
        template = base or (self.config.runs[0] if self.config.runs else None)
        profile = template.llm if template else (profiles[0] if profiles else None)
        pane = RunPane(
            base=base, config=self.config, id=f"pane-{self._pane_count}",
            name=name or (base.name if base else default_name),
            output=output or (str(base.output_dir) if base else default_output),
            limit=limit or (base.limit if base else 5), profile=profile, key=self._config_key(base),
        )
        await self.main_screen.add_pane(pane, focus=focus)
        self.refresh_fleet_bar()
        if read_output:
            self.run_worker(self._show_checkpoint(pane), group="read", description="read output directory",
                            exit_on_error=False)
        return pane

    def _config_key(self, base: RunConfig | None) -> SecretStr | None:
        """The key a config run brings to its pane: its own, or its broken reference as written
        (the pane shows what is wrong there, rather than quietly using the profile's key).
        A config run's twin brings its run's `twin_api_key` only: without one, it takes the
        key of its run's pane when the pair starts."""
        if base is None:
            return None
        parent = next((r for r in self.config.runs if r.twin and not base.memory
                       and twin_name(r.name) == base.name), None)
        owner, field = (parent, "twin_api_key") if parent is not None else (base, "api_key")
        if (own := getattr(owner, field)) is not None:
            return own
        index = next((i for i, run in enumerate(self.config.runs) if run is owner), None)
        problem = self.key_problems.get(f"runs[{index}].{field}")
        if problem is None or not problem.reference:
            return None
        ref = problem.reference
        if is_file_reference(ref) and self.config.source is not None:  # relative to the config, as loaded
            ref = f"file:{key_file_path(ref, self.config.source.resolve().parent)}"
        return SecretStr(ref)

    async def _show_checkpoint(self, pane: RunPane, *, announce: bool = False) -> OutputSummary:
        """Show what the pane's output directory already holds (Start resumes from it)."""
        path = Path(pane.values().output)
        summary = await asyncio.to_thread(read_output_dir, path)
        if summary.done or summary.workflows or announce:
            pane.view = replace(pane.view, done=summary.done, resolved=summary.resolved, curve=summary.curve,
                                workflows=len(summary.workflows), memory_version=summary.memory_version)
            pane.add_log_lines([f"checkpoint in {path}: {summary.done} done, {summary.resolved} resolved, "
                                f"{len(summary.workflows)} workflow(s); Start resumes"])
        return summary

    def _pane(self) -> RunPane | None:
        pane = self.main_screen.current
        if pane is None:
            self.notify("no pane: add one with ctrl+n", severity="warning")
        return pane

    async def action_add_pane(self) -> None:
        await self.add_pane()

    async def action_remove_pane(self) -> None:
        pane = self._pane()
        if pane is None:
            return
        if pane.running:
            self.notify("stop the run before removing its pane (ctrl+t)", severity="warning")
            return
        await self.main_screen.remove_pane(pane)
        self.refresh_fleet_bar()

    def action_next_pane(self) -> None:
        self.main_screen.cycle(1)

    def action_maximize_pane(self) -> None:
        screen = self.main_screen
        if screen.maximized is not None:
            screen.minimize()
        elif screen.current is not None:
            screen.maximize(screen.current, container=False)

    def action_toggle_hosts(self) -> None:
        from awm_tui.tui.widgets.pane_stats import PaneStats

        if (pane := self._pane()) is not None:
            stats = pane.query_one(PaneStats)
            stats.per_host = not stats.per_host

    def action_pane_curves(self) -> None:
        """The current pane: log → resolve curve → tokens and cost → log."""
        if (pane := self._pane()) is not None:
            pane.cycle_lower()

    def action_fleet_curves(self) -> None:
        screen = self.main_screen
        self.push_screen(FleetCurvesScreen(lambda: [(p.display_name, p.view.curve) for p in screen.panes]))

    # -- start and stop -------------------------------------------------------------------
    def on_run_pane_requested(self, message: RunPane.Requested) -> None:
        if message.action == "start":
            self.start_pane(message.pane)
        elif message.action in LIVE_FIELDS:
            self.apply_live(message.pane, (message.action,))
        else:
            self.stop_pane(message.pane)

    def action_start_pane(self) -> None:
        if (pane := self._pane()) is not None:
            pane.form.stash_key()
            self.start_pane(pane)

    def action_stop_pane(self) -> None:
        if (pane := self._pane()) is not None:
            self.stop_pane(pane)

    def action_start_all(self) -> None:
        for pane in self.main_screen.panes:
            if not pane.running:
                self.start_pane(pane)

    def start_pane(self, pane: RunPane, *, shared_key: SecretStr | None = None) -> None:
        """Start the pane's run (with its twin, when ticked); `shared_key`: a twin's, when its
        own pane has none (its run's pane's key)."""
        if pane.running:
            return
        self.main_screen.check_panes()
        if pane.form.has_errors:
            self.notify(f"{pane.border_title}: fix the marked fields first", severity="warning")
            return
        try:
            run, key = pane.build_run()
        except RunProblem as problem:
            pane.show_notes([Note(problem.field, "error", problem.text)])
            return
        pane.run_name = run.name
        pane.set_running(True)  # read-only at once: no edits while the engine takes it
        if self._first_start is None:
            self._first_start = self._clock()
        self.run_worker(self._start_run(pane, run, key or shared_key), group="runs",
                        description=f"start run {run.name}", exit_on_error=False)

    async def _start_twin(self, run: RunConfig, key: SecretStr | None) -> None:
        """The twin starts with its run, in its own pane: the one named NAME-nomem, made
        when there is none, its settings taken from the run's (`config.twins`)."""
        twin = twin_config(run)
        pane = next((p for p in self.main_screen.panes if p.values().name == twin.name), None)
        if pane is None:
            pane = await self.add_pane(twin, focus=False)
        elif pane.form.memory:
            self.notify(f"pane {twin.name} is not a no-memory twin: rename it so {run.name}'s twin can start",
                        severity="warning")
            return
        if pane.running:
            return
        pane.base = twin
        pane.form.follow(twin.name, str(twin_dir(run.output_dir)), str(run.limit), str(run.workers), run.llm,
                         twin.budget)
        self.start_pane(pane, shared_key=key)

    async def _start_run(self, pane: RunPane, run: RunConfig, key: SecretStr | None) -> None:
        """The pane's key (a `file:` one read in a thread) through the one resolver and the
        one choice of key, then the Fleet; a problem is shown on its field."""
        from awm_tui.engine.fleet import RunRefused

        try:
            resolved = resolve_run(self.config, run, problems=self.key_problems, api_key=await aresolve_key(key))
        except ConfigError as exc:
            pane.set_running(False)
            pane.show_notes([Note("profile", "error", f"{exc.problem}; {exc.fix}")])
            return
        if resolved.key_path == OVERRIDE and resolved.key_problem is not None:  # the pane's own key
            pane.set_running(False)
            pane.show_notes([Note("key", "error", str(resolved.key_problem))])
            return
        try:
            fleet = await self._wait_fleet()
            await fleet.start(resolved)
        except (RunRefused, RuntimeError) as refused:
            pane.set_running(False)
            pane.view = replace(pane.view, phase="failed", reason=str(refused))
            self.notify(str(refused), title=f"{run.name} refused", severity="error", timeout=10)
            return
        if run.twin:  # once its run is under way: a refused run leaves no twin running alone
            await self._start_twin(run, key)

    def stop_pane(self, pane: RunPane) -> None:
        if pane.running and pane.run_name and self.fleet is not None:
            pane.add_log_lines([f"stopping {pane.run_name}: checkpoint, then containers removed…"])
            self.run_worker(self.fleet.stop(pane.run_name), group="runs",
                            description=f"stop run {pane.run_name}", exit_on_error=False)

    # -- live control of a running run ----------------------------------------------------
    def _running_pane(self) -> RunPane | None:
        pane = self._pane()
        if pane is not None and not (pane.running and pane.run_name and self.fleet is not None):
            self.notify(f"{pane.border_title}: no run going in this pane (ctrl+s starts it)", severity="warning")
            return None
        return pane

    def action_pause_pane(self) -> None:
        """Pause the pane's run (its tasks in flight finish, none starts), or resume it."""
        if (pane := self._running_pane()) is None or self.fleet is None or pane.run_name is None:
            return
        resume = pane.view.paused
        (self.fleet.resume if resume else self.fleet.pause)(pane.run_name)
        pane.add_log_lines([f"{'resuming' if resume else 'pausing'} {pane.run_name}"
                            + ("" if resume else ": the tasks in flight finish, no new one starts")])

    def action_pause_run(self) -> None:
        if (pane := self._running_pane()) is not None and not pane.view.paused:
            self.action_pause_pane()

    def action_resume_run(self) -> None:
        if (pane := self._running_pane()) is not None and pane.view.paused:
            self.action_pause_pane()

    def action_apply_live(self) -> None:
        if (pane := self._running_pane()) is not None:
            self.apply_live(pane, LIVE_FIELDS)

    def apply_live(self, pane: RunPane, fields: Iterable[str]) -> None:
        """The pane's live fields (limit, workers, budget), taken by its running run."""
        if self.fleet is not None:
            apply_live(self.fleet, pane, fields)

    # -- events from the engine -----------------------------------------------------------
    def on_run_events_arrived(self, message: RunEventsArrived) -> None:
        screen = self.main_screen
        by_run: dict[str, list] = {}
        for event in message.events:
            if not self.status.route(self, event, by_run):  # a key's or a host's: fleet-wide
                by_run.setdefault(event.run, []).append(event)
        with self.batch_update():
            for run, events in by_run.items():
                if (pane := screen.pane_by_run(run)) is not None:
                    pane.apply_events(events)
            for run, lines in message.log_lines.items():
                if (pane := screen.pane_by_run(run)) is not None:
                    if dropped := message.dropped.get(run):
                        pane.add_log_lines([f"… {dropped} older line(s) skipped (see events.jsonl)"])
                    pane.add_log_lines(lines)
            link_twins(screen.panes)

    def action_docker_hosts(self) -> None:
        self.push_screen(HostsScreen(self.status.hosts.values()))

    def on_metrics_arrived(self, message: MetricsArrived) -> None:
        with self.batch_update():
            for snapshot in message.snapshots:
                if (pane := self.main_screen.pane_by_run(snapshot.run)) is not None:
                    pane.apply_events([snapshot])
            self.refresh_fleet_bar()

    def refresh_fleet_bar(self) -> None:
        bars = self.main_screen.query_children(FleetBar)  # a child of the screen: no walk of the DOM
        if not bars:  # the screen is being torn down
            return
        panes = self.main_screen.panes
        link_twins(panes)  # a pane added, removed or renamed may make or break a pair
        views: Iterable[RunView] = [pane.view for pane in panes]
        running = [pane.view for pane in panes if pane.running]
        elapsed = None if self._first_start is None else self._clock() - self._first_start
        spend = latest_fleet_spend(views)
        bars.first().totals = FleetTotals(
            panes=len(panes),
            active=sum(1 for pane in panes if pane.running),
            evals_per_minute=sum(v.metrics.evaluations_per_minute for v in running),
            # The fleet also counts the shared evaluation pool, which belongs to no run.
            connections_open=(self.fleet.open_connections() if self.fleet is not None
                              else sum(v.metrics.connections_open for v in views)),
            cost=sum(v.metrics.cost for v in views),
            elapsed_s=elapsed,
            budget=spend.limit if spend is not None else None,
            spent=spend.spent if spend is not None else 0.0,
        )

    # -- memory and old output directories ------------------------------------------------
    def _pane_output(self) -> tuple[str, Path] | None:
        """The current pane's label and output directory, or None (with a notice)."""
        if (pane := self._pane()) is None:
            return None
        output = pane.values().output
        if not output:
            self.notify("this pane has no output directory yet", severity="warning")
            return None
        return pane.border_title or pane.id or "", Path(output)

    def action_memory(self) -> None:
        if (found := self._pane_output()) is not None:
            self.push_screen(MemoryScreen(*found))

    def action_keys(self) -> None:
        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(self.status.keys.values()))

    def action_trajectory(self) -> None:
        """The trajectory of the task the pane's run finished last."""
        if (found := self._pane_output()) is not None:
            label, output = found
            self.run_worker(self._open_trajectory(output, label), group="read",
                            description="open the last trajectory", exit_on_error=False)

    async def _open_trajectory(self, output: Path, label: str) -> None:
        try:
            instance = await asyncio.to_thread(last_finished, output)
        except StateError as exc:
            self.notify(str(exc), severity="error")
            return
        if instance is None:
            self.notify(f"no finished task in {output} yet", severity="warning")
            return
        self.push_screen(TrajectoryScreen(output, instance, label))

    def action_open_output_dir(self) -> None:
        self.push_screen(OpenOutputDir(), callback=self._open_output_dir)

    def _open_output_dir(self, path: Path | None) -> None:
        if path is not None:
            self.run_worker(self._open(path), group="read", description=f"open {path}", exit_on_error=False)

    async def _open(self, path: Path) -> None:
        if not await asyncio.to_thread(path.is_dir):
            self.notify(f"not a directory: {path}", severity="error")
            return
        summary = await asyncio.to_thread(read_output_dir, path)
        same = [r for r in self.config.runs if r.output_dir.resolve() == path.resolve()]
        name = (same[0].name if same else None) or summary.run_name or path.name
        # The directory is read here, announced once (add_pane's own read logged it again).
        pane = await self.add_pane(same[0] if same else None, output=str(path), name=name,
                                   limit=max(5, summary.done), read_output=False)
        await self._show_checkpoint(pane, announce=True)

    # -- quitting ---------------------------------------------------------------------------
    async def action_quit(self) -> None:
        active = list(self.fleet.active) if self.fleet is not None else []
        if active:
            self.push_screen(QuitConfirm(active), callback=self._quit_answered)
        else:
            self._begin_shutdown()

    def _quit_answered(self, confirmed: bool | None) -> None:
        if confirmed:
            self._begin_shutdown()

    def _begin_shutdown(self) -> None:
        self.run_worker(self._stop_runs_then_exit(), group="shutdown", exclusive=True,
                        description="stop runs and quit", exit_on_error=False)

    async def _stop_runs_then_exit(self) -> None:
        if self.fleet is not None and list(self.fleet.active):
            self.notify("stopping runs: checkpoints, then containers removed…", timeout=30)
            await self.fleet.stop_all()
        self._quitting.set()
        if self._fleet_worker is not None and self._fleet_worker.is_running:
            await self._fleet_worker.wait()
        self.relay.close()
        self.exit(0)

    # -- command palette -----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Switch theme", "awm-dark, awm-light, awm-ansi, …", self.action_change_theme)
        yield SystemCommand("API keys", "Every key's calls, 429s, backoff and credits, masked (f7)",
                            self.action_keys)
        if screen is not self.main_screen:
            return  # the pane commands would act on panes hidden behind this screen
        yield from pane_commands(self)


def run_tui(config: AppConfig | None, *, theme: str | None, demo: bool, output_root: Path | None,
            key_problems: Mapping[str, KeyProblem] | None = None, twin: bool = False) -> int:
    """Run the control center until the user quits; the exit code."""
    if not demo:
        app = AWMApp(config or AppConfig(), theme=theme, output_root=output_root, key_problems=key_problems)
        app.run()
        return app.return_code or 0

    async def _demo() -> int:
        from awm_tui.demo import DemoEnvironment

        async with DemoEnvironment(output_root, twin=twin) as environment:
            app = AWMApp(environment.config, theme=theme, demo=environment,
                         output_root=environment.output_root)
            await app.run_async()
            return app.return_code or 0

    return asyncio.run(_demo())
