"""Running one of our aiohttp servers from the command line until a signal stops it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Protocol

from awm_tui.engine.sandbox.base import SandboxError
from awm_tui.engine.tasks import TaskError
from awm_tui.exit_codes import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE


class Server(Protocol):
    @property
    def url(self) -> str: ...

    async def start(self, host: str, port: int) -> None: ...
    async def close(self) -> None: ...


async def serve_until_signal(server: Server, host: str, port: int, *, name: str,
                             banner: Callable[[str], str]) -> int:
    """Start, print the banner (one line, for scripts to wait on), run until SIGINT or
    SIGTERM, close. Exit codes: 0 stopped, 1 cannot listen, 2 bad dataset or Docker URL."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(host, port)
    except (TaskError, SandboxError) as exc:
        await server.close()
        print(f"awm-tui {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        await server.close()
        print(f"awm-tui {name}: cannot listen on {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_RUN_FAILED
    print(banner(server.url), flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
    return EXIT_OK
