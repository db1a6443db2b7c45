"""report.json, the run's outcomes in the SWE-bench harness's schema, on the bundled sample tasks."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from awm_tui.config.plan import resolve_run
from awm_tui.config.models import AppConfig, EvalConfig, RunConfig
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.outcomes import Outcome
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for, subset

IDS = ["minicsv__minicsv-3", "textkit__textkit-4"]


async def test_report_agrees_with_the_checkpoint_and_a_rerun_rewrites_it(tmp_path: Path) -> None:
    """One resolved, one empty patch (the model is told to submit nothing); the report is
    rebuilt when the same run starts again, even with nothing left to do (a kill may have
    left it stale)."""
    out = tmp_path / "out"
    dataset = subset(tmp_path, "two", IDS)
    async with SimLLMServer(SimOptions(seed=2, submit=((IDS[1], "empty"),))) as sim:
        run = RunConfig(name="rep", llm="llm.sim", output_dir=out, limit=2, sandbox="local",
                        dataset=str(dataset), induce_every=5, induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=[run], eval=EvalConfig(mode="local"))

        async def once() -> None:
            async with Fleet(config, lambda event: None) as fleet:
                await fleet.start(resolve_run(config, run, api_key=SecretStr("sim-report-key-0000-0001")))
                assert (await fleet.wait())["rep"].status == "finished"

        await once()
        report = json.loads((out / "report.json").read_text())
        checkpoint = json.loads((out / "checkpoint.json").read_text())
        assert {i: r["outcome"] for i, r in checkpoint["finished"].items()} == {
            IDS[0]: Outcome.RESOLVED, IDS[1]: Outcome.EMPTY_PATCH}
        assert (report["resolved_ids"], report["empty_patch_ids"]) == ([IDS[0]], [IDS[1]])
        assert (report["completed_ids"], report["error_ids"], report["incomplete_ids"]) == ([IDS[0]], [], [])
        assert report["submitted_ids"] == sorted(json.loads((out / "preds.json").read_text()))
        assert report["graders"] == {IDS[0]: "pytest"}  # nothing graded the empty patch

        (out / "report.json").write_text("{}")  # as a kill between two writes could leave it
        await once()
    assert json.loads((out / "report.json").read_text()) == report


def test_task_finished_lines_read_back_with_typed_outcomes() -> None:
    """events.jsonl lines give the enum back, and lines written before outcomes existed
    (an error said as exit_status 'Error: …') read as the same outcomes."""
    from awm_tui.engine.events import TaskFinished, event_from_dict
    from awm_tui.engine.outcomes import ErrorKind

    base = {"kind": "task_finished", "run": "r", "instance_id": "a__b-1", "resolved": False, "reward": 0.0,
            "speedup": None, "steps": 3, "elapsed_s": 1.0, "cost": 0.0}
    new = TaskFinished(**{k: v for k, v in base.items() if k != "kind"}, exit_status="", outcome=Outcome.ERROR,
                       evaluated=False, error="cannot pull x: no such host", error_kind=ErrorKind.IMAGE)
    back = event_from_dict(json.loads(json.dumps(new.to_dict())))
    assert back == new and back.outcome is Outcome.ERROR and back.error_kind is ErrorKind.IMAGE
    old_error = event_from_dict({**base, "exit_status": "Error: HTTP 404: unknown instance", "evaluated": False})
    assert isinstance(old_error, TaskFinished)
    assert (old_error.outcome, old_error.error, old_error.exit_status) == (
        Outcome.ERROR, "HTTP 404: unknown instance", "")
    old_ok = event_from_dict({**base, "exit_status": "Submitted", "resolved": True, "reward": 1.0})
    assert isinstance(old_ok, TaskFinished) and old_ok.outcome is Outcome.RESOLVED
