"""The interface every sandbox implements."""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from awm_tui.engine.outcomes import ErrorKind, InfraError

WORKDIR = "/testbed"
"""Where the task's repository lives inside a sandbox (SWE-bench convention)."""

DEFAULT_MAX_OUTPUT = 64 * 1024
"""Bytes of output kept from one command; the rest is dropped, and said so."""


class SandboxError(InfraError):
    """The sandbox could not be created, reached or used."""

    kind = ErrorKind.SANDBOX


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    output: str
    """stdout and stderr interleaved, decoded as UTF-8 with replacement."""
    truncated: bool = False
    timed_out: bool = False
    duration_s: float = 0.0


def wrap_with_timeout(command: str, timeout_s: float, kill_after_s: float = 5.0) -> list[str]:
    """argv that enforces the timeout inside the sandbox.

    Cancelling an exec from the client does not kill the process in a
    container, so the limit must be enforced where the process runs.
    """
    return [
        "timeout", "-k", f"{kill_after_s:g}", f"{timeout_s:g}",
        "bash", "-c", command,
    ]


class Sandbox(ABC):
    """A place to run one task's shell commands, with the repository at `workdir`."""

    kind: str = "abstract"
    isolated: bool = True
    host: str | None = None
    """The Docker host (URL, no secrets) holding it when placed from `[[docker.hosts]]`; the
    evaluation request names it so the grader reaches the right daemon."""

    @property
    def workdir(self) -> str:
        """Where the task's repository is; a local sandbox's is its temp copy."""
        return WORKDIR

    @property
    @abstractmethod
    def id(self) -> str:
        """Container id (Docker) or `local:<path>`; what the eval server is given."""

    @abstractmethod
    async def start(self) -> None:
        """Create and start the sandbox. Idempotent."""

    @abstractmethod
    async def put_directory(self, src: Path, dest: str = WORKDIR) -> None:
        """Copy the contents of local directory `src` into `dest` in the sandbox."""

    @abstractmethod
    async def exec(
        self,
        command: str,
        *,
        timeout_s: float = 120.0,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run `command` with bash; exit code 124/137 with `timed_out` on timeout."""

    @abstractmethod
    async def close(self) -> None:
        """Remove the sandbox (force). Idempotent, safe on every exit path."""

    async def __aenter__(self) -> "Sandbox":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def write_file(self, path: str, content: str) -> None:
        """Write a text file inside the sandbox (via a quoted heredoc-free printf)."""
        quoted = shlex.quote(content)
        result = await self.exec(f"printf %s {quoted} > {shlex.quote(path)}", timeout_s=60)
        if result.exit_code != 0:
            raise SandboxError(f"cannot write {path}: {result.output.strip()[:200]}")
