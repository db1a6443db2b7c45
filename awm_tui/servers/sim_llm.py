"""The simulated model: an OpenAI-compatible endpoint that plays a scripted agent.

Used by the offline demo, the tests and the benchmarks, so it must be cheap per
request (datasets are loaded once at start-up) and say "simulated" everywhere
its name appears. Run it with `awm-tui sim-llm` or `python -m awm_tui.servers.sim_llm`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from awm_tui.config.keys import mask_key
from awm_tui.engine import protocol
from awm_tui.arguments import ArgumentParser, port_number
from awm_tui.servers.serving import serve_until_signal
from awm_tui.engine.tasks import SAMPLE, Task, TaskError, load_dataset

from .sim_agent import UNINSTRUCTED, SubmitChoice, agent_reply, read_conversation, text_of
from .sim_cache import CacheUse, PromptCache
from .sim_faults import FaultInjector
from .sim_induction import BAD_INDUCTION, MESSY_SHAPES, InductionReply, Shape, induction_reply
from .sim_keys import KeyAccounts
from .sim_memory import memory_choice

MODEL_ID = "awm-sim"
MODEL_NAME = "awm-sim (simulated)"
SERVER_HEADER = "awm-sim/0.1 (simulated model)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimOptions:
    latency: float = 0.0
    latency_jitter: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_error_body: float = 0.0
    wrong_patch_rate: float = 0.0
    bad_induction_rate: float = 0.0
    python_first_rate: float = 0.0
    """Share of agent replies that show a ```python block before the ```bash one."""
    context_window: int = 0
    """Tokens of prompt plus max_tokens above which a call gets vLLM's 400 (0: no limit)."""
    ignore_system: bool = False
    """Drop system messages, as llama.cpp's gemma template does: the rules never arrive
    and the prompt count leaves them out."""
    prompt_chars_per_token: float = 4.0
    """How densely prompts are counted (replies stay at 4): 6 is a tokenizer thriftier on
    the prompt's prose than on the reply's code, whose counts look low beside the reply."""
    messy_induction_rate: float = 0.0
    """Induction replies in a messy shape real models send (sim_induction.MESSY_SHAPES,
    taken in turn from one the seed picks); counted in stats' `induction_shapes`."""
    memory_gain: float = 0.0
    """SIMULATION: share of tasks answered with a wrong patch when the prompt holds no
    workflows (the same tasks, by seed and instance, for a run and its twin; sim_memory)."""
    seed: int = 0
    invalid_keys: frozenset[str] = frozenset()
    no_credit_keys: frozenset[str] = frozenset()
    datasets: tuple[str, ...] = (SAMPLE,)
    submit: tuple[tuple[str, SubmitChoice], ...] = ()
    """SIMULATION: (instance_id, "gold" | "wrong" | "empty") — what the agent submits for that
    task, whatever `wrong_patch_rate` draws; for tests that need each outcome once."""
    price_prompt: float = 1e-7
    """Dollars per prompt token (tiny: the demo's costs should look plausible, not real)."""
    price_completion: float = 4e-7
    prompt_cache: bool = False
    """SIMULATION: Anthropic-style prompt caching per key (`sim_cache`): a prefix sent before
    up to a `cache_control` breakpoint is read from the cache, reported as
    `usage.prompt_tokens_details.cached_tokens` (and `cache_write_tokens`)."""
    price_cache_read: float = 1e-8
    """Dollars per cached prompt token read (a tenth of the prompt price, as Anthropic's)."""
    price_cache_write: float = 1.25e-7
    """Dollars per prompt token written to the cache."""
    report_cost: bool = True
    """Send `usage.cost` (OpenRouter does; a plain OpenAI-compatible server does not)."""
    stream_usage: bool = True
    """Send a streamed reply's usage chunk when asked (`stream_options.include_usage`);
    False streams none even then, as llama-cpp-python's server does."""
    key_rate_limit: float = 0.0
    """Chat requests per second one key may make; above it 429 + Retry-After (0: no limit)."""
    key_credit_limit: float | None = None
    """USD each key may spend; replies' costs draw it down, then 402 (None: unlimited)."""


