"""OpenAI-compatible chat client: one per run, with its own pool, key and retries.

Retries (tenacity) cover what another attempt may fix: 429 (waiting as long as the
server asks, without spending one of `num_retries`: see `stop_after_failures`; the
wait holds every call on the key, whichever run makes it: see `keyhealth.KeyState`),
408/5xx, dropped connections and timeouts (aiohttp never retries a POST itself), and a 200 whose body is an error or has no choices. A refused key
(401, or 403 unless moderation flagged the prompt) or an empty account (402) is
fatal for the run and raised at once. A prompt too long for the model's context
window (a 400 in any of the shapes vLLM, OpenAI, OpenRouter and llama.cpp send)
is LLMContextLimit: it ends the task, never the run.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr
from yarl import URL
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    wait_random_exponential,
)

from awm_tui.config.keys import key_identity, mask_key
from awm_tui.config.models import HttpConfig, LLMProfile
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.http.session import make_session
from awm_tui.engine.llm.budget import Budget
from awm_tui.engine.llm.cost import CostEstimator, estimated_usage, has_counts, prompt_chars, usage_of
from awm_tui.engine.llm.errors import LLMAuthError, LLMContextLimit, LLMCreditsError, LLMError, LLMFatalError
from awm_tui.engine.llm.keyhealth import KeyState
from awm_tui.engine.watchdog import touch, unwatched, waiting_on
from awm_tui.engine.llm.retry import (
    RetryableError,
    server_wait_hint,
    stop_after_failures,
    wait_server_hint_or,
)

log = logging.getLogger(__name__)

Purpose = Literal["agent", "induction"]
_RATE_LIMITED: contextvars.ContextVar[bool] = contextvars.ContextVar("awm_rate_limited", default=False)
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""Besides 5xx: timeouts, conflicts and rate limits a later attempt may pass."""
_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
_MODERATION = re.compile(r"moderation|flagged", re.IGNORECASE)
_CONTEXT_LIMIT = re.compile(
    r"maximum context length|context.length.exceeded|exceeds? (?:the )?(?:available )?context"
    r"|exceed_context_size|context window|maximum model length|prompt is too long|input is too long",
    re.IGNORECASE)
