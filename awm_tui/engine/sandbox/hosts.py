"""Several Docker daemons as one pool: where a task's container goes, and which hosts answer.

Placement: a healthy host with free capacity (`max_containers`), preferring one that
already holds the task's image (SWE-bench images are GBs), then the least loaded; when
every healthy host is full the task waits for a slot. Health: each host is pinged
(`/_ping`, short timeout) every `health_interval`; two failures in a row mark it down,
which ends the operations in flight on its containers with `HostDown` (an infrastructure
error: not checkpointed, retried on rerun), and the next ping that answers brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from awm_tui.config.models import DockerConfig, DockerHostConfig
from awm_tui.engine.events import EventSink, HostStatus
from awm_tui.engine.sandbox.base import DEFAULT_MAX_OUTPUT, WORKDIR, ExecResult, Sandbox, SandboxError
from awm_tui.engine.sandbox.docker import (
    PING_TIMEOUT_S, DockerSandbox, free_space, normalize_docker_url, sweep_leftovers,
)
from awm_tui.engine.sandbox.tls import display_url, one_line as _one_line, tls_context

HOST_LABEL = "awm-tui.docker-host"
"""On every container: the host (URL) it was placed on."""
FAILURES_TO_DOWN = 2
REFRESH_EVERY = 5
"""Images and free space are read every this many pings (they change slowly)."""
CLOSE_TIMEOUT_S = 15.0
ABANDON_WAIT_S = 1.0

T = TypeVar("T")


class HostDown(SandboxError):
    """The task's Docker host stopped answering: its task ends as an infrastructure error."""


def client_for(config: DockerHostConfig, context: ssl.SSLContext | None) -> aiodocker.Docker:
    url = normalize_docker_url(config.url)
    if context is not None:
        url = "https://" + url.split("://", 1)[1]
    return aiodocker.Docker(url=url, ssl_context=context)


