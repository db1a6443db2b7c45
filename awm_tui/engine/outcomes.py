"""How a task ends: SWE-bench's report categories, and the kinds of infrastructure error.

One enum instead of exit statuses written as text and parsed back: the run, the
checkpoint, the events, the faces and `report.json` all say the same word.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    RESOLVED = "resolved"
    """Every FAIL_TO_PASS and PASS_TO_PASS test passes."""
    UNRESOLVED = "unresolved"
    """Graded, and some listed test does not pass (or the patch does not apply)."""
    EMPTY_PATCH = "empty_patch"
    """The agent changed nothing: a result, not an error."""
    ERROR = "error"
    """No result could be had (image, sandbox, model, grading); never checkpointed."""
    NOT_EVALUATED = "not_evaluated"
    """`--skip-eval`: a patch was made and nobody graded it."""


class ErrorKind(StrEnum):
    """Which part of the infrastructure failed, for an `Outcome.ERROR`."""

    IMAGE = "image"
    """The task's image is absent and could not be pulled (offline, unknown, no space)."""
    SANDBOX = "sandbox"
    LLM = "llm"
    EVALUATION = "evaluation"
    """The grader gave no result: server unreachable, suite never started, log contradicts exit code."""
    SETUP = "setup"
    """Something this machine lacks, e.g. the `swebench` extra a row needs."""
    OS = "os"
    STALLED = "stalled"
    """No model reply and no command output for `stall_timeout` seconds: the watchdog ended it."""


class InfraError(RuntimeError):
    """A task could not get a result; the message is one line for the user."""

    kind: ErrorKind = ErrorKind.OS

    def __init__(self, message: str, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of a task's error, from the exception that ended it."""
    if isinstance(exc, InfraError):  # SandboxError and EvaluationError are ones
        return exc.kind
    from awm_tui.engine.llm import LLMError

    return ErrorKind.LLM if isinstance(exc, LLMError) else ErrorKind.OS
