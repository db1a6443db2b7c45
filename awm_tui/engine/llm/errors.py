"""What an LLM call can fail with. Messages show the key only masked."""

from __future__ import annotations


class LLMError(Exception):
    """The call failed: a non-retryable answer, or retries ran out.

    `status` is the last HTTP status (None for transport failures), `retries` the
    retries spent, `latency_s` the wall time of the whole call.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 retries: int = 0, latency_s: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retries = retries
        self.latency_s = latency_s

    def __str__(self) -> str:
        return self.message


class LLMContextLimit(LLMError):
    """The prompt does not fit the model's context window: the same request can
    never pass, so it ends the task (exit status `ContextLimit`), not the run.
    `window` is the limit the server named, when it named one."""

    def __init__(self, message: str, *, window: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.window = window


class LLMFatalError(LLMError):
    """Retrying cannot help and this run must stop; other runs carry on."""


class LLMAuthError(LLMFatalError):
    """401/403: the key is missing, wrong or revoked."""


class LLMCreditsError(LLMFatalError):
    """402: the account behind the key is out of credits."""
