"""The simulated model over real HTTP on loopback: scripted agent, induction, faults, stats, CLI."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from awm_tui.config.keys import mask_key
from awm_tui.engine import protocol, replies
from awm_tui.engine.induction import parse_induction_reply
from awm_tui.engine.tasks import load_dataset
from awm_tui.servers.sim_agent import apply_command, broken_patch
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

KEY = "sk-test-aaaa1111"
SYSTEM = "You are a careful software engineer. Reply with a THOUGHT and one ```bash block."

PATCH_MUL = """diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -10,7 +10,7 @@ def add(a, b):
 
 def mul(a, b):
     \"\"\"Multiply.\"\"\"
-    return a + b
+    return a * b
 
 
"""
PATCH_SLUG = """diff --git a/strs/text.py b/strs/text.py
--- a/strs/text.py
+++ b/strs/text.py
@@ -1,3 +1,3 @@
 def slugify(text):
-    return text.lower()
+    return "-".join(text.lower().split())
"""  # no trailing blank line on purpose: the model must add the final newline


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "mini.jsonl"
    tasks = [
        {"instance_id": "acme__calc-1", "repo": "acme/calc", "problem_statement": "mul adds",
         "patch": PATCH_MUL},
        {"instance_id": "acme__strs-2", "repo": "acme/strs", "problem_statement": "slugify keeps spaces",
         "patch": PATCH_SLUG.rstrip("\n")},
    ]
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
    return path


@pytest.fixture
async def server(dataset: Path):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),))) as srv:
        yield srv


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def post(session, url, messages, key: str | None = KEY, path="/chat/completions"):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with session.post(url + path, json={"model": "any", "messages": messages}, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def first_user(instance_id: str, workflows: str = "") -> str:
    memory = f"{protocol.WORKFLOWS_OPEN}\n{workflows}\n{protocol.WORKFLOWS_CLOSE}\n" if workflows else ""
    return f"{memory}Fix the issue below.\n{protocol.TASK_LINE.format(instance_id=instance_id)}\n"


async def walk(session, url, instance_id, workflows="", limit=10, key=KEY) -> list[str]:
    """Play a whole conversation, feeding fake observations back; return the commands."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": first_user(instance_id, workflows)}]
    commands = []
    for _ in range(limit):
        status, _, body = await post(session, url, messages, key=key)
        assert status == 200, body
        content = body["choices"][0]["message"]["content"]
        assert content.startswith("THOUGHT:")
        command, why = replies.extract_command(content)
        assert command, why
        commands.append(command)
        if command == protocol.SUBMIT_COMMAND:
            return commands
        messages += [{"role": "assistant", "content": content},
                     {"role": "user", "content": protocol.OBSERVATION_TEMPLATE.format(exit_code=0, output="ok\n")}]
    raise AssertionError(f"no submit within {limit} steps: {commands}")


async def test_scripted_agent_looks_inspects_patches_tests_submits(server, session):
    commands = await walk(session, server.url, "acme__calc-1")
    assert len(commands) == 5
    assert commands[0] == "cd /testbed && git status && ls -R | head -50"
    assert "grep -n 'mul' calc/ops.py" in commands[1] and "sed -n" in commands[1]
    assert commands[2] == f"cd /testbed && git apply <<'AWM_PATCH'\n{PATCH_MUL}AWM_PATCH"
    assert "pytest" in commands[3]
    assert commands[-1] == protocol.SUBMIT_COMMAND


async def test_patch_without_final_newline_gets_one(server, session):
    commands = await walk(session, server.url, "acme__strs-2")
    assert commands[2].endswith(PATCH_SLUG.rstrip("\n") + "\nAWM_PATCH")


async def test_injected_workflows_shorten_the_trajectory(server, session):
    plain = await walk(session, server.url, "acme__calc-1")
    memory = "## Locate, patch and verify a bug fix\n1. cd /testbed && ls\n"
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first_user("acme__calc-1", memory)}]
    _, _, body = await post(session, server.url, messages)
    assert 'workflow "Locate, patch and verify a bug fix"' in body["choices"][0]["message"]["content"]
    with_memory = await walk(session, server.url, "acme__calc-1", workflows=memory)
    assert len(with_memory) == len(plain) - 1
    assert PATCH_MUL in with_memory[1] and with_memory[-1] == protocol.SUBMIT_COMMAND


