"""What a batch prints: one line per finished task and key moment, status lines, JSON lines.

Written for a terminal and for log files alike: a time stamp and the run name
start every line, colour only on a TTY and never with NO_COLOR. With `--json`
stdout carries nothing but JSON lines (`event.to_dict()`), and the notes go
to stderr. Keys appear only masked: events never hold one, and every line is
scrubbed of the raw keys anyway, as a second guard.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from awm_tui.config.keys import mask_key
from awm_tui.engine.events import (
    CheckpointSaved,
    CreditsLow,
    Event,
    HostStatus,
    ImagePull,
    InductionDone,
    KeyHealth,
    LLMCall,
    LogLine,
    MemoryUpdated,
    MetricsData,
    RunFailed,
    RunFinished,
    RunStarted,
    SpendUpdated,
    SandboxPlaced,
    StatusChanged,
    TaskFinished,
    TaskStarted,
)
from awm_tui.engine.outcomes import Outcome
from awm_tui.engine.scheduler import RunStatus, TaskStatus

VERDICTS = {
    Outcome.RESOLVED: ("resolved", "green"),
    Outcome.UNRESOLVED: ("unresolved", "red"),
    Outcome.EMPTY_PATCH: ("empty patch", "yellow"),
    Outcome.NOT_EVALUATED: ("not evaluated", "dim"),
}


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, never with NO_COLOR set to anything non-empty (no-color.org)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not os.environ.get("NO_COLOR")


def make_console(stream: IO[str]) -> Console:
    colour = use_colour(stream)
    # Decided here, not guessed by rich from TERM/FORCE_COLOR: logs stay free of escapes.
    return Console(file=stream, force_terminal=colour, no_color=not colour, highlight=False,
                   soft_wrap=True, emoji=False, markup=False, width=None if colour else 200)


@dataclass
class RunTally:
    """What the lines and the summary need to know about one run, kept from its events."""

    total: int = 0
    done: int = 0
    resolved: int = 0
    workflows: int | None = None
    sandbox: str = ""
    model: str = ""
    output_dir: str = ""
    pull: ImagePull | None = None
    """The image pull under way, shown in the status line."""
    served_model: str = ""
    """The model as the server names it in its replies (said once, when first seen)."""
    instance_id: str | None = None
    step: int | None = None
    last_call: LLMCall | None = None
    spend: SpendUpdated | None = None
    """The run's latest spend against its budgets."""
    host: str = ""
    """The Docker host of the task in hand (`[[docker.hosts]]`)."""
    said: str = ""
    """The error a typed event just printed: the log line restating it is skipped."""