@dataclass
class _KeyStats:
    requests: int = 0
    agent: int = 0
    induction: int = 0
    workflow_prompts: int = 0
    """Agent requests whose prompt held injected workflows."""
    status: Counter = field(default_factory=Counter)
    tasks: dict[str, None] = field(default_factory=dict)  # ordered set


class SimStats:
    def __init__(self) -> None:
        self.requests = 0
        self.by_key: dict[str, _KeyStats] = {}
        self.induction_shapes: Counter = Counter()

    def key(self, masked: str) -> _KeyStats:
        self.requests += 1
        entry = self.by_key.setdefault(masked, _KeyStats())
        entry.requests += 1
        return entry

    def snapshot(self) -> dict[str, Any]:
        return {
            "simulated": True,
            "model": MODEL_NAME,
            "requests": self.requests,
            "by_key": {k: {"requests": v.requests, "agent": v.agent, "induction": v.induction,
                           "workflow_prompts": v.workflow_prompts, "status": dict(v.status)} for k, v in self.by_key.items()},
            "tasks_by_key": {k: list(v.tasks) for k, v in self.by_key.items()},
            "induction_shapes": dict(self.induction_shapes),
        }


def load_tasks(specs: tuple[str, ...]) -> dict[str, Task]:
    """Every task of the given datasets by instance id (blocking: call at start-up only)."""
    tasks: dict[str, Task] = {}
    for spec in specs:
        try:
            dataset = load_dataset(spec)
        except TaskError as exc:
            if spec != SAMPLE:
                raise
            # The bundled sample is the default; without it the model still answers.
            log.warning("simulated model: bundled sample dataset unavailable (%s)", exc)
            continue
        for task in dataset.tasks:
            tasks.setdefault(task.instance_id, task)
    return tasks


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"message": message, "code": status}}, status=status,
                             headers=headers or None)


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _overflow(window: int, prompt: int, completion: int) -> str:
    """vLLM's (and OpenAI's) words for a prompt longer than the context window."""
    return (f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
            "Please reduce the length of the messages or completion.")