async def test_empty_workflow_block_is_no_memory(server, session):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content":
                f"{protocol.WORKFLOWS_OPEN}\n{protocol.WORKFLOWS_CLOSE}\n" + first_user("acme__calc-1")}]
    commands = await walk(session, server.url, "acme__calc-1")
    _, _, body = await post(session, server.url, messages)
    assert "workflow" not in body["choices"][0]["message"]["content"].lower()
    assert len(commands) == 5


async def test_memory_gain_solves_a_task_only_with_workflows_in_the_prompt(dataset, session):
    """SIMULATION (labelled): with memory_gain, a task the prompt brings no workflows to gets
    a wrong change, the same task with workflows the fix; stats count the workflow prompts."""
    memory = "## Locate, patch and verify a bug fix\n1. cd /testbed && ls\n"
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), memory_gain=1.0)) as srv:
        plain = await walk(session, srv.url, "acme__calc-1")
        helped = await walk(session, srv.url, "acme__calc-1", workflows=memory)
        stats = srv.stats()
    assert not any(PATCH_MUL in c for c in plain) and any("deliberately wrong fix" in c for c in plain)
    assert any(PATCH_MUL in c for c in helped)
    assert stats["by_key"][mask_key(KEY)]["workflow_prompts"] == len(helped)


async def test_memory_gain_picks_the_same_tasks_for_a_seed(tmp_path, session):
    """A run and its twin meet the same hard tasks: the draw is by seed and instance id,
    not by the prompt (which differs with and without workflows) or the request order."""
    rows = [{"instance_id": f"acme__calc-{i}", "repo": "acme/calc", "problem_statement": "mul adds",
             "patch": PATCH_MUL} for i in range(20)]
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    async def wrong_ones(seed: int, order: list[int]) -> set[int]:
        async with SimLLMServer(SimOptions(datasets=(str(path),), memory_gain=0.5, seed=seed)) as srv:
            return {i for i in order
                    if not any(PATCH_MUL in c for c in await walk(session, srv.url, f"acme__calc-{i}"))}

    first = await wrong_ones(3, list(range(20)))
    assert first == await wrong_ones(3, list(reversed(range(20))))
    assert 4 <= len(first) <= 16  # about half of 20
    assert first != await wrong_ones(4, list(range(20)))


async def test_unknown_task_explores_then_submits(server, session):
    commands = await walk(session, server.url, "nobody__nothing-9")
    assert commands == ["cd /testbed && git status && ls -R | head -50", protocol.SUBMIT_COMMAND]


async def test_response_shape_and_simulated_labels(server, session):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first_user("acme__calc-1")}]
    status, headers, body = await post(session, server.url, messages, path="/chat/completions")
    assert status == 200 and "simulated" in headers["Server"]
    assert body["object"] == "chat.completion" and "simulated" in body["model"]
    assert body["choices"][0]["finish_reason"] == "stop" and body["choices"][0]["index"] == 0
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert 0 < usage["cost"] < 0.01
    # The un-versioned path answers too.
    status, _, _ = await post(session, server.base_url, messages, path="/chat/completions")
    assert status == 200
    async with session.get(server.url + "/models") as resp:
        models = await resp.json()
    assert models["data"][0]["id"] == "awm-sim" and models["data"][0]["simulated"] is True


async def test_bad_body_is_400(server, session):
    async with session.post(server.url + "/chat/completions", data=b"not json",
                            headers={"Authorization": f"Bearer {KEY}"}) as resp:
        assert resp.status == 400


async def test_wrong_patch_rate_applies_a_broken_fix(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), wrong_patch_rate=1.0)) as srv:
        commands = await walk(session, srv.url, "acme__calc-1")
    assert commands[-1] == protocol.SUBMIT_COMMAND
    assert "git apply" in commands[2] and PATCH_MUL not in commands[2]
    assert "-    return a + b" in commands[2] and "+    return a * b" not in commands[2]


def induction_messages(experiences: list[dict], current: list[dict] | None = None) -> list[dict]:
    user = (f"{protocol.EXPERIENCES_OPEN}\n{json.dumps(experiences)}\n{protocol.EXPERIENCES_CLOSE}\n"
            f"{protocol.CURRENT_OPEN}\n{json.dumps(current or [])}\n{protocol.CURRENT_CLOSE}\n")
    return [{"role": "system", "content": f"{protocol.INDUCTION_MARKER}: summarise workflows."},
            {"role": "user", "content": user}]


