"""The stall watchdog against real peers: a model endpoint that takes a request and never
answers, a command that hangs, real dockerd. The stalled task ends as a `stalled` error
within stall_timeout + a few seconds, its container is gone, the run goes on to the next
task, nothing of it is checkpointed, and a rerun retries it.

The model is the simulated one behind a small aiohttp.web front on loopback that, for the
first request of one chosen task, hangs (until the client closes the connection) or
answers with a command that hangs; every other request is forwarded as it is.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, DockerConfig, EvalConfig, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.events import Event, LogLine, TaskFinished, TaskStarted
from awm_tui.engine.fleet import Fleet
from awm_tui.engine.outcomes import ErrorKind, Outcome
from awm_tui.engine.sandbox.docker import INSTANCE_LABEL, RUN_LABEL, DockerSandbox
from awm_tui.engine.watchdog import Stalled, watched
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for, subset

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(180)]

STALL = 10.0
"""Above what the sample tasks' quiet commands take on a loaded machine (pytest piped to tail)."""
HUNG, NEXT = "minicsv__minicsv-3", "textkit__textkit-4"
KEY = SecretStr("sim-watchdog-key-0000-1111")
GRACE = 5.0
"""Seconds beyond stall_timeout the watchdog may take to end the task and remove its container."""


@dataclass
class Front:
    """The model endpoint the run talks to; `hang` is "model", "command" or "" (forward all)."""

    upstream: str
    hang: str
    hung_requests: int = 0
    hang_began: float = 0.0
    """time.time() when the hung request arrived (events carry the same clock)."""
    closed_after: list[float] = field(default_factory=list)
    """Seconds from a hung request's arrival to the server seeing its connection closed."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if self.hang and HUNG in first_user and self.hung_requests == 0:
            self.hung_requests += 1
            self.hang_began = time.time()
            if self.hang == "model":
                return await self._never_answer(request)
            return web.json_response(_reply("I will wait for the build.\n\n```bash\nsleep 1000\n```"))
        async with aiohttp.ClientSession() as session, session.post(
                f"{self.upstream}/chat/completions", json=body,
                headers={"Authorization": request.headers["Authorization"]}) as upstream:
            return web.Response(body=await upstream.read(), status=upstream.status,
                                content_type="application/json")

    async def _never_answer(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.05)
        self.closed_after.append(time.monotonic() - arrived)
        return web.Response(status=500)  # never sent: the client is gone


def _reply(content: str) -> dict:
    return {"id": "front-1", "object": "chat.completion", "model": "awm-sim",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112}}


async def _serve(front: Front) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", front.chat)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/v1"


async def _run(tmp_path: Path, out: Path, name: str, docker_url: str, sim: SimLLMServer, hang: str,
               docker: aiodocker.Docker, stall: float = STALL) -> tuple[object, list[Event], Front, dict[str, list[str]], str]:
    """One run over [HUNG, NEXT]; also which containers of HUNG exist when its end is announced."""
    front = Front(upstream=sim.url, hang=hang)
    runner, url = await _serve(front)
    events: list[Event] = []
    left_at_end: dict[str, list[str]] = {}
    checks: list[asyncio.Task] = []

    async def containers_of(instance_id: str) -> None:
        found = await docker.containers.list(all=True, filters={"label": [
            f"{RUN_LABEL}={name}", f"{INSTANCE_LABEL}={instance_id}"]})
        left_at_end[instance_id] = [c.id for c in found]

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, TaskFinished) and event.instance_id == HUNG:
            checks.append(asyncio.ensure_future(containers_of(HUNG)))

    run = RunConfig(name=name, llm="llm.front", output_dir=out, dataset=str(subset(tmp_path, "d", [HUNG, NEXT])),
                    limit=2, sandbox="docker", induce_every=10, induction="rule",
                    command_timeout=3000, stall_timeout=stall)
    # The LLM timeout (600 s) and command_timeout (3000 s) are far longer: only the watchdog ends a hang.
    config = AppConfig(llm={"llm.front": profile_for(sim, base_url=url, timeout=600, num_retries=0)},
                       runs=[run], eval=EvalConfig(mode="local"), docker=DockerConfig(url=docker_url))
    try:
        async with Fleet(config, sink, metrics_interval=0.5) as fleet:
            await fleet.start(resolve_run(config, run, api_key=KEY))
            outcome = (await fleet.wait())[name]
        await asyncio.gather(*checks)
    finally:
        await runner.cleanup()
    return outcome, events, front, left_at_end, url


@pytest.mark.parametrize("hang", ["model", "command"])
async def test_a_stalled_task_is_cancelled_its_container_removed_and_retried_on_rerun(
    hang: str, docker_url: str, docker_client: aiodocker.Docker, docker_run_name: str, tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    async with SimLLMServer(SimOptions(seed=4)) as sim:
        outcome, events, front, left, url = await _run(tmp_path, out, docker_run_name, docker_url, sim, hang,
                                                       docker_client)
        assert front.hung_requests == 1
        ended = next(e for e in events if isinstance(e, TaskFinished) and e.instance_id == HUNG)
        took = ended.ts - front.hang_began
        assert STALL <= took <= STALL + GRACE, took
        assert ended.outcome == Outcome.ERROR and ended.error_kind == ErrorKind.STALLED, ended
        waited_on = f"the model (POST {url}/chat/completions)" if hang == "model" else "command `sleep 1000`"
        assert ended.error == f"stalled 10 s waiting on {waited_on}"
        said = [e.message for e in events if isinstance(e, LogLine) and "stalled" in e.message]
        assert said == [f"{HUNG}: stalled error: stalled 10 s waiting on {waited_on} "
                        "(not checkpointed: a rerun retries it)"]
        assert left[HUNG] == []  # removed before the run said the task had ended
        if hang == "model":  # the client closed its connection: the server stops working on it
            assert len(front.closed_after) == 1 and front.closed_after[0] <= STALL + GRACE
        # the run went on to the next task and finished it
        assert outcome.status == "finished" and (outcome.done, outcome.errors) == (1, 1), outcome
        assert list(json.loads((out / "checkpoint.json").read_text())["finished"]) == [NEXT]
        assert list(json.loads((out / "preds.json").read_text())) == [NEXT]
        report = json.loads((out / "report.json").read_text())
        assert report["error_ids"] == [HUNG] and report["error_kinds"] == {HUNG: "stalled"}

        # A rerun retries the stalled task (the model answers now) and only it.
        again, events, front, _, _ = await _run(tmp_path, out, docker_run_name, docker_url, sim, "", docker_client,
                                       stall=600)
    assert again.status == "finished" and (again.done, again.errors) == (2, 0), again
    assert [e.instance_id for e in events if isinstance(e, TaskStarted)] == [HUNG]
    assert sorted(json.loads((out / "checkpoint.json").read_text())["finished"]) == sorted([HUNG, NEXT])
    assert await docker_client.containers.list(all=True, filters={"label": [f"{RUN_LABEL}={docker_run_name}"]}) == []


async def test_a_command_that_keeps_printing_is_not_stalled(docker_client: aiodocker.Docker,
                                                             docker_run_name: str) -> None:
    """Each streamed chunk of output is progress: a command printing every second for 5 s
    outlives a 2.5 s stall_timeout (a watchdog that only saw commands start and end would not)."""
    async with DockerSandbox(docker_client, run_name=docker_run_name, instance_id="chatty") as sandbox:
        out = await watched(sandbox.exec("for i in 1 2 3 4 5; do echo $i; sleep 1; done", timeout_s=60), 2.5)
        assert out.exit_code == 0 and out.output.split() == ["1", "2", "3", "4", "5"]
        with pytest.raises(Stalled, match=r"^stalled 2.5 s waiting on command `sleep 30`$"):
            await watched(sandbox.exec("sleep 30", timeout_s=60), 2.5)
        left = await sandbox.exec("ps -eo args | grep -c '^sleep 30' || true", timeout_s=10)
        assert left.output.strip() == "0"  # the cancelled command was killed in the container