"""OpenAI/vLLM/OpenRouter/llama-cpp-python: "maximum context length is N tokens";
llama.cpp: "exceeds the available context size (N tokens)"; vLLM: "longer than the
maximum model length of N"; llama-cpp-python: "exceed context window of N"."""
_WINDOW = re.compile(
    r"(?:maximum context length is|context size \(|context window of|maximum model length of)\s*(\d[\d,]*)",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ChatResult:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    """USD: the provider's `usage.cost` when reported, else tokens × profile prices
    (cached tokens at the profile's cache prices)."""
    latency_s: float
    """Wall time of the whole call, retries and waits included."""
    retries: int
    model: str
    """The model as the server names it in its reply (the profile's when it names none)."""
    finish_reason: str = ""
    """`stop`, `length` (cut at max_tokens), …; empty when the server sent none."""
    cached_tokens: int = 0
    """Prompt tokens the provider read from its prompt cache (counted in prompt_tokens too)."""
    cache_saving: float = 0.0
    """USD those cached tokens saved against the input price (0 without a cache price)."""
    usage_estimated: bool = False
    """The server reported no token counts: tokens (and a priced cost) are estimated from
    characters (`cost.estimated_usage`), and say nothing of how the server tokenised."""


class LLMClient:
    """Chat with one profile's endpoint using one key; close with `aclose()`.

    The session is created on first use, so the client may be built outside the
    event loop. Every HTTP answer is charged to `metrics` by the traced session;
    the client adds retries, latency, tokens and cost.
    """

    def __init__(self, profile: LLMProfile, *, api_key: SecretStr, http: HttpConfig,
                 metrics: RunMetrics, run_name: str = "", key_state: KeyState | None = None,
                 budget: Budget | None = None) -> None:
        if not isinstance(api_key, SecretStr):
            # model_copy(update=...) skips validation and lets plain strings through.
            raise TypeError("api_key must be a pydantic SecretStr")
        if key_state is not None and key_state.identity != key_identity(api_key):
            raise ValueError("key_state belongs to another key")
        self.key = key_state or KeyState(api_key)
        """The key's shared state (backoff, in-flight limit, pace); its own when no fleet shares one."""
        self.key.pace(profile.requests_per_minute)
        self.key.cap(profile.key_budget)
        self.profile = profile
        self.metrics = metrics
        self.run_name = run_name
        self.budget = (budget if budget is not None else Budget()).with_key(self.key.ledger)
        """The ledgers every call is charged to (run → key → fleet); a task adds its own. The
        key's ledger is always one, so its spend is counted in one place whoever made the chain."""
        self.estimators = {"agent": CostEstimator(profile), "induction": CostEstimator(profile)}
        """Per purpose: an induction prompt's cost says little about the next agent step's."""
        self._api_key = api_key
        self._http = http
        self._url = profile.chat_url
        self._timeout = aiohttp.ClientTimeout(
            total=profile.timeout, connect=min(http.connect, profile.timeout))
        self._proxy = _env_proxy(self._url)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._retrying = AsyncRetrying(
            stop=stop_after_failures(profile.num_retries + 1),
            wait=wait_server_hint_or(wait_random_exponential(
                multiplier=profile.retry_multiplier,
                min=profile.retry_min_wait,
                max=max(profile.retry_max_wait, profile.retry_min_wait)), hold=self.key.hold),
            retry=retry_if_exception_type(RetryableError),
            before_sleep=self._before_sleep,
            reraise=False,
        )

    def __repr__(self) -> str:
        return f"LLMClient(run={self.run_name!r}, model={self.profile.model!r}, key={mask_key(self._api_key)})"

    @property
    def rate_limited(self) -> bool:
        """This task's call under way (or its last one) met a 429 or a hold on the key: a task
        that times out now was starved. Per task (a context variable): a run's workers share
        the client."""
        return _RATE_LIMITED.get()

    @property
    def masked_key(self) -> str:
        return mask_key(self._api_key)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("LLMClient is closed")
        if self._session is None:
            self._session = make_session(self._http, self.metrics, headers={"X-Title": "awm-tui"})
        return self._session

    async def chat(self, messages: list[dict[str, Any]], *, purpose: Purpose = "agent",
                   budget: Budget | None = None) -> ChatResult:
        """One chat completion; raises LLMFatalError (stop the run) or LLMError, and
        BudgetReached (nothing sent) when its worst cost could cross a ledger of `budget`
        (default: the client's own chain)."""
        session = self._ensure_session()
        sent = fold_system(messages) if self.profile.system_prompt_mode == "user" else messages
        chars = prompt_chars(sent)
        if self.profile.caching_prompt and takes_cache_breakpoints(self.profile):
            sent = cache_breakpoints(sent)
        chain = (budget or self.budget).with_key(self.key.ledger)
        reservation = chain.reserve(self.estimators[purpose].worst(chars))
        try:
            result = await self._chat(session, sent, purpose, chars)
        except BaseException:
            reservation.settle(0.0)   # nothing came back, so nothing is known to be charged
            raise
        reservation.settle(result.cost)
        self.key.settled(result.cost)   # after the key's ledger took it: credits left are read from it
        return result

    async def count_prompt(self, messages: list[dict[str, Any]]) -> int | None:
        """The server's token count for `messages` as sent (one request for one output token,
        no retry, outside the budgets: a probe costs a few dozen tokens), or None when it
        counts none or the request fails."""
        body = {"model": self.profile.api_model, "messages": messages, "max_tokens": 1, "temperature": 0.0}
        try:
            data = await self._attempt(self._ensure_session(), body)
        except (RetryableError, LLMError) as exc:
            log.info("%s: prompt count probe failed: %s", self.run_name or "llm", exc)
            return None
        usage = data.get("usage")
        return usage_of(usage, self.profile).prompt_tokens if has_counts(usage) else None

    async def _chat(self, session: aiohttp.ClientSession, messages: list[dict[str, Any]],
                    purpose: Purpose, chars: int) -> ChatResult:
        """`chars`: the prompt's characters (`prompt_chars`), counted once by `chat`."""
        body: dict[str, Any] = {
            "model": self.profile.api_model,
            "messages": messages,
            "temperature": self.profile.temperature,
            "top_p": self.profile.top_p,
        }
        if self.profile.max_output_tokens is not None:
            body["max_tokens"] = self.profile.max_output_tokens
        if self.profile.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        loop = asyncio.get_running_loop()
        started = loop.time()
        _RATE_LIMITED.set(False)
        # Fast path: most calls succeed at once, and setting up tenacity costs a
        # sixth of the client's CPU per call. Only a retryable failure enters the
        # retry loop, which replays that failure as its attempt 1 (no new request),
        # so waits, hooks and counts are exactly tenacity's.
        try:
            data = await self._attempt(session, body)
        except RetryableError as first:
            data, retries = await self._retry(session, body, first, purpose, started)
        except LLMError as exc:
            exc.latency_s = loop.time() - started
            raise
        else:
            retries = 0
        latency = loop.time() - started
        result = self._result(data, latency, retries, chars)
        _RATE_LIMITED.set(False)
        self.estimators[purpose].observe(chars, result.prompt_tokens, result.completion_tokens, result.cost)
        self.metrics.record_llm(latency, result.prompt_tokens, result.completion_tokens, result.cost,
                                result.cached_tokens, result.cache_saving)
        return result

    async def _retry(self, session: aiohttp.ClientSession, body: dict[str, Any], first: RetryableError,
                     purpose: str, started: float) -> tuple[dict[str, Any], int]:
        loop = asyncio.get_running_loop()
        pending = [first]
        retrying = self._retrying.copy()
        try:
            async for attempt in retrying:
                with attempt:
                    if pending:
                        raise pending.pop()
                    data = await self._attempt(session, body)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            retries = exc.last_attempt.attempt_number - 1
            reason = last.reason if isinstance(last, RetryableError) else repr(last)
            status = last.status if isinstance(last, RetryableError) else None
            raise LLMError(f"{purpose} call failed after {retries} {'retry' if retries == 1 else 'retries'}: {reason}",
                           status=status, retries=retries, latency_s=loop.time() - started) from None
        except LLMError as exc:
            exc.retries = retrying.statistics.get("attempt_number", 1) - 1
            exc.latency_s = loop.time() - started
            raise
        return data, attempt.retry_state.attempt_number - 1

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        status = exc.status if isinstance(exc, RetryableError) else None
        self.metrics.record_retry(status)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if status == 429:
            wait = max(wait, self.key.retry_after_s())   # a 429's wait is the key's hold
        log.info("%s: LLM retry %d in %.2fs: %s", self.run_name or "llm",
                 state.attempt_number, wait, exc)

    async def _attempt(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
        """One request, in turn with every other call on the key (`KeyState.acquire`)."""
        key = self.key
        if key.retry_after_s() > 0 or key.pacing_s() > 0 or (
                key.limit < key.max_in_flight and key.in_flight >= key.limit):
            _RATE_LIMITED.set(True)   # held back by the key's rate limiting, whichever run met it
        with unwatched(f"the rate limit of key {key.masked}"):   # bounded by Retry-After and patience
            await key.acquire()
        try:
            data = await self._request(session, body)
        except BaseException as exc:   # cancelled included: the slot must come back
            status = getattr(exc, "status", None)
            self.key.release(status)
            if status == 429:
                _RATE_LIMITED.set(True)
            if isinstance(exc, LLMFatalError) and status in (401, 402, 403):
                self.key.refuse(status, exc.message)
            raise
        self.key.release(ok=True)
        return data

    async def _request(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
        # The key leaves its SecretStr here and only here, straight into the header.
        headers = {"Authorization": "Bearer " + self._api_key.get_secret_value()}
        try:
            with waiting_on(f"the model (POST {self._url})"):  # for the stall watchdog
                async with session.post(self._url, json=body, headers=headers,
                                        timeout=self._timeout, proxy=self._proxy) as resp:
                    try:
                        # always drain: an unread body pins its pool slot
                        raw = await (_read_stream(resp) if _is_stream(resp) else resp.read())
                    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                        self.metrics.record_error()   # the trace saw only the status line
                        if isinstance(exc, asyncio.TimeoutError):  # e.g. a stream still coming
                            raise RetryableError(f"no reply within {self.profile.timeout:g}s",
                                                 status=resp.status) from None
                        raise RetryableError(f"reading the reply failed ({_describe(exc)})",
                                             status=resp.status) from None
                    return self._check(resp.status, raw, resp.headers)
        except (RetryableError, LLMError):
            raise
        except asyncio.TimeoutError:
            raise RetryableError(f"no reply within {self.profile.timeout:g}s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            raise RetryableError(f"connection failed ({_describe(exc)})") from None
        except aiohttp.ClientError as exc:
            raise LLMError(f"request failed ({_describe(exc)})") from None

    def _check(self, status: int, raw: bytes, headers: Any) -> dict[str, Any]:
        """The reply's JSON if it holds a completion; otherwise the matching error."""
        data = _json(raw)
        if status >= 300:
            message = self._message(data, raw)
            _raise_if_context_limit(status, data, message)
            self._raise_for(status, message, headers)
        if not isinstance(data, dict):
            self.metrics.record_error()
            raise RetryableError(f"HTTP {status} reply is not JSON: {self._message(None, raw)}", status=status)
        error = data.get("error")
        if error:
            self.metrics.record_error()
            code = error.get("code") if isinstance(error, dict) else None
            code = code if isinstance(code, int) else 0
            message = self._message(data, raw)
            if code >= 400:
                _raise_if_context_limit(code, data, message)
                self._raise_for(code, message, headers, in_body=True)
            raise RetryableError(f"error in HTTP {status} reply: {message}", status=status)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self.metrics.record_error()
            raise RetryableError(f"HTTP {status} reply has no choices", status=status)
        return data

    def _raise_for(self, status: int, message: str, headers: Any, *, in_body: bool = False) -> None:
        where = f"HTTP {status}{' in the reply body' if in_body else ''}"
        detail = f"({where}: {message})" if message else f"({where})"
        if status == 403 and _MODERATION.search(message):
            # OpenRouter's 403 for a flagged prompt: this request, not the key.
            raise LLMError(f"request refused by moderation {detail}", status=status)
        if status == 401:
            raise LLMAuthError(f"invalid API key {self.masked_key} {detail}", status=status)
        if status == 403:  # e.g. no access to this model or region: retrying cannot help
            raise LLMAuthError(f"access denied for API key {self.masked_key} {detail}", status=status)
        if status == 402:
            raise LLMCreditsError(f"out of credits on API key {self.masked_key} {detail}", status=status)
        if status >= 500 or status in RETRYABLE_STATUS:
            what = "rate limited" if status == 429 else "server error"
            raise RetryableError(f"{what} {detail}", status=status, wait_s=server_wait_hint(headers))
        raise LLMError(f"request rejected {detail}", status=status)

    def _message(self, data: Any, raw: bytes) -> str:
        """The provider's one-line reason, truncated and scrubbed of anything key-like."""
        text = ""
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                text = str(error.get("message") or "")
                raw_meta = (error.get("metadata") or {}).get("raw") if isinstance(error.get("metadata"), dict) else None
                if raw_meta and str(raw_meta) not in text:
                    text = f"{text} — {raw_meta}" if text else str(raw_meta)
            elif isinstance(error, str):
                text = error
            text = text or str(data.get("message") or data.get("detail") or "")
        if not text and raw:
            text = raw[:300].decode("utf-8", "replace")
        text = " ".join(text.split())
        secret = self._api_key.get_secret_value()
        if secret:
            text = text.replace(secret, self.masked_key)
        text = _KEYLIKE.sub(lambda m: mask_key(m.group(0)), text)
        return text[:200] + ("…" if len(text) > 200 else "")

    def _result(self, data: dict[str, Any], latency: float, retries: int, sent_chars: int) -> ChatResult:
        choice = data["choices"][0]
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else choice.get("text")
        content = content if isinstance(content, str) else ""
        estimated = not has_counts(data.get("usage"))
        usage = (estimated_usage(data.get("usage"), sent_chars, len(content), self.profile) if estimated
                 else usage_of(data.get("usage"), self.profile))
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else ""
        if finish == "length":
            self.metrics.record_truncated()
        return ChatResult(
            content=content,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            latency_s=latency,
            retries=retries,
            model=str(data.get("model") or self.profile.api_model),
            finish_reason=finish,
            cached_tokens=usage.cached_tokens,
            cache_saving=usage.saving,
            usage_estimated=estimated,
        )


def _is_stream(resp: aiohttp.ClientResponse) -> bool:
    return resp.status < 300 and resp.content_type == "text/event-stream"


async def _read_stream(resp: aiohttp.ClientResponse) -> bytes:
    """A streamed reply (`stream = true`) as the JSON of the one-piece reply it adds up to;
    an error event sent mid-stream is returned as it came, for `_check` to report."""
    parts: list[str] = []
    reply: dict[str, Any] = {"choices": []}
    finish: str | None = None
    chose = False
    async for line in resp.content:
        touch()  # each chunk is progress for the stall watchdog
        if not line.startswith(b"data:"):
            continue  # comments (keep-alive pings), event names, blank separators
        payload = line[5:].strip()
        if payload == b"[DONE]":
            break
        chunk = _json(payload)
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            return payload
        reply["model"] = chunk.get("model") or reply.get("model")
        if isinstance(chunk.get("usage"), dict):
            reply["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            chose = True
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            finish = choice.get("finish_reason") or finish
    if chose:
        reply["choices"] = [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                             "finish_reason": finish}]
    return json.dumps(reply).encode()


def fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`system_prompt_mode = "user"`: the system text opens the first user message.

    Some chat templates (llama.cpp's gemma format) drop a system message; text in
    a user turn reaches every model. The caller's list is left as it is.
    """
    system = [m for m in messages if m.get("role") == "system"]
    if not system:
        return messages
    text = "\n\n".join(str(m.get("content") or "") for m in system)
    folded = [dict(m) for m in messages if m.get("role") != "system"]
    for m in folded:
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            m["content"] = f"{text}\n\n{m['content']}"
            return folded
    return [{"role": "user", "content": text}, *folded]


def takes_cache_breakpoints(profile: LLMProfile) -> bool:
    """Whether the model takes `cache_control` breakpoints: Anthropic's, by name (OpenRouter
    passes them on; OpenAI-style providers cache prefixes by themselves and need none)."""
    model = profile.model.lower()
    return "anthropic/" in model or "claude" in model


CACHE_BREAKPOINTS = 4
"""Anthropic's most per request: the system message and the latest user messages."""


def cache_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `messages` with `cache_control: {"type": "ephemeral"}` on the system
    message and the last user messages, as OpenRouter's prompt-caching docs show it: the
    content as one text part carrying the marker. Marking the latest user messages (not
    only the last) lets the next call, one exchange longer, hit the prefix this one wrote.
    The caller's list is left as it is."""
    marked = [dict(m) for m in messages]
    chosen = [i for i, m in enumerate(marked) if m.get("role") == "system"][:1]
    users = [i for i, m in enumerate(marked) if m.get("role") == "user"]
    for i in chosen + users[max(len(users) - (CACHE_BREAKPOINTS - len(chosen)), 0):]:
        content = marked[i].get("content")
        if isinstance(content, str) and content:
            marked[i]["content"] = [{"type": "text", "text": content, "cache_control": {"type": "ephemeral"}}]
    return marked


def _raise_if_context_limit(status: int, data: Any, message: str) -> None:
    """LLMContextLimit when a 4xx says the prompt is longer than the context window."""
    if status not in (400, 413, 422):
        return
    error = data.get("error") if isinstance(data, dict) else None
    fields = error if isinstance(error, dict) else {}
    tags = " ".join(str(fields.get(k) or "") for k in ("code", "type"))
    if not _CONTEXT_LIMIT.search(f"{message} {tags}"):
        return
    match = _WINDOW.search(message)
    window = int(match.group(1).replace(",", "")) if match else None
    if window is None and isinstance(fields.get("n_ctx"), int):
        window = fields["n_ctx"]   # llama.cpp names it in the error object
    raise LLMContextLimit(f"prompt exceeds the model's context window (HTTP {status}: {message})",
                          status=status, window=window)


def _env_proxy(url: str) -> str | None:
    """HTTPS_PROXY / HTTP_PROXY for `url` unless NO_PROXY covers it, read once.

    Not the session's trust_env: that also looks up ~/.netrc in a thread on every
    request, and a netrc entry would clash with our Authorization header.
    """
    target = URL(url)
    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # stdlib, not in typeshed
    if not target.host or bypass(target.host, proxies):
        return None
    return proxies.get(target.scheme)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
