"""A subprocess sandbox for machines without Docker: a temp directory, not isolated."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from awm_tui.engine import watchdog
from awm_tui.engine.sandbox.base import (
    DEFAULT_MAX_OUTPUT,
    WORKDIR,
    ExecResult,
    Sandbox,
    SandboxError,
    wrap_with_timeout,
)
from awm_tui.engine.sandbox.output import (
    CLIENT_GRACE_S,
    KILL_AFTER_S,
    READ_CHUNK,
    READ_GRACE_S,
    BoundedOutput,
    is_timeout,
    run_shielded,
    slug,
)
from awm_tui.engine.sandbox.owner import process_exists


PREFIX = "awm-sbx-"
"""Temp directory names: awm-sbx-<pid>-<run>-<instance>-<random>."""


def sweep_local(tmpdir: str | Path | None = None) -> int:
    """Remove the task copies of awm-tui processes that no longer exist.

    A SIGKILLed process cannot clean up; its copies (whole repositories) would
    fill /tmp over weeks of experiments. Only this user's directories whose
    process is gone are touched. Blocking: call it in a thread.
    """
    removed = 0
    for entry in Path(tmpdir or tempfile.gettempdir()).glob(PREFIX + "*"):
        pid = entry.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or process_exists(int(pid)):
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or info.st_uid != os.getuid():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


class LocalSandbox(Sandbox):
    """Runs commands with bash in a temp directory that stands for /testbed."""

    kind = "local"
    isolated = False

    def __init__(self, *, run_name: str = "run", instance_id: str = "task") -> None:
        self.run_name = run_name
        self.instance_id = instance_id
        self._root: Path | None = None
        self._attached = False
        self._closed = False
        self._groups: set[int] = set()
        """Process groups of every command run, so close() also ends background jobs."""

    @classmethod
    def attach(cls, path: str | Path) -> "LocalSandbox":
        """An existing local sandbox (`local:<path>` or a path); close() keeps the files."""
        text = str(path)
        sandbox = cls()
        sandbox._root = Path(text.removeprefix("local:"))
        sandbox._attached = True
        return sandbox

    @property
    def id(self) -> str:
        return f"local:{self._require_root()}"

    @property
    def workdir(self) -> str:
        return str(self._require_root())

    def _require_root(self) -> Path:
        if self._root is None:
            raise SandboxError("local sandbox not started")
        return self._root

    def resolve(self, path: str) -> Path:
        """Map a sandbox path (`/testbed/...` or relative to it) to the real one."""
        root = self._require_root()
        if path == WORKDIR or path.startswith(WORKDIR + "/"):
            return root / path[len(WORKDIR):].lstrip("/")
        return root / path if not os.path.isabs(path) else Path(path)

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("local sandbox already closed")
        if self._root is not None:
            if not await asyncio.to_thread(self._root.is_dir):
                raise SandboxError(f"local sandbox directory {self._root} does not exist")
            return
        # The pid in the name lets `sweep_local` tell a killed process's copies from live ones.
        prefix = f"{PREFIX}{os.getpid()}-{slug(self.run_name)}-{slug(self.instance_id)}-"
        self._root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix))

    async def put_directory(self, src: Path, dest: str = WORKDIR) -> None:
        target = self.resolve(dest)
        await asyncio.to_thread(
            shutil.copytree, src, target, symlinks=True, dirs_exist_ok=True
        )

    async def write_file(self, path: str, content: str) -> None:
        target = self.resolve(path)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")

        await asyncio.to_thread(write)

    async def exec(
        self,
        command: str,
        *,
        timeout_s: float = 120.0,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        cwd = self.resolve(workdir) if workdir else self._require_root()
        env = dict(os.environ)
        # The running venv first, so `python3 -m pytest` finds our pytest.
        env["PATH"] = os.pathsep.join(
            [os.path.dirname(sys.executable), env.get("PATH", os.defpath)]
        )
        started = time.monotonic()
        # Own session = own process group, so the whole tree can be killed.
        proc = await asyncio.create_subprocess_exec(
            *wrap_with_timeout(command, timeout_s, KILL_AFTER_S),
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._groups.add(proc.pid)
        output = BoundedOutput(max_output)
        assert proc.stdout is not None
        reader = asyncio.create_task(_drain(proc.stdout, output))
        exited = asyncio.create_task(_wait_exit(proc))
        client_timed_out = False
        try:
            try:
                async with asyncio.timeout(timeout_s + KILL_AFTER_S + CLIENT_GRACE_S):
                    with watchdog.waiting_on(watchdog.command_label(command)):
                        await asyncio.wait([reader, exited], return_when=asyncio.FIRST_COMPLETED)
                    # After EOF, wait() returns at exit without polling.
                    exit_code = exited.result() if exited.done() else await proc.wait()
            except TimeoutError:
                client_timed_out = True
                exit_code = 137
            duration = time.monotonic() - started
            if client_timed_out or is_timeout(exit_code, duration, timeout_s):
                # `timeout` stops once bash is gone; a child that ignored
                # SIGTERM is still in the group.
                _kill_group(proc)
            # A background job may keep the pipe open: take what is there, then stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READ_GRACE_S):
                    await asyncio.shield(reader)
        finally:
            reader.cancel()
            exited.cancel()
            if proc.returncode is None:
                _kill_group(proc)
            await run_shielded(_reap(proc))
            if not _group_alive(proc.pid):
                # Forget it, so close() cannot signal a group id reused by the system.
                self._groups.discard(proc.pid)
        return ExecResult(
            exit_code=exit_code,
            output=output.text(),
            truncated=output.truncated,
            timed_out=client_timed_out or is_timeout(exit_code, duration, timeout_s),
            duration_s=duration,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for group in self._groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        if self._root is not None and not self._attached:
            await run_shielded(
                asyncio.to_thread(shutil.rmtree, self._root, ignore_errors=True)
            )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the command's whole process group (its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _wait_exit(proc: asyncio.subprocess.Process) -> int:
    """The exit code as soon as the process exits.

    Process.wait() (3.11) also waits for the pipes to close, which a
    background job can keep open for as long as it lives.
    """
    while proc.returncode is None:
        await asyncio.sleep(0.05)
    return proc.returncode


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Close our end of the pipes (a background job may hold theirs), then reap."""
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()
    await proc.wait()


async def _drain(stream: asyncio.StreamReader, output: BoundedOutput) -> None:
    while chunk := await stream.read(READ_CHUNK):
        output.feed(chunk)
        watchdog.touch()