class _Handlers:
    def __init__(self, options: SimOptions, tasks: dict[str, Task]) -> None:
        self.options = options
        self.tasks = tasks
        self.stats = SimStats()
        self.accounts = self._new_accounts()
        self.faults = FaultInjector(
            seed=options.seed, latency=options.latency, latency_jitter=options.latency_jitter,
            rate_drop=options.rate_drop, rate_429=options.rate_429, rate_5xx=options.rate_5xx,
            rate_error_body=options.rate_error_body)
        # A separate stream, so induction faults do not shift the transport faults.
        self.induction_rng = random.Random(options.seed ^ 0x5EED)
        self.messy_sent = 0
        self.cache = PromptCache()

    def _new_accounts(self) -> KeyAccounts:
        return KeyAccounts(rate_limit=self.options.key_rate_limit, credit_limit=self.options.key_credit_limit)

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats.snapshot(), "keys": self.accounts.snapshot()}

    def reset(self) -> None:
        self.stats, self.accounts = SimStats(), self._new_accounts()

    def _auth(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not key:
            return None, _error(401, "missing API key: send 'Authorization: Bearer <key>'")
        if key in self.options.invalid_keys or "invalid" in key:
            return key, _error(401, "invalid API key")
        if key in self.options.no_credit_keys or "nocredit" in key:
            return key, _error(402, "insufficient credit on this (simulated) account")
        return key, None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        key, denied = self._auth(request)
        entry = self.stats.key(mask_key(key))
        if denied is not None or key is None:
            denied = denied or _error(401, "missing API key")
            entry.status[str(denied.status)] += 1
            return denied
        if refused := self.accounts.admit(key):
            entry.status[str(refused.status)] += 1
            extra = {} if refused.retry_after is None else {"Retry-After": f"{refused.retry_after:g}"}
            return _error(refused.status, refused.message, **extra)
        try:
            body = await request.json()
            messages = body["messages"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            entry.status["400"] += 1
            return _error(400, "body must be JSON with a 'messages' list")

        conv = read_conversation(messages)
        # Induction prompts are told apart by their marker wherever it stands (the
        # system message, or the first user message in system_prompt_mode "user").
        is_induction = protocol.INDUCTION_MARKER in conv.system + conv.first_user
        seen = [m for m in messages if m.get("role") != "system"] if self.options.ignore_system else messages
        max_tokens = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else 0
        if is_induction:
            entry.induction += 1
        else:
            entry.agent += 1
            if task_id := protocol.find_task_id(conv.first_user):
                entry.tasks[task_id] = None
            entry.workflow_prompts += protocol.WORKFLOWS_OPEN in conv.first_user

        fault = self.faults.next()
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.kind == "drop":
            entry.status["drop"] += 1
            transport = request.transport
            request.protocol.force_close()  # no keep-alive reuse of a dead connection
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never written: the connection is gone
        if fault.kind == "429":
            entry.status["429"] += 1
            return _error(429, "rate limited (simulated)", **{"Retry-After": f"{self.options.retry_after:g}"})
        if fault.kind == "5xx":
            entry.status[str(fault.status)] += 1
            return _error(fault.status, f"upstream error {fault.status} (simulated)")
        if fault.kind == "error_body":
            entry.status["200"] += 1
            return web.json_response({"error": {"message": "provider returned error (simulated)",
                                                "code": 502, "type": "upstream_error"}})
        rate = self.options.prompt_chars_per_token
        counts = [max(1, math.ceil(len(text_of(m.get("content"))) / rate)) for m in seen]
        prompt = sum(counts)
        if self.options.context_window and prompt + max_tokens > self.options.context_window:
            entry.status["400"] += 1
            return web.json_response({"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                                      "message": _overflow(self.options.context_window, prompt, max_tokens)},
                                     status=400)

        finish = "stop"
        if is_induction:
            answer = self._induction(conv.first_user)
            content, finish = answer.text, answer.finish_reason
        elif self.options.ignore_system and not read_conversation(seen).rules_seen:
            content = UNINSTRUCTED
        else:
            task = self.tasks.get(task_id) if task_id else None
            content = agent_reply(conv, task, seed=self.options.seed,
                                  wrong_patch_rate=self.options.wrong_patch_rate,
                                  python_first_rate=self.options.python_first_rate,
                                  choice=dict(self.options.submit).get(task_id or "") or memory_choice(
                                      conv.first_user, task_id, seed=self.options.seed,
                                      memory_gain=self.options.memory_gain))
        if max_tokens and _tokens(content) > max_tokens:
            content, finish = content[: max_tokens * 4], "length"   # cut where a real server stops
        entry.status["200"] += 1
        cache = self.cache.use(key or "", seen, counts) if self.options.prompt_cache else CacheUse()
        reply = self._completion(prompt, content, finish, cache)
        self.accounts.charge(key, reply["usage"]["cost"])   # charged whether or not it is reported
        if not self.options.report_cost:
            del reply["usage"]["cost"]
        if body.get("stream") is True:
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, reply, usage=asked and self.options.stream_usage)
        return web.json_response(reply)

    def _induction(self, user_text: str) -> InductionReply:
        rng, options = self.induction_rng, self.options
        if rng.random() < options.bad_induction_rate:
            self.stats.induction_shapes["bad"] += 1
            return InductionReply(BAD_INDUCTION)
        shape: Shape = "clean"
        # Drawn only when asked for, so the bad-induction draws stay what they were.
        if options.messy_induction_rate > 0 and rng.random() < options.messy_induction_rate:
            shape = MESSY_SHAPES[(options.seed + self.messy_sent) % len(MESSY_SHAPES)]
            self.messy_sent += 1
        self.stats.induction_shapes[shape] += 1
        return induction_reply(user_text, shape)

    def _completion(self, prompt: int, content: str, finish: str = "stop",
                    cache: CacheUse = CacheUse()) -> dict[str, Any]:
        o = self.options
        completion = _tokens(content)
        cost = ((prompt - cache.read - cache.written) * o.price_prompt + cache.read * o.price_cache_read
                + cache.written * o.price_cache_write + completion * o.price_completion)
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion, "cost": round(cost, 10)}
        if o.prompt_cache:
            usage["prompt_tokens_details"] = {"cached_tokens": cache.read, "cache_write_tokens": cache.written}
        return {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex[:20]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_NAME,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": usage,
        }

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "awm-tui",
             "name": MODEL_NAME, "simulated": True}]})

    async def key_info(self, request: web.Request) -> web.Response:
        """OpenRouter's `GET /api/v1/key`: the key's label, limit, usage and what is left."""
        key, denied = self._auth(request)
        if key is None or (denied is not None and denied.status == 401):
            return denied or _error(401, "missing API key")
        return web.json_response(self.accounts.key_info(key))

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.snapshot())


