"""What real models send, end to end: the simulated model on loopback plays each
shape (python-then-bash replies, replies cut at max_tokens, a context window that
overflows, a template that drops the system message) through the real engine,
with a local sandbox and local evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import AgentStep, Event, LLMCall, LogLine, MetricsSnapshot, TaskFinished
from awm_tui.engine.fleet import Fleet, RunOutcome
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for, subset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TASK = "minicsv__minicsv-3"
KEY = SecretStr("sim-shapes-key-0000-5a7e")
WINDOW = 1100
"""Tokens: the sim's prompt for TASK passes this at its 4th call, after the patch is applied."""


@dataclass
class Ran:
    outcome: RunOutcome
    events: list[Event]
    out: Path

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def logged(self, level: str) -> list[str]:
        return [e.message for e in self.of(LogLine) if e.level == level]

    def trajectory(self) -> dict:
        return json.loads((self.out / "trajectories" / f"{TASK}.json").read_text())


async def run_one(tmp_path: Path, options: SimOptions, **profile: Any) -> Ran:
    events: list[Event] = []
    out = tmp_path / "out"
    async with SimLLMServer(options) as sim:
        run = RunConfig(name="shapes", llm="llm.sim", output_dir=out, dataset=str(subset(tmp_path, "d", [TASK])),
                        limit=1, sandbox="local", induction="rule", command_timeout=60)
        config = AppConfig(llm={"llm.sim": profile_for(sim, **profile)}, runs=[run], eval=EvalConfig(mode="local"))
        async with Fleet(config, events.append, metrics_interval=0.2) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())["shapes"]
    return Ran(outcome, events, out)


async def test_python_block_before_the_bash_block_runs_the_bash_block(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(python_first_rate=1.0))
    assert ran.outcome.status == "finished" and ran.outcome.resolved == 1
    steps = ran.of(AgentStep)
    assert steps and not any(s.format_error for s in steps)
    assert not any("Now run it in the shell" in s.command for s in steps)
    assert "```python" in ran.trajectory()["messages"][2]["content"]  # the shape really was sent


async def test_replies_without_usage_are_estimated_and_said_once(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(stream_usage=False, report_cost=False), stream=True,
                        input_cost_per_token=1e-5)
    assert ran.outcome.status == "finished" and ran.outcome.resolved == 1
    calls = ran.of(LLMCall)
    assert len(calls) > 1 and all(c.prompt_tokens > 0 and c.cost > 0 for c in calls)
    said = [m for m in ran.logged("warning") if "reports no token usage" in m]
    assert len(said) == 1 and "estimated at 4 characters per token" in said[0]
    assert not any("system message" in m for m in ran.logged("warning"))


async def test_a_reply_cut_at_max_tokens_is_named_and_counted(tmp_path: Path) -> None:
    # 120 tokens: the scripted patch reply (~215 tokens) is cut, the others fit.
    ran = await run_one(tmp_path, SimOptions(), max_output_tokens=120)
    cut = [s for s in ran.of(AgentStep) if s.format_error]
    assert cut and all(s.output_preview == "reply cut at max_output_tokens (120); raise it" for s in cut)
    assert any(c.finish_reason == "length" for c in ran.of(LLMCall))
    assert ran.of(MetricsSnapshot)[-1].metrics.truncated_replies == len(cut)
    corrections = [m["content"] for m in ran.trajectory()["messages"] if m["role"] == "user"]
    assert any("cut off at the output limit (120 tokens)" in c for c in corrections)
    assert not any("fenced blocks found" in c for c in corrections)


async def test_context_overflow_ends_the_task_with_its_trajectory_evaluated_and_checkpointed(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(context_window=WINDOW))
    assert ran.outcome.status == "finished" and ran.outcome.errors == 0
    [finished] = ran.of(TaskFinished)
    assert finished.exit_status == "ContextLimit" and finished.evaluated
    checkpoint = json.loads((ran.out / "checkpoint.json").read_text())
    assert checkpoint["finished"][TASK]["exit_status"] == "ContextLimit"
    trajectory = ran.trajectory()
    assert trajectory["exit_status"] == "ContextLimit" and len(trajectory["messages"]) >= 6
    assert "git apply" in trajectory["patch"] or trajectory["patch"].startswith("diff --git")
    assert TASK in json.loads((ran.out / "preds.json").read_text())
    [warning] = [m for m in ran.logged("warning") if "ContextLimit" in m]
    assert "maximum context length is 1100 tokens" in warning and "set max_input_tokens" in warning


async def test_a_known_window_elides_old_outputs_instead(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(context_window=WINDOW), max_input_tokens=WINDOW)
    [finished] = ran.of(TaskFinished)
    assert finished.exit_status == "Submitted" and finished.resolved
    trims = [m for m in ran.logged("info") if "context: elided" in m]
    assert trims and "max_input_tokens 1,100" in trims[0]
    assert all(c.ok for c in ran.of(LLMCall))
    # the trajectory keeps every output in full: only the copy sent was cut
    assert not any("elided to fit" in m["content"] for m in ran.trajectory()["messages"])


async def test_a_dropped_system_message_is_detected_once(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(ignore_system=True))
    warnings = [m for m in ran.logged("warning") if "system_prompt_mode" in m]
    assert len(warnings) == 1 and 'system_prompt_mode = "user" in [llm.sim]' in warnings[0]
    assert ran.of(AgentStep)[0].format_error  # the rules never reached the model


async def test_a_low_prompt_count_is_probed_before_anyone_is_warned(tmp_path: Path) -> None:
    """A tokenizer thriftier on the prompt than on the reply makes the first count look
    like the system text is missing; the probe shows it arrives, so no warning."""
    ran = await run_one(tmp_path, SimOptions(prompt_chars_per_token=6.5))
    assert ran.outcome.status == "finished" and ran.outcome.resolved == 1
    assert not [m for m in ran.logged("warning") if "system" in m]


async def test_streamed_replies_without_usage_are_probed_for_a_dropped_system_message(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(ignore_system=True, stream_usage=False), stream=True)
    [warning] = [m for m in ran.logged("warning") if "system_prompt_mode" in m]
    assert "drops the system message (a probe counted" in warning


async def test_system_prompt_mode_user_gets_the_rules_through(tmp_path: Path) -> None:
    ran = await run_one(tmp_path, SimOptions(ignore_system=True), system_prompt_mode="user")
    assert not [m for m in ran.logged("warning") if "system_prompt_mode" in m]
    assert not any(s.format_error for s in ran.of(AgentStep))
    assert ran.outcome.resolved == 1
    # the trajectory records the conversation as meant, system message included
    assert ran.trajectory()["messages"][0]["role"] == "system"
