"""The report's per-task figures come from per-task records, not from the order of events:
a run with several tasks in flight logs their calls interleaved."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.fleet import Fleet
from awm_tui.report.data import read_run
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for, subset

TASKS = ["minicsv__minicsv-3", "textkit__textkit-4"]


async def test_tokens_per_task_are_the_tasks_own_with_tasks_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        run = RunConfig(name="r", llm="llm.sim", output_dir=out, dataset=str(subset(tmp_path, "two", TASKS)),
                        limit=2, workers=2, sandbox="local", induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=[run], eval=EvalConfig(mode="local"))
        async with Fleet(config, lambda event: None) as fleet:
            await fleet.start(resolve_run(config, run, api_key=SecretStr("sim-per-task-key-0001")))
            await fleet.wait()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["kind"] == "llm_call" and e["purpose"] == "agent"]
    own = {t: sum(c["prompt_tokens"] for c in calls if c["instance_id"] == t) for t in TASKS}
    finished = json.loads((out / "checkpoint.json").read_text())["finished"]
    assert {t: finished[t]["prompt_tokens"] for t in TASKS} == own and all(own.values())
    assert own[TASKS[0]] != own[TASKS[1]]
    # However the two workers' events fell, make it the worst case: the second task starts
    # before the first one's calls.
    second = next(e for e in events if e["kind"] == "task_started" and e["instance_id"] == TASKS[1])
    events.remove(second)
    first_at = next(i for i, e in enumerate(events) if e["kind"] == "task_started")
    events.insert(first_at + 1, second)
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    report = read_run(out)
    assert {t.instance_id: t.prompt_tokens for t in report.tasks} == own
    # Without the checkpoint's record (a checkpoint from before it), events name their task.
    for result in finished.values():
        result["prompt_tokens"] = result["completion_tokens"] = 0
    (out / "checkpoint.json").write_text(json.dumps({"version": 1, "run_name": "r", "finished": finished}))
    (out / "journal.jsonl").unlink(missing_ok=True)
    assert {t.instance_id: t.prompt_tokens for t in read_run(out).tasks} == own