STREAM_PIECE = 48
"""Characters of content per streamed chunk."""


async def _stream(request: web.Request, completion: dict[str, Any], *, usage: bool) -> web.StreamResponse:
    """`completion` as OpenAI's server-sent events: content deltas, the finish reason, the
    usage chunk when asked for (`stream_options.include_usage`), then `[DONE]`."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = completion["choices"][0]
    text = choice["message"]["content"]
    pieces = [text[i:i + STREAM_PIECE] for i in range(0, len(text), STREAM_PIECE)] or [""]
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece} if i == 0
                                    else {"content": piece}, "finish_reason": None}]}
              for i, piece in enumerate(pieces)]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if usage:
        events.append({**base, "choices": [], "usage": completion["usage"]})
    for event in events:
        await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


HANDLERS_KEY = web.AppKey("sim_handlers", _Handlers)


def build_app(options: SimOptions, tasks: dict[str, Task] | None = None) -> web.Application:
    """The aiohttp app; pass pre-loaded `tasks` to avoid reading datasets here."""
    handlers = _Handlers(options, load_tasks(options.datasets) if tasks is None else tasks)
    app = web.Application(client_max_size=32 * 1024**2)  # long trajectories make big prompts
    app[HANDLERS_KEY] = handlers
    app.on_response_prepare.append(_server_header)
    # /api/v1 too: the simulator can stand in for OpenRouter's base URL.
    for prefix in ("/api/v1", "/v1", ""):
        app.router.add_post(prefix + "/chat/completions", handlers.chat)
        app.router.add_get(prefix + "/models", handlers.models)
        app.router.add_get(prefix + "/key", handlers.key_info)
    app.router.add_get("/stats", handlers.get_stats)
    app.router.add_post("/stats/reset", handlers.reset_stats)
    return app


class SimLLMServer:
    """The simulated model on a loopback port, for tests, the demo and benchmarks."""

    def __init__(self, options: SimOptions | None = None) -> None:
        self.options = options or SimOptions()
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:  # a second listener would leak the first
            raise RuntimeError(f"simulated model already listening on {self.url}")
        tasks = await asyncio.to_thread(load_tasks, self.options.datasets)
        self._app = build_app(self.options, tasks)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        # A deep backlog: benchmarks open hundreds of connections at once.
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        self.host, self.port = self._runner.addresses[0][:2]
        log.info("simulated model (%s) listening on %s with %d tasks", MODEL_ID, self.url, len(tasks))

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def stats(self) -> dict[str, Any]:
        if self._app is None:
            return {**SimStats().snapshot(), "keys": {}}
        return self._app[HANDLERS_KEY].snapshot()

    def reset_stats(self) -> None:
        if self._app is not None:
            self._app[HANDLERS_KEY].reset()

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SimLLMServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="awm-tui sim-llm",
                                description="Run the simulated (scripted, offline) model endpoint.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8900)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--latency-jitter", type=float, default=0.0, help="up to this many more seconds")
    p.add_argument("--rate-429", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429")
    p.add_argument("--rate-5xx", type=float, default=0.0)
    p.add_argument("--rate-drop", type=float, default=0.0, help="close the connection unanswered")
    p.add_argument("--rate-error-body", type=float, default=0.0, help="200 with an error body")
    p.add_argument("--wrong-patch-rate", type=float, default=0.0)
    p.add_argument("--bad-induction-rate", type=float, default=0.0)
    p.add_argument("--python-first-rate", type=float, default=0.0,
                   help="share of replies showing a ```python block before the ```bash one")
    p.add_argument("--context-window", type=int, default=0,
                   help="answer 400 'maximum context length is N tokens' above N (0: no limit)")
    p.add_argument("--ignore-system", action="store_true",
                   help="drop system messages, as some chat templates do")
    p.add_argument("--messy-induction-rate", type=float, default=0.0,
                   help="induction replies shaped as real models send them (prose, echo, think, cut off)")
    p.add_argument("--prompt-cache", action="store_true",
                   help="cache prefixes up to cache_control breakpoints, per key, and report cached tokens")
    p.add_argument("--no-cost", action="store_true", help="send no usage.cost (tokens only)")
    p.add_argument("--no-stream-usage", action="store_true",
                   help="streamed replies carry no usage, even when asked (as llama-cpp-python's)")
    p.add_argument("--memory-gain", type=float, default=0.0,
                   help="SIMULATION: share of tasks solved only with workflows in the prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--invalid-key", action="append", default=[], metavar="KEY")
    p.add_argument("--no-credit-key", action="append", default=[], metavar="KEY")
    p.add_argument("--key-rate-limit", type=float, default=0.0, metavar="N",
                   help="requests/s per key; above it 429 + Retry-After (0: no limit)")
    p.add_argument("--key-credit-limit", type=float, default=None, metavar="USD",
                   help="credit per key that replies' costs draw down, then 402 (default: unlimited)")
    p.add_argument("--dataset", action="append", default=[], metavar="FILE",
                   help="extra .json/.jsonl dataset (repeatable), added to the bundled sample")
    p.add_argument("--no-sample", action="store_true", help="do not load the bundled sample")
    p.add_argument("--submit", action="append", default=[], metavar="ID=gold|wrong|empty",
                   help="what the agent submits for one task (repeatable)")
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    datasets = tuple(([] if args.no_sample else [SAMPLE]) + list(args.dataset))
    return SimOptions(
        latency=args.latency, latency_jitter=args.latency_jitter, rate_429=args.rate_429,
        retry_after=args.retry_after, rate_5xx=args.rate_5xx, rate_drop=args.rate_drop,
        rate_error_body=args.rate_error_body, wrong_patch_rate=args.wrong_patch_rate,
        bad_induction_rate=args.bad_induction_rate, messy_induction_rate=args.messy_induction_rate,
        python_first_rate=args.python_first_rate, context_window=args.context_window,
        ignore_system=args.ignore_system, memory_gain=args.memory_gain, seed=args.seed,
        prompt_cache=args.prompt_cache, report_cost=not args.no_cost,
        stream_usage=not args.no_stream_usage,
        invalid_keys=frozenset(args.invalid_key), no_credit_keys=frozenset(args.no_credit_key),
        datasets=datasets, submit=tuple(_submit_choice(arg) for arg in args.submit),
        key_rate_limit=args.key_rate_limit, key_credit_limit=args.key_credit_limit)


def _submit_choice(arg: str) -> tuple[str, SubmitChoice]:
    instance_id, _, choice = arg.partition("=")
    if choice not in ("gold", "wrong", "empty") or not instance_id:
        raise SystemExit(f"sim-llm: --submit {arg!r}: expected INSTANCE_ID=gold|wrong|empty")
    return instance_id, choice  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    server = SimLLMServer(options_from_args(args))
    code = asyncio.run(serve_until_signal(
        server, args.host, args.port, name="sim-llm",
        banner=lambda url: f"simulated model ({MODEL_ID}) listening on {url}"))
    if code == 0:
        print("simulated model stopped", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