class Reporter:
    def __init__(self, *, json_lines: bool, secrets: list[str], out: IO[str] | None = None,
                 err: IO[str] | None = None) -> None:
        self.json_lines = json_lines
        self._out = out or sys.stdout
        self.console = make_console(self._out)
        self.err_console = make_console(err or sys.stderr)
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.tallies: dict[str, RunTally] = {}
        self.hosts: dict[str, HostStatus] = {}
        """The latest status of each Docker host (`[[docker.hosts]]`)."""
        self.keys: dict[str, str] = {}
        """Masked key per run, shown when the run starts and when it fails."""
        self.key_health: dict[str, KeyHealth] = {}
        """The latest health of each run's key, by run (for its status line)."""
        self._broken = False

    # -- the event sink (on the loop; must not block or raise) -----------------------------

    def sink(self, event: Event) -> None:
        if isinstance(event, (KeyHealth, CreditsLow)):
            self._key_event(event)
            return
        if isinstance(event, HostStatus):
            self._host(event)
            return
        tally = self.tallies.setdefault(event.run, RunTally())
        if isinstance(event, RunStarted):
            tally.total, tally.done = event.tasks_total, event.resumed
            tally.sandbox, tally.model, tally.output_dir = event.sandbox, event.model, event.output_dir
        elif isinstance(event, CheckpointSaved):  # the checkpoint's counts include resumed tasks
            tally.done, tally.resolved = event.done, event.resolved
        elif isinstance(event, MemoryUpdated):
            tally.workflows = event.workflows
        elif isinstance(event, ImagePull):
            tally.pull = None if event.done else event
        elif isinstance(event, TaskStarted):
            tally.instance_id, tally.step, tally.host = event.instance_id, None, ""
        elif isinstance(event, SandboxPlaced):
            tally.host = event.host
        elif isinstance(event, StatusChanged):
            tally.step = event.step
            tally.instance_id = event.instance_id or tally.instance_id
        elif isinstance(event, LLMCall) and event.ok:
            tally.last_call = event
        elif isinstance(event, SpendUpdated):
            tally.spend = event
        if self.json_lines:
            self._write_json(event.to_dict())
        else:
            line = self._describe(event, tally)
            if line is not None:
                self._line(event.run, line, ts=event.ts)

    def _key_event(self, event: KeyHealth | CreditsLow) -> None:
        """Fleet-wide (no run): the key's health feeds its runs' status lines; a low-credits
        warning is a line of its own."""
        if isinstance(event, KeyHealth):
            for run in event.runs:
                self.key_health[run] = event
        if self.json_lines:
            self._write_json(event.to_dict())
        elif isinstance(event, CreditsLow):
            of = f" of ${event.limit:.2f}" if event.limit is not None else ""
            self._line("keys", Text(f"warning: credits low on key {event.masked}: ${event.remaining:.2f}{of} left "
                                    f"(runs {', '.join(event.runs)})", style="yellow"), ts=event.ts)

    def _describe(self, event: Event, tally: RunTally) -> Text | None:
        if isinstance(event, TaskFinished):
            if event.outcome is Outcome.ERROR:
                tally.said = event.error
            return self._task_line(event, tally)
        if isinstance(event, ImagePull):
            if event.error:
                return None  # the task's error line says it
            if event.done or not (event.layers_total or event.bytes_done):
                return Text(f"image {event.image}: {'pulled' if event.done else 'pulling'}"
                            f"{event.figures()}", style="cyan")
            return None  # progress goes in the status lines
        if isinstance(event, LLMCall) and event.ok and event.model and event.model != tally.served_model:
            tally.served_model = event.model
            return Text(f"model as served: {event.model}", style="dim")
        if isinstance(event, RunStarted):
            resumed = f" ({event.resumed} already done, resuming)" if event.resumed else ""
            key = f" · key {self.keys[event.run]}" if event.run in self.keys else ""
            memory = "" if event.memory else " · no memory (no workflows, no induction)"
            return Text.assemble(("run started", "bold"), f" · sandbox {event.sandbox} · output {event.output_dir}"
                                 f" · {event.tasks_total} task{'s' if event.tasks_total != 1 else ''}{resumed} · model {event.model}{key}{memory}")
        if isinstance(event, InductionDone):
            if not event.ok:
                tally.said = event.error
                return Text.assemble((f"induction ({event.mode}) failed", "yellow"), f": {event.error}"
                                     " (memory kept as it was)")
            return Text(f"induction ({event.mode}): +{len(event.added)} added, ~{len(event.changed)} changed, "
                        f"-{len(event.removed)} removed", style="cyan")
        if isinstance(event, MemoryUpdated):
            return Text(f"memory v{event.version}: {event.workflows} workflows", style="cyan")
        if isinstance(event, RunFailed):
            masked = self.keys.get(event.run, "")
            key = f" (key {masked})" if masked and masked not in event.reason else ""
            return Text.assemble(("run failed", "bold red"), f": {event.reason}{key}")
        if isinstance(event, RunFinished):
            if event.stopped and event.reason.startswith("budget reached"):
                return Text.assemble(("budget reached", "bold yellow"), f": {event.reason.partition(': ')[2]}; "
                                     f"{event.done} done, {event.resolved} resolved (rerun with a higher budget to resume)")
            if event.stopped:
                return Text.assemble(("run stopped", "bold yellow"), f": {event.done} done, {event.resolved} resolved "
                                     "(rerun the same command to resume)")
            return Text.assemble(("run finished", "bold green"), f": {event.done} done, {event.resolved} resolved")
        if isinstance(event, LogLine) and event.level in ("warning", "error"):
            said, tally.said = tally.said, ""
            if said and said in event.message:
                return None   # the engine's log line for what the task or induction line said
            first = event.message.strip().splitlines()[0] if event.message.strip() else ""
            return Text(f"{event.level}: {first}", style="red" if event.level == "error" else "yellow")
        return None

    def _task_line(self, event: TaskFinished, tally: RunTally) -> Text:
        where = f"[{tally.done}/{tally.total}]" if tally.total else ""
        if event.outcome is Outcome.ERROR:
            return Text.assemble(("task error", "red"), f" {event.instance_id} ({event.error_kind}): {event.error} "
                                 "(not checkpointed: a rerun retries it)")
        verdict = VERDICTS[event.outcome]
        speedup = f"{event.speedup:.2f}x" if event.speedup is not None else "-"
        graded = f" · graded by {event.grader}" if event.grader else ""
        return Text.assemble(f"task {where} {event.instance_id} ", verdict,
                             f" · reward {event.reward:.2f} · speedup {speedup} · {event.steps} commands, "
                             f"{event.model_calls} model calls · {event.elapsed_s:.1f}s · {event.exit_status}{graded}")

    # -- status lines, notes, the summary --------------------------------------------------

    def status(self, run: str, metrics: MetricsData, in_flight: tuple[TaskStatus, ...] | None = None) -> None:
        """The periodic line per active run (human output only: --json has metrics events)."""
        if self.json_lines:
            return
        tally = self.tallies.get(run, RunTally())
        total = tally.total or "?"
        where = ""
        if in_flight is not None and len(in_flight) > 1:
            where = f" · {len(in_flight)} in flight: " + ", ".join(
                t.instance_id + (f" step {t.step}" if t.step else "") for t in in_flight)
        elif tally.instance_id:
            where = f" · {tally.instance_id}" + (f" step {tally.step}" if tally.step else "")
        call = tally.last_call
        if call is None:
            last = " · no model reply yet"
        else:
            about = "~" if call.usage_estimated else ""   # the server counted none
            last = f" · last call {call.latency_s:.1f}s, {about}{call.prompt_tokens}→{call.completion_tokens} tokens"
        cut = f", {metrics.truncated_replies} cut at max tokens" if metrics.truncated_replies else ""
        pulling = f" · pulling {tally.pull.image}{tally.pull.figures()}" if tally.pull else ""
        health = self.key_health.get(run)
        key = f" · {health.line()}" if health is not None else ""
        if tally.host:
            down = self.hosts.get(tally.host)
            where += f" on {tally.host}" + (" (DOWN)" if down is not None and not down.up else "")
        self._line(run, Text(
            f"status {tally.done}/{total} done, {tally.resolved} resolved{where}{pulling}{last} · "
            f"{metrics.evaluations_per_minute:.1f} evals/min · {metrics.connections_open} connections open · "
            f"{metrics.retries} retries ({metrics.rate_limited} rate-limited{cut}) · {spend_text(tally.spend, metrics)}{key}",
            style="dim"))

    def _host(self, event: HostStatus) -> None:
        """Every host status goes to --json; a human sees a line when a host goes down or
        comes back, and the hosts in each round of status lines."""
        before = self.hosts.get(event.url)
        self.hosts[event.url] = event
        if self.json_lines:
            self._write_json(event.to_dict())
        elif before is not None and before.up != event.up:
            style = "green" if event.up else "bold red"
            tail = "" if event.up else ": its tasks end as errors, new tasks go to the other hosts"
            self._line("host", Text(event.line() + tail, style=style), ts=event.ts)

    def host_lines(self) -> None:
        """One status line per Docker host (human output only: --json has host_status events)."""
        if self.json_lines:
            return
        for status in self.hosts.values():
            self._line("host", Text(status.line(), style="dim" if status.up else "bold red"))

    def full_status(self, runs: list[RunStatus]) -> None:
        """Every run's status on request (SIGUSR1): a JSON line, or a line per run and per task in flight."""
        if self.json_lines:
            self._write_json({"kind": "status_report", "ts": time.time(), "runs": [dataclasses.asdict(r) for r in runs]})
            return
        if not runs:
            self.note("status: no run has started yet")
        for r in runs:
            latency = f"{r.last_call_latency_s:.2f}s" if r.last_call_latency_s is not None else "none yet"
            paused = " (paused)" if r.paused else ""
            self._line(r.name, Text(
                f"status: {r.phase}{paused} · {r.done}/{r.tasks_total} done, {r.resolved} resolved, "
                f"{r.errors} errors · limit {r.limit}, workers {r.workers} · memory v{r.memory_version} · "
                f"last call {latency} · {len(r.in_flight)} in flight", style="bold"))
            for t in r.in_flight:
                self._line(r.name, Text(f"  task {t.index} {t.instance_id}: {t.phase} step {t.step}, "
                                        f"{t.elapsed_s:.1f}s, memory v{t.memory_version}"))

    def note(self, message: str, *, style: str | None = None) -> None:
        """A line for the user that is not an event; stderr when stdout is JSON."""
        console = self.err_console if self.json_lines else self.console
        self._print(console, Text(self.scrub(message), style=style or ""))

    def error(self, message: str) -> None:
        self._print(self.err_console, Text(f"awm-tui: {self.scrub(message)}"))

    def renderable(self, renderable: Any) -> None:
        """The summary table: stdout for humans, stderr beside JSON lines."""
        self._print(self.err_console if self.json_lines else self.console, renderable)

    def json_line(self, data: dict[str, Any]) -> None:
        if self.json_lines:
            self._write_json(data)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, mask_key(secret))
        return text

    # -- writing ---------------------------------------------------------------------------

    def _line(self, run: str, body: Text, *, ts: float | None = None) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(ts or time.time()))
        line = Text.assemble((stamp, "dim"), " ", (f"{run:<12}", "bold"), " ", body)
        if self.scrub(line.plain) != line.plain:
            line = Text(self.scrub(line.plain))  # a leak is rare: losing the colours then is fine
        self._print(self.console, line)

    def _write_json(self, data: dict[str, Any]) -> None:
        if self._broken:
            return
        try:
            self._out.write(self.scrub(json.dumps(data, ensure_ascii=False, default=str)) + "\n")
            self._out.flush()  # one line at a time, so a reader (or `tail -f`) sees it now
        except (OSError, ValueError):
            self._broken = True  # the terminal went away (SSH dropped): keep running, stop writing

    def _print(self, console: Console, renderable: Any) -> None:
        if self._broken:
            return
        try:
            console.print(renderable)
            console.file.flush()
        except (OSError, ValueError):
            self._broken = True



def spend_text(spend: SpendUpdated | None, metrics: MetricsData) -> str:
    """`$0.0123`, or the spend against each budget set; and what the prompt cache took."""
    budgets = spend.budgets_text() if spend is not None else ""
    parts = [f"spent {budgets}" if budgets else f"${metrics.cost:.4f}", metrics.cache_text()]
    return " · ".join(p for p in parts if p)
