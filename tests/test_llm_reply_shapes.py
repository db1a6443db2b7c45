"""LLMClient against real loopback servers answering as vLLM, OpenAI, OpenRouter and
llama.cpp do: context overflows, finish_reason, system folding, closed connections."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from awm_tui.config.models import HttpConfig, LLMProfile
from awm_tui.engine.http import RunMetrics
from awm_tui.engine.llm import LLMClient, LLMContextLimit, LLMError
from tests.plugins.http_peers import ScriptedChat, answer, completion
from tests.test_llm_client import KEY, client

MESSAGES = [{"role": "system", "content": "RULES"}, {"role": "user", "content": "task"},
            {"role": "assistant", "content": "a"}, {"role": "user", "content": "obs"}]

OVERFLOWS = {
    "vllm": (400, {"object": "error", "type": "BadRequestError", "code": 400, "message":
             "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
             "(4488 in the messages, 512 in the completion). Please reduce the length of the messages or completion."},
             4096),
    "openai": (400, {"error": {"message": "This model's maximum context length is 8192 tokens. However, your "
                               "messages resulted in 9000 tokens. Please reduce the length of the messages.",
                               "type": "invalid_request_error", "param": "messages",
                               "code": "context_length_exceeded"}}, 8192),
    "openrouter": (400, {"error": {"message": "This endpoint's maximum context length is 131,072 tokens. However, "
                                   "you requested about 140000 tokens (139000 of text input, 1000 in the output). "
                                   "Please reduce the length of either one, or use the \"middle-out\" transform.",
                                   "code": 400}}, 131072),
    "llama.cpp": (400, {"error": {"code": 400, "message": "request (4476 tokens) exceeds the available context "
                                  "size (4096 tokens)", "type": "exceed_context_size_error",
                                  "n_prompt_tokens": 4476, "n_ctx": 4096}}, 4096),
    "llama.cpp-old": (400, {"error": {"code": 400, "message": "the request exceeds the available context size, "
                                      "try increasing it", "type": "exceed_context_size_error", "n_ctx": 2048}},
                      2048),
    "llama-cpp-python": (400, {"error": {"message": "Requested tokens (700) exceed context window of 512",
                                         "type": "invalid_request_error", "code": "context_length_exceeded"}}, 512),
    "in a 200 body": (200, {"error": {"message": "This endpoint's maximum context length is 32768 tokens.",
                                      "code": 400}}, 32768),
}


@pytest.mark.parametrize("shape", list(OVERFLOWS))
async def test_a_context_overflow_is_its_own_error_and_not_retried(chat_peer: ScriptedChat, shape: str) -> None:
    status, body, window = OVERFLOWS[shape]
    chat_peer.then(answer(status, body))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMContextLimit) as caught:
            await llm.chat(MESSAGES)
    assert caught.value.window == window
    assert "context window" in str(caught.value)
    assert len(chat_peer.requests) == 1   # the same prompt can never pass


async def test_another_400_stays_a_plain_rejection(chat_peer: ScriptedChat) -> None:
    chat_peer.then(answer(400, {"error": {"message": "temperature must be at most 2", "code": 400}}))
    async with client(chat_peer) as llm:
        with pytest.raises(LLMError) as caught:
            await llm.chat(MESSAGES)
    assert not isinstance(caught.value, LLMContextLimit)


async def test_finish_reason_and_model_come_from_the_reply(chat_peer: ScriptedChat) -> None:
    body = completion("THOUGHT: I will", model="gemma-3-270m-it-Q4_K_M.gguf")
    body["choices"][0]["finish_reason"] = "length"
    chat_peer.then(answer(200, body))
    metrics = RunMetrics()
    async with client(chat_peer, metrics) as llm:
        reply = await llm.chat(MESSAGES)
    assert (reply.finish_reason, reply.model) == ("length", "gemma-3-270m-it-Q4_K_M.gguf")
    assert metrics.snapshot().truncated_replies == 1


async def test_system_prompt_mode_user_folds_the_system_text_into_the_first_user_message(
        chat_peer: ScriptedChat) -> None:
    async with client(chat_peer, system_prompt_mode="user") as llm:
        await llm.chat(MESSAGES)
    sent = chat_peer.requests[0].body["messages"]
    assert sent == [{"role": "user", "content": "RULES\n\ntask"}, *MESSAGES[2:]]
    assert MESSAGES[0] == {"role": "system", "content": "RULES"}   # the caller's list is untouched


async def test_openhands_zero_means_no_max_tokens_sent(chat_peer: ScriptedChat) -> None:
    async with client(chat_peer, max_output_tokens=0, max_input_tokens=0) as llm:
        await llm.chat(MESSAGES)
    assert "max_tokens" not in chat_peer.requests[0].body


class SlowServer:
    """Answers after `delay`; records when it saw each client connection close."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.closed_after: list[float] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            while time.monotonic() - started < self.delay:
                await asyncio.sleep(0.01)
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
            else:
                return web.json_response(completion())
        except asyncio.CancelledError:   # servers with handler_cancellation learn it this way
            pass
        self.closed_after.append(time.monotonic() - started)
        raise asyncio.CancelledError


async def _slow(aiohttp_server: Any, delay: float) -> tuple[SlowServer, LLMClient]:
    peer = SlowServer(delay)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", peer.handle)
    server = await aiohttp_server(app)
    profile = LLMProfile(model="m", base_url=str(server.make_url("/v1")), timeout=0.3, num_retries=0)
    return peer, LLMClient(profile, api_key=SecretStr(KEY), http=HttpConfig(), metrics=RunMetrics())


async def test_a_client_timeout_closes_the_connection_the_server_sees(aiohttp_server: Any) -> None:
    peer, llm = await _slow(aiohttp_server, delay=5.0)
    async with llm:
        with pytest.raises(LLMError, match="no reply within 0.3s"):
            await llm.chat(MESSAGES)
        await asyncio.sleep(0.3)
    # the server learns at once, not after its 5 s of "generating"
    assert len(peer.closed_after) == 1 and peer.closed_after[0] < 1.0
    assert llm.metrics.snapshot().connections_open == 0


async def test_a_cancelled_call_closes_the_connection_the_server_sees(aiohttp_server: Any) -> None:
    peer, llm = await _slow(aiohttp_server, delay=5.0)
    async with llm:
        call = asyncio.create_task(llm.chat(MESSAGES))
        await asyncio.sleep(0.15)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.3)
    assert len(peer.closed_after) == 1 and peer.closed_after[0] < 1.0