async def test_induction_answer_parses_and_reflects_input(server, session):
    calc = await walk(session, server.url, "acme__calc-1")
    one = [{"instance_id": "acme__calc-1", "repo": "acme/calc", "commands": calc, "problem": "mul adds"}]
    two = one + [{"instance_id": "acme__strs-2", "repo": "acme/strs", "commands": [
        "cd /testbed && grep -rn 'def slugify' strs/", "cd /testbed && python3 -m pytest tests/test_text.py::test_slug -q"]}]
    _, _, a = await post(session, server.url, induction_messages(one))
    _, _, b = await post(session, server.url, induction_messages(two))
    wf_a = parse_induction_reply(a["choices"][0]["message"]["content"]).workflows
    wf_b = parse_induction_reply(b["choices"][0]["message"]["content"]).workflows
    assert 1 <= len(wf_a) <= 3 and 1 <= len(wf_b) <= 3
    assert wf_a != wf_b and "acme/strs" in json.dumps(wf_b) and "acme/strs" not in json.dumps(wf_a)
    steps = [s for w in wf_b for s in w["steps"]]
    assert any("{file}" in s for s in steps) and any("{test_path}" in s for s in steps)
    assert any("{patch}" in s for s in steps) and not any("calc/ops.py" in s for s in steps)
    # An existing workflow that does much the same keeps its title.
    current = [{"title": "My test-and-submit routine", "description": "",
                "steps": ["python3 -m pytest {test_path}", "echo AWM_SUBMIT_PATCH"]}]
    _, _, c = await post(session, server.url, induction_messages(one, current))
    titles = [w["title"] for w in parse_induction_reply(c["choices"][0]["message"]["content"]).workflows]
    assert "My test-and-submit routine" in titles


async def test_bad_induction_rate_gives_unparseable_text(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), bad_induction_rate=1.0)) as srv:
        _, _, body = await post(session, srv.url, induction_messages([]))
    with pytest.raises(ValueError):
        parse_induction_reply(body["choices"][0]["message"]["content"])


async def test_auth_errors(dataset, session):
    opts = SimOptions(datasets=(str(dataset),), invalid_keys=frozenset({"sk-revoked-0001"}),
                      no_credit_keys=frozenset({"sk-broke-0002"}))
    messages = [{"role": "user", "content": first_user("acme__calc-1")}]
    async with SimLLMServer(opts) as srv:
        assert (await post(session, srv.url, messages, key=None))[0] == 401
        status, _, body = await post(session, srv.url, messages, key="sk-invalid-123456")
        assert status == 401 and body == {"error": {"message": "invalid API key", "code": 401}}
        assert (await post(session, srv.url, messages, key="sk-revoked-0001"))[0] == 401
        assert (await post(session, srv.url, messages, key="sk-nocredit-9876"))[0] == 402
        assert (await post(session, srv.url, messages, key="sk-broke-0002"))[0] == 402
        assert (await post(session, srv.url, messages))[0] == 200


async def test_429_carries_retry_after(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), rate_429=1.0, retry_after=2.5)) as srv:
        status, headers, body = await post(session, srv.url, [{"role": "user", "content": "hi"}])
    assert status == 429 and headers["Retry-After"] == "2.5" and body["error"]["code"] == 429


async def test_drop_closes_the_connection(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), rate_drop=1.0)) as srv:
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            await post(session, srv.url, [{"role": "user", "content": "hi"}])
        assert srv.stats()["by_key"][mask_key(KEY)]["status"] == {"drop": 1}


async def test_error_body_and_5xx(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), rate_error_body=1.0)) as srv:
        status, _, body = await post(session, srv.url, [{"role": "user", "content": "hi"}])
    assert status == 200 and "error" in body and "choices" not in body
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), rate_5xx=1.0)) as srv:
        statuses = {(await post(session, srv.url, [{"role": "user", "content": "hi"}]))[0] for _ in range(30)}
    assert statuses == {500, 502, 503}


async def test_latency(dataset, session):
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), latency=0.2, latency_jitter=0.1)) as srv:
        started = time.perf_counter()
        await asyncio.gather(*(post(session, srv.url, [{"role": "user", "content": "hi"}]) for _ in range(20)))
        elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 1.5  # concurrent requests wait side by side, not in turn


