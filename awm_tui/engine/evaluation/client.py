"""The evaluation client: the users' `evaluate_info` contract over one pooled session.

One `EvalClient` serves a whole fleet: every run's evaluations share its
connection pool, so connections to the server stay bounded by `limit_per_host`
and are reused instead of opened per request. Each call may name the run's
`RunMetrics` so its requests and evaluations are charged to that run.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from awm_tui.config.models import EvalConfig, HttpConfig
from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.http.session import make_session
from awm_tui.engine.outcomes import ErrorKind, InfraError


HEALTH_TIMEOUT_S = 10.0


class EvaluationError(InfraError):
    """The evaluation could not be obtained; the message is one line for the user."""

    kind = ErrorKind.EVALUATION


class _Retryable(Exception):
    """A 5xx answer: worth another attempt."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def _should_retry(exc: BaseException) -> bool:
    # A read timeout means the evaluation itself ran long: repeating it only
    # doubles the wait. Refused/dropped connections and 5xx are worth retrying;
    # POST is not retried by aiohttp on a stale keep-alive connection, so we do.
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return False
    return isinstance(exc, (_Retryable, aiohttp.ClientConnectionError))


class EvalClient:
    """POSTs to `{server_url}/evaluate`; one per fleet, closed with `aclose()`."""

    def __init__(self, config: EvalConfig, http: HttpConfig, metrics: RunMetrics | None = None) -> None:
        self.config = config
        self.http = http
        self.metrics = metrics
        self.url = config.server_url.rstrip("/") + "/evaluate"
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        # The per-call limit replaces the session's sock_read: the server says
        # nothing until the tests finish, which may take the whole `timeout`.
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, connect=http.connect,
                                              sock_read=config.timeout)

    def _get_session(self) -> aiohttp.ClientSession:
        """The single place the session is made (lazily, inside the running loop)."""
        if self._closed:
            raise EvaluationError("evaluation client is closed")
        if self._session is None:
            self._session = make_session(self.http, self.metrics)
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> "EvalClient":
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def check(self) -> None:
        """The server answers `GET /health`, else EvaluationError (one line): a run asks
        before its first task, not after each task's agent work."""
        url = self.config.server_url.rstrip("/") + "/health"
        try:
            async with self._get_session().get(url, timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise EvaluationError(f"evaluation server {self.config.server_url} does not answer ({reason}); start "
                                  "`awm-tui eval-server`, fix [eval] server_url, or set [eval] mode = \"local\"") from None
        if status >= 400:
            raise EvaluationError(f"evaluation server {self.config.server_url} answers HTTP {status} at /health; "
                                  "is [eval] server_url an `awm-tui eval-server`?")

    async def evaluate_info(
        self,
        exit_status: str,
        result: str,
        container_id: str,
        instance_id: str,
        dataset_name: str,
        split: str,
        *,
        metrics: RunMetrics | None = None,
        docker_host: str | None = None,
    ) -> tuple[float, float | None, dict]:
        """(reward, speedup, info) for an agent's result; EvaluationError when none can be had.
        `docker_host` names the daemon holding the container (`[[docker.hosts]]`): an extra
        field, sent only then, so the users' own servers see the body they know."""
        payload = {"exit_status": exit_status, "result": result, "container_id": container_id,
                   "instance_id": instance_id, "dataset_name": dataset_name, "split": split}
        if docker_host:
            payload["docker_host"] = docker_host
        charged = metrics or self.metrics
        started = time.monotonic()
        try:
            answer = await self._post_with_retries(payload, charged)
        except _Retryable as exc:
            raise EvaluationError(f"evaluation server {self.config.server_url}: {exc}") from exc
        except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
            raise EvaluationError(f"evaluation of {instance_id} took longer than {self.config.timeout:g}s") from exc
        except aiohttp.ClientConnectionError as exc:
            reason = str(exc) or type(exc).__name__
            raise EvaluationError(f"evaluation server {self.config.server_url} unreachable: {reason}") from exc
        if charged is not None:
            charged.record_evaluation(time.monotonic() - started)
        return answer

    async def _post_with_retries(self, payload: dict, charged: RunMetrics | None) -> tuple[float, float | None, dict]:
        # Fast path: a first attempt that succeeds never pays for tenacity's set-up
        # (a sixth of a client's CPU per call). A retryable failure is replayed as
        # tenacity's attempt 1, so waits and retry counts are exactly tenacity's.
        try:
            return await self._post(payload, charged)
        except Exception as exc:
            if not _should_retry(exc):
                raise
            pending = [exc]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.http.retry_attempts),
            wait=wait_exponential(min=self.http.retry_min_wait, max=self.http.retry_max_wait),
            retry=retry_if_exception(_should_retry),
            before_sleep=(lambda _state: charged.record_retry()) if charged is not None else None,
            reraise=True,
        )

        async def attempt() -> tuple[float, float | None, dict]:
            if pending:
                raise pending.pop()
            return await self._post(payload, charged)

        return await retrying(attempt)

    async def _post(self, payload: dict, metrics: RunMetrics | None) -> tuple[float, float | None, dict]:
        session = self._get_session()
        ctx: dict[str, Any] | None = {"metrics": metrics} if metrics is not None else None
        # `async with` releases the connection on every path, read or not.
        async with session.post(self.url, json=payload, timeout=self._timeout,
                                trace_request_ctx=ctx) as response:
            text = await response.text()
            data = _json_or_none(text)
            message = data.get("error") if isinstance(data, dict) else None
            if response.status >= 500:
                raise _Retryable(response.status, message or text[:200] or response.reason or "")
            if response.status >= 400:
                raise EvaluationError(f"evaluation server rejected {payload['instance_id']}: "
                                      f"HTTP {response.status}: {message or text[:200]}")
        if not isinstance(data, dict) or not isinstance(data.get("reward"), (int, float)):
            raise EvaluationError(f"evaluation server sent an unexpected answer: {text[:200]!r}")
        speedup = data.get("speedup")
        info = data.get("info")
        return (float(data["reward"]),
                float(speedup) if isinstance(speedup, (int, float)) else None,
                info if isinstance(info, dict) else {})


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