def tls_problem(exc: BaseException) -> bool:
    """Whether a failed connection failed on the daemon's certificate."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ssl.SSLCertVerificationError, aiohttp.ClientConnectorCertificateError)):
            return True
        if isinstance(seen, (DockerError, aiohttp.ClientError)) and "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def lost(exc: BaseException) -> bool:
    """An error that says the daemon is unreachable, not that it refused the request."""
    if isinstance(exc, DockerError):
        return exc.status == 900  # aiodocker's "cannot connect"
    # Not any OSError: reading a task's local snapshot can fail too, and says nothing of the host.
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError))


class DockerHost:
    """One daemon of the pool, with what placement and the hosts view need to know."""

    def __init__(self, config: DockerHostConfig, docker: aiodocker.Docker) -> None:
        self.config, self.docker = config, docker
        self.url = display_url(config.url)
        self.capacity = config.max_containers
        self.up = True
        self.error = ""
        self.in_use = 0
        self.images: set[str] = set()
        self.free_bytes: int | None = None
        self.execs = 0
        self._rate_mark = (time.monotonic(), 0)
        self.exec_per_s = 0.0
        self.failures = 0
        self.down = asyncio.Event()
        """Set while the host is down: what in-flight operations race against."""
        self.reported: tuple[object, ...] = ()
        self.ticks_unreported = 0
        self.leftovers: set[str] = set()
        """Containers that could not be removed while it was down; removed when it is back."""

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.in_use >= self.capacity

    def load(self) -> float:
        return self.in_use / self.capacity if self.capacity else float(self.in_use)

    def status(self) -> HostStatus:
        now, count = time.monotonic(), self.execs
        then, before = self._rate_mark
        if now - then >= 1.0:
            self.exec_per_s, self._rate_mark = (count - before) / (now - then), (now, count)
        return HostStatus(run="", url=self.url, up=self.up, in_use=self.in_use, capacity=self.capacity,
                          exec_per_s=round(self.exec_per_s, 2), images=len(self.images),
                          free_bytes=self.free_bytes, error=self.error,
                          labels=tuple(sorted(self.config.labels.items())))


class HostPool:
    """The daemons a fleet places containers on. `start()` begins the health checks."""

    def __init__(self, hosts: list[DockerHost], *, interval: float = 2.0, timeout: float = 1.5,
                 explicit: bool = True) -> None:
        if not hosts:
            raise ValueError("a host pool needs a host")
        self.hosts = hosts
        self.interval, self.timeout = interval, timeout
        self.explicit = explicit
        """Hosts named in the config (`[[docker.hosts]]`): then placements and host status
        are reported; a lone default daemon keeps today's events."""
        self.sink: EventSink | None = None
        self._changed = asyncio.Condition()
        self._watchers: list[asyncio.Task[None]] = []
        self._abandoned: set[asyncio.Task[Any]] = set()

    @property
    def primary(self) -> DockerHost:
        return self.hosts[0]

    def start(self) -> None:
        if not self._watchers:
            self._watchers = [asyncio.create_task(self._watch(h), name=f"docker-host-{h.url}")
                              for h in self.hosts]

    # -- placement ---------------------------------------------------------------------

    def _choose(self, image: str) -> DockerHost | None:
        free = [h for h in self.hosts if h.up and not h.full]
        if not free:
            return None
        return min(free, key=lambda h: (image not in h.images, h.load(), h.in_use))

    async def acquire(self, image: str) -> DockerHost:
        """A slot on the best host for `image`, waiting while every healthy host is full;
        HostDown when no host answers at all."""
        async with self._changed:
            while True:
                if not any(h.up for h in self.hosts):
                    raise HostDown("no Docker host answers: " + "; ".join(h.status().line() for h in self.hosts))
                host = self._choose(image)
                if host is not None:
                    host.in_use += 1
                    break
                await self._changed.wait()
        self._emit(host)
        return host

    def release(self, host: DockerHost) -> None:
        host.in_use = max(0, host.in_use - 1)
        self._emit(host)
        self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()
        task = asyncio.ensure_future(notify())
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    # -- operations on a host's containers --------------------------------------------

    async def guarded(self, host: DockerHost, operation: Awaitable[T]) -> T:
        """`operation`, ended with HostDown as soon as its host is marked down (a SIGSTOPped
        daemon never answers) or when the daemon's connection breaks."""
        task = asyncio.ensure_future(operation)
        if not host.up:
            task.cancel()
            await asyncio.wait([task], timeout=ABANDON_WAIT_S)
            raise HostDown(f"Docker host {host.url} is down")
        down = asyncio.ensure_future(host.down.wait())
        try:
            await asyncio.wait([task, down], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            down.cancel()
            task.cancel()  # the operation's own cleanup (e.g. killing the exec) runs in it
            self._keep(task)
            await asyncio.wait([task], timeout=CLOSE_TIMEOUT_S)
            raise
        down.cancel()
        if not task.done():
            task.cancel()  # a stopped daemon would hold its cleanup: do not wait long for it
            self._keep(task)
            await asyncio.wait([task], timeout=ABANDON_WAIT_S)
            raise HostDown(f"Docker host {host.url} stopped answering ({host.error or 'no answer'})")
        try:
            return task.result()
        except HostDown:
            raise
        except BaseException as exc:
            if lost(exc) or (isinstance(exc, SandboxError) and exc.__cause__ is not None and lost(exc.__cause__)):
                self._suspect(host, _one_line(exc))
                raise HostDown(f"Docker host {host.url} stopped answering: {_one_line(exc)}") from exc
            raise

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning

    def _suspect(self, host: DockerHost, reason: str) -> None:
        """A refused or broken connection is as good as failed pings: down at once, so the
        next tasks go elsewhere; the next ping that answers brings it back."""
        host.failures = max(host.failures, FAILURES_TO_DOWN)
        self._mark_down(host, reason)

    def _mark_down(self, host: DockerHost, reason: str) -> None:
        if host.up:
            host.up, host.error = False, reason
            host.down.set()
            self._emit(host)
            self._notify()

    # -- health ----------------------------------------------------------------------------

    async def ping(self, host: DockerHost) -> str:
        """"" when the daemon answers `/_ping` within the timeout, else why not."""
        try:
            async with asyncio.timeout(self.timeout):
                async with host.docker._query("_ping", versioned_api=False) as response:
                    await response.read()
            return ""
        except TimeoutError:
            return f"no answer to /_ping within {self.timeout:g} s"
        except (DockerError, aiohttp.ClientError, OSError) as exc:
            return _one_line(exc)

    async def _watch(self, host: DockerHost) -> None:
        ticks = 0
        while True:
            problem = await self.ping(host)
            if problem:
                host.failures += 1
                if host.failures >= FAILURES_TO_DOWN:
                    self._mark_down(host, problem)
            else:
                host.failures = 0
                if not host.up:
                    host.up, host.error = True, ""
                    host.down.clear()
                    ticks = 0
                    await self._collect_leftovers(host)
                    self._notify()
                if ticks % REFRESH_EVERY == 0:
                    await self._refresh(host)
                ticks += 1
            self._emit(host, tick=True)
            await asyncio.sleep(self.interval if not problem or not host.up else self.interval / 4)

    async def _refresh(self, host: DockerHost) -> None:
        try:
            async with asyncio.timeout(max(self.timeout, 5.0)):
                images = await host.docker.images.list()
                host.free_bytes = await free_space(host.docker)
        except (TimeoutError, DockerError, aiohttp.ClientError, OSError):
            return
        host.images = {tag for image in images for tag in image.get("RepoTags") or ()}

    async def _collect_leftovers(self, host: DockerHost) -> None:
        names, host.leftovers = list(host.leftovers), set()
        for name in names:
            with contextlib.suppress(DockerError, aiohttp.ClientError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await host.docker.containers.container(name).delete(force=True, v=True)

    def _emit(self, host: DockerHost, tick: bool = False) -> None:
        """A HostStatus when something placement cares about changed; on a health tick
        only every REFRESH_EVERY ticks (exec/s alone changes all the time)."""
        if not self.explicit or self.sink is None:
            return
        status = host.status()
        shape = (status.up, status.in_use, status.images, status.error)
        if tick and shape == host.reported and host.ticks_unreported < REFRESH_EVERY:
            host.ticks_unreported += 1
            return
        host.reported, host.ticks_unreported = shape, 0
        self.sink(status)

    # -- the pool as a whole -----------------------------------------------------------

    async def sweep_leftovers(self, run_name: str, output_dir: str | os.PathLike) -> int:
        """`sweep_leftovers` on every host that answers."""
        counts = await asyncio.gather(*(sweep_leftovers(h.docker, run_name, output_dir)
                                        for h in self.hosts if h.up), return_exceptions=True)
        failed = [c for c in counts if isinstance(c, BaseException)]
        if failed and len(failed) == len(counts):
            raise failed[0]
        return sum(c for c in counts if isinstance(c, int))

    async def aclose(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        pending = list(self._abandoned)
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        for host in self.hosts:
            await host.docker.close()


class HostSandbox(Sandbox):
    """A task's container on one host of the pool: every operation ends with HostDown when
    the host goes down, and closing frees the host's slot."""

    kind = "docker"
    isolated = True

    def __init__(self, inner: DockerSandbox, host: DockerHost, pool: HostPool) -> None:
        self.inner, self.host_ref, self.pool = inner, host, pool
        self.host = host.url if pool.explicit else None
        self._released = False

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def image(self) -> str:
        return self.inner.image

    async def start(self) -> None:
        await self.pool.guarded(self.host_ref, self.inner.start())

    async def put_directory(self, src: Path, dest: str = WORKDIR) -> None:
        await self.pool.guarded(self.host_ref, self.inner.put_directory(src, dest))

    async def write_file(self, path: str, content: str) -> None:
        await self.pool.guarded(self.host_ref, self.inner.write_file(path, content))

    async def exec(self, command: str, *, timeout_s: float = 120.0, workdir: str | None = None,
                   max_output: int = DEFAULT_MAX_OUTPUT) -> ExecResult:
        self.host_ref.execs += 1
        return await self.pool.guarded(self.host_ref, self.inner.exec(
            command, timeout_s=timeout_s, workdir=workdir, max_output=max_output))

    async def close(self) -> None:
        if self._released:
            return
        self._released = True
        host = self.host_ref
        try:
            if host.up:
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await self.inner.close()
                except (TimeoutError, DockerError, aiohttp.ClientError, OSError):
                    host.leftovers.add(self.inner.name)
            else:
                self.inner._closed = True  # nothing answers to remove it now: when the host is back
                host.leftovers.add(self.inner.name)
        finally:
            self.pool.release(host)


async def open_pool(config: DockerConfig, connect: Callable[[], Awaitable[aiodocker.Docker | None]]) -> HostPool | None:
    """The pool `[docker]` describes: its `[[docker.hosts]]`, else the one daemon `connect`
    finds (None when none answers). SandboxError (one line) for a host that cannot be used."""
    if not config.hosts:
        docker = await connect()
        if docker is None:
            return None
        url = getattr(docker, "_connection_info", None) or config.url or "default"
        host = DockerHost(DockerHostConfig(url=url if "://" in url else "unix:///default"), docker)
        # The lone default daemon (often this machine's own, busy with the containers' work)
        # is given the patience connect_docker has: a slow ping must not end its tasks.
        return HostPool([host], interval=config.health_interval,
                        timeout=max(config.health_timeout, PING_TIMEOUT_S), explicit=False)
    hosts: list[DockerHost] = []
    try:
        for i, entry in enumerate(config.hosts):
            hosts.append(await connect_host(entry, f"docker.hosts[{i}]"))
    except BaseException:
        for host in hosts:
            await host.docker.close()
        raise
    if not any(h.up for h in hosts):
        for host in hosts:
            await host.docker.close()
        raise SandboxError("no Docker host of [[docker.hosts]] answers: " + "; ".join(h.error for h in hosts))
    return HostPool(hosts, interval=config.health_interval, timeout=config.health_timeout)


async def connect_host(entry: DockerHostConfig, where: str) -> DockerHost:
    """A client for one configured host. SandboxError (one line) when its TLS material is
    unreadable or its certificate does not verify; a host that does not answer starts down
    (the health checks bring it up when it does)."""
    try:
        context = await asyncio.to_thread(tls_context, entry)
    except (OSError, ssl.SSLError) as exc:
        raise SandboxError(f"{where} ({display_url(entry.url)}): cannot read its TLS files: {_one_line(exc)}; "
                           "fix ca/cert/key") from None
    docker = client_for(entry, context)
    host = DockerHost(entry, docker)
    try:
        async with asyncio.timeout(10):
            await docker.version()
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError) or tls_problem(exc):
            await docker.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise SandboxError(host_problem(entry, where, exc)) from None
        host.up, host.error = False, host_problem(entry, where, exc)
        host.down.set()
    return host


def host_problem(entry: DockerHostConfig, where: str, exc: BaseException) -> str:
    url = display_url(entry.url)
    if tls_problem(exc):
        return (f"{where} ({url}): the daemon's TLS certificate does not verify against ca {entry.ca}; "
                "fix [[docker.hosts]] ca (the CA that signed the daemon's certificate)")
    if isinstance(exc, TimeoutError):
        return f"{where} ({url}): the daemon does not answer within 10 s; is it running?"
    reason = exc.message if isinstance(exc, DockerError) else _one_line(exc)
    return f"{where} ({url}): no Docker daemon answers ({_one_line(reason)}); fix [[docker.hosts]] url or start it"


def labels_for(host: DockerHost) -> Mapping[str, str]:
    return {HOST_LABEL: host.url}