async def test_stats_counts_per_masked_key_and_never_a_full_key(server, session):
    other = "sk-second-key-zz99"
    await walk(session, server.url, "acme__calc-1")
    await walk(session, server.url, "acme__strs-2", key=other)
    await post(session, server.url, induction_messages([]), key=other)
    await post(session, server.url, [{"role": "user", "content": "x"}], key="sk-invalid-777777")
    async with session.get(server.base_url + "/stats") as resp:
        text = await resp.text()
    stats = json.loads(text)
    assert stats == server.stats()
    assert stats["simulated"] is True and stats["requests"] == 5 + 5 + 1 + 1
    # filed under the one mask every face shows (config.keys.mask_key), never the key
    first, second, invalid = (mask_key(k) for k in (KEY, other, "sk-invalid-777777"))
    assert stats["by_key"][first] == {"requests": 5, "agent": 5, "induction": 0, "workflow_prompts": 0,
                                     "status": {"200": 5}}
    assert stats["by_key"][second] == {"requests": 6, "agent": 5, "induction": 1, "workflow_prompts": 0,
                                      "status": {"200": 6}}
    assert stats["by_key"][invalid]["status"] == {"401": 1}
    assert stats["tasks_by_key"] == {first: ["acme__calc-1"], second: ["acme__strs-2"], invalid: []}
    for key in (KEY, other, "sk-invalid-777777"):
        assert key not in text and key[-5:] not in text
    async with session.post(server.base_url + "/stats/reset") as resp:
        assert (await resp.json())["requests"] == 0


async def statuses(srv: SimLLMServer, session, n: int) -> list[int]:
    # Sequential, so the order of draws (and thus the outcome) is fixed by the seed.
    return [(await post(session, srv.url, [{"role": "user", "content": "hi"}]))[0] for _ in range(n)]


async def test_fault_rates_are_roughly_honoured_and_seeded(dataset, session):
    opts = SimOptions(datasets=(str(dataset),), rate_429=0.2, rate_5xx=0.1, seed=7)
    async with SimLLMServer(opts) as srv:
        first = await statuses(srv, session, 500)
    async with SimLLMServer(opts) as srv:
        again = await statuses(srv, session, 500)
    assert first == again
    assert 70 <= first.count(429) <= 130
    assert 25 <= sum(s >= 500 for s in first) <= 75
    async with SimLLMServer(SimOptions(datasets=(str(dataset),), rate_429=0.2, rate_5xx=0.1, seed=8)) as srv:
        assert await statuses(srv, session, 500) != first


async def test_handles_hundreds_of_concurrent_requests(server):
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": first_user("acme__calc-1")}]
        results = await asyncio.gather(*(post(session, server.url, messages) for _ in range(300)))
    assert all(r[0] == 200 for r in results)


async def test_fixture_from_plugin_starts_on_a_free_port(sim_llm_factory, dataset, session):
    srv = await sim_llm_factory(datasets=(str(dataset),))
    assert srv.port > 0 and srv.url.endswith("/v1")
    assert len(await walk(session, srv.url, "acme__calc-1")) == 5


async def test_cli_starts_prints_answers_and_stops_on_sigint(dataset, session):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui.servers.sim_llm", "--port", "0", "--no-sample",
        "--dataset", str(dataset), "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("simulated model (awm-sim) listening on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        assert url.endswith("/v1")
        assert len(await walk(session, url, "acme__calc-1")) == 5
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_rejects_a_missing_dataset(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui.servers.sim_llm", "--port", "0",
        "--dataset", str(tmp_path / "absent.jsonl"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"no such file" in err


# --- against the bundled sample -------------------------------------------------------

async def test_every_sample_task_is_solved_by_the_script(sim_llm, session):
    dataset = load_dataset("sample")
    assert dataset.tasks
    for task in dataset.tasks:
        commands = await walk(session, sim_llm.url, task.instance_id)
        assert commands[-1] == protocol.SUBMIT_COMMAND
        assert task.patch.rstrip("\n") + "\n" in commands[2]
        memory = await walk(session, sim_llm.url, task.instance_id, workflows="## Fix a bug\n- ls\n")
        assert len(memory) == len(commands) - 1
    assert set(sim_llm.stats()["tasks_by_key"][mask_key(KEY)]) == {t.instance_id for t in dataset.tasks}


async def run_bash(command: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("bash", "-c", command, cwd=cwd,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
async def test_sample_patch_commands_really_apply(tmp_path):
    """The heredoc step applies in the shell, for the reference and the deliberately broken fix."""
    dataset = load_dataset("sample")
    for task in dataset.tasks:
        for label, patch in (("reference", task.patch), ("broken", broken_patch(task.patch))):
            testbed = tmp_path / f"{task.instance_id}-{label}"
            await asyncio.to_thread(shutil.copytree, dataset.snapshot_path(task), testbed)
            command = apply_command(patch).replace("cd /testbed", f"cd {shlex.quote(str(testbed))}")
            code, out = await run_bash(command, testbed)
            assert code == 0, f"{task.instance_id} {label}: {out}"
