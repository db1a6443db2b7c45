"""Failures around a run that must not stop it, and must not pass unseen either:
a face (TUI or batch reporter) that raises on an event, and an event log on a full disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, LogLine, TaskStarted
from awm_tui.engine.fleet import Fleet
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = SecretStr("sim-trace-key-00000000-7e11")


def one_run(sim: SimLLMServer, out: Path, limit: int = 2) -> tuple[AppConfig, RunConfig]:
    profile = LLMProfile(model="awm-sim", base_url=sim.url, label="simulated", timeout=30,
                         num_retries=3, retry_min_wait=0.05, retry_max_wait=0.2)
    run = RunConfig(name="traced", llm="llm.sim", output_dir=out, limit=limit, sandbox="local",
                    induce_every=5, induction="rule", command_timeout=60)
    return AppConfig(llm={"llm.sim": profile}, runs=[run], eval=EvalConfig(mode="local")), run


async def test_a_face_that_raises_is_counted_logged_and_shown(tmp_path: Path) -> None:
    seen: list[Event] = []

    def face(event: Event) -> None:
        if isinstance(event, TaskStarted):
            raise KeyError("pane-7")  # a face bug on one kind of event
        seen.append(event)

    async with SimLLMServer(SimOptions(seed=3)) as sim:
        config, run = one_run(sim, tmp_path / "out")
        async with Fleet(config, face, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())["traced"]

    assert outcome.status == "finished" and outcome.done == 2
    assert outcome.face_errors == 2  # every failure counted ...
    shown = [e for e in seen if isinstance(e, LogLine) and "display failed" in e.message]
    assert len(shown) == 1 and "KeyError" in shown[0].message  # ... shown once on the face ...
    logged = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    traces = [e for e in logged if e["kind"] == "log" and "display failed" in e["message"]]
    assert len(traces) == 1 and "Traceback" in traces[0]["message"]  # ... and logged once with its traceback


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_an_event_log_on_a_full_disk_is_reported_not_swallowed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    seen: list[Event] = []
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        config, run = one_run(sim, out)
        async with Fleet(config, seen.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())["traced"]

    assert outcome.status == "finished" and outcome.done == 2  # the state files are unaffected
    reports = [e for e in seen if isinstance(e, LogLine) and e.message.startswith("events.jsonl:")]
    assert reports and all(e.level == "error" for e in reports)
    assert "No space left on device" in reports[0].message
    assert len(json.loads((out / "checkpoint.json").read_text())["finished"]) == 2


async def test_a_run_stopped_before_it_began_is_an_outcome_and_frees_its_directory(tmp_path: Path) -> None:
    """`Fleet.stop` right after `start`: the run's task never ran, so it could not release
    its output directory itself; stop used to hand back the CancelledError and keep the lock."""
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        config, run = one_run(sim, tmp_path / "out")
        async with Fleet(config, lambda event: None) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = await fleet.stop("traced")
            assert outcome is not None and outcome.status == "stopped" and outcome.done == 0
            again = await fleet.start(resolve_run(config, run, api_key=KEY))  # the directory is free for the same run again
            await fleet.stop(again.name)
