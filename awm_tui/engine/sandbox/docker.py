"""A sandbox in a Docker container, driven through aiodocker on the shared event loop."""

from __future__ import annotations

import asyncio
import io
import os
import posixpath
import secrets
import shlex
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError

from awm_tui.config.models import DockerConfig
from awm_tui.engine import watchdog
from awm_tui.engine.outcomes import ErrorKind
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
    BoundedOutput,
    is_timeout,
    run_shielded,
    slug,
)
from awm_tui.engine.sandbox.owner import Owner

DEFAULT_LIMITS = DockerConfig()
"""`[docker]`'s defaults: image and container limits are written once, in the config model."""
DEFAULT_IMAGE = DEFAULT_LIMITS.image
PRIVATE_SOCKET = "/tmp/awm-docker/docker.sock"
"""The daemon scripts/setup starts when the machine has none."""
SYSTEM_SOCKET = "/var/run/docker.sock"
LABEL = "awm-tui"
RUN_LABEL = "awm-tui.run"
INSTANCE_LABEL = "awm-tui.instance"
PING_TIMEOUT_S = 5.0

# wrap_with_timeout's argv runs in the background of this small shell, which
# records its process group (`timeout` leads its own) so that what a timed-out
# or cancelled command leaves behind (e.g. a child ignoring SIGTERM) is killed.
# stderr joins stdout in one pipe here: Docker carries the two as separate
# streams, which would let "echo a; echo b >&2" arrive in either order.
_GUARD = (
    'f=/tmp/.awm-exec/$1; shift; mkdir -p /tmp/.awm-exec; "$@" 2>&1 & pid=$!; '
    'echo $pid > "$f"; wait $pid; rc=$?; rm -f "$f"; '
    'case $rc in 124|137) kill -KILL -- -$pid 2>/dev/null;; esac; exit $rc'
)
_KILL_GUARDED = (
    'f=/tmp/.awm-exec/$1; [ -s "$f" ] && kill -KILL -- -"$(cat "$f")" 2>/dev/null; rm -f "$f"'
)

CONDA_ACTIVATE = "/opt/miniconda3/bin/activate"
"""Where SWE-bench's images keep conda; their eval scripts `source` it, then `conda activate testbed`."""
_ACTIVATE = (
    f"if [ -f {CONDA_ACTIVATE} ]; then . {CONDA_ACTIVATE} && conda activate {{env}} 2>&1 >/dev/null "
    "|| exit 3; env -0; fi"
)
_NOT_INHERITED = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


class DockerSandbox(Sandbox):
    """One container per task; the task's repository lives at /testbed."""

    kind = "docker"
    isolated = True

    def __init__(
        self,
        docker: aiodocker.Docker,
        *,
        limits: DockerConfig = DEFAULT_LIMITS,
        image: str | None = None,
        run_name: str = "run",
        instance_id: str = "task",
        owner: Owner | None = None,
        conda_env: str | None = None,
    ) -> None:
        self.docker = docker  # shared; never closed here
        self.owner = owner or Owner.this_process(None)
        """Recorded in the labels: the sweep of another process leaves live owners' containers alone."""
        self.image = image or limits.image
        self.conda_env = conda_env
        """Activated for every command when the image has conda (SWE-bench's `testbed`)."""
        self._env: list[str] | None = None
        self.run_name = run_name
        self.instance_id = instance_id
        self.memory = limits.memory_bytes
        self.cpus = limits.cpus
        self.pids_limit = limits.pids_limit
        self.network = limits.network
        self.name = (
            f"awm-{slug(run_name)}-{slug(instance_id)}-{secrets.token_hex(3)}"
        )
        self._container: DockerContainer | None = None
        self._attached = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    @classmethod
    def attach(cls, docker: aiodocker.Docker, container_id: str,
               conda_env: str | None = None) -> "DockerSandbox":
        """An existing container (e.g. the agent's, for evaluation); close() keeps it."""
        sandbox = cls(docker, conda_env=conda_env)
        sandbox.name = container_id
        sandbox._container = docker.containers.container(container_id)
        sandbox._attached = True
        return sandbox

    @property
    def id(self) -> str:
        return self._require().id

    def _require(self) -> DockerContainer:
        if self._container is None:
            raise SandboxError("container not started")
        return self._container

    def _config(self) -> dict[str, Any]:
        host: dict[str, Any] = {
            "NetworkMode": self.network,
            "PidsLimit": self.pids_limit,
            # tini as PID 1 reaps what `timeout` kills, so `ps` shows no zombies.
            "Init": True,
        }
        if self.memory:
            host["Memory"] = self.memory
            host["MemorySwap"] = self.memory  # no swap beyond the limit
        if self.cpus:
            host["NanoCpus"] = int(self.cpus * 1e9)
        return {
            "Image": self.image,
            "Cmd": ["sleep", "infinity"],
            "WorkingDir": WORKDIR,
            "Labels": {
                LABEL: "1",
                RUN_LABEL: self.run_name,
                INSTANCE_LABEL: self.instance_id,
                **self.owner.labels(),
            },
            "NetworkDisabled": self.network == "none",
            "HostConfig": host,
        }

    async def start(self) -> None:
        async with self._start_lock:
            if self._closed:
                raise SandboxError(f"container {self.name} already closed")
            if self._attached:
                await self._check_attached()
                await self._activate()
                return
            if self._container is not None:
                return
            # Shielded so a cancel cannot lose the id of a container the daemon
            # did create: the except waits for it, then removes it.
            create = asyncio.ensure_future(self._create())
            try:
                await asyncio.shield(create)
                await self._require().start()
                await self._activate()
            except BaseException as exc:
                await run_shielded(self._discard(create))
                if isinstance(exc, DockerError):
                    raise SandboxError(
                        f"cannot start container from {self.image}: {exc.message}"
                    ) from exc
                raise

    async def _activate(self) -> None:
        """Record the environment `conda activate` gives, so every exec runs in it, as
        SWE-bench's images expect (one exec now instead of a `source` per command)."""
        if self.conda_env is None or self._env is not None:
            return
        out = await self.exec(_ACTIVATE.format(env=shlex.quote(self.conda_env)), timeout_s=60,
                              max_output=1024 * 1024)
        if out.exit_code != 0:
            raise SandboxError(f"the image {self.image} has conda but its environment {self.conda_env!r} "
                               f"does not activate: {out.output.strip()[-200:]}")
        pairs = [item for item in out.output.split("\0") if "=" in item]
        self._env = [p for p in pairs if p.split("=", 1)[0].strip() not in _NOT_INHERITED]

    async def _create(self) -> None:
        self._container = await self.docker.containers.create(
            self._config(), name=self.name
        )

    async def _discard(self, create: asyncio.Future[None]) -> None:
        await asyncio.wait([create])
        await self.close()

    async def _check_attached(self) -> None:
        try:
            info = await self._require().show()
        except DockerError as exc:
            raise SandboxError(f"container {self.name}: {exc.message}") from exc
        if not info.get("State", {}).get("Running"):
            raise SandboxError(f"container {self.name} is not running")

    async def put_directory(self, src: Path, dest: str = WORKDIR) -> None:
        data = await asyncio.to_thread(_tar_directory, Path(src))
        await self._put_archive(dest, data)

    async def write_file(self, path: str, content: str) -> None:
        # put_archive, not a shell argument: large patches exceed ARG_MAX.
        path = posixpath.join(WORKDIR, path)
        data = await asyncio.to_thread(
            _tar_file, posixpath.basename(path), content.encode("utf-8")
        )
        await self._put_archive(posixpath.dirname(path), data)

    async def _put_archive(self, dest: str, data: bytes) -> None:
        made = await self.exec(f"mkdir -p -- {shlex.quote(dest)}", timeout_s=30)
        if made.exit_code != 0:
            raise SandboxError(f"cannot create {dest}: {made.output.strip()[:200]}")
        try:
            await self._require().put_archive(dest, data)
        except DockerError as exc:
            raise SandboxError(f"cannot copy into {dest}: {exc.message}") from exc

    async def exec(
        self,
        command: str,
        *,
        timeout_s: float = 120.0,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        container = self._require()
        token = secrets.token_hex(6)
        started = time.monotonic()
        try:
            execution = await container.exec(
                ["bash", "-c", _GUARD, "awm-exec", token,
                 *wrap_with_timeout(command, timeout_s, KILL_AFTER_S)],
                stdout=True,
                stderr=True,
                workdir=workdir or WORKDIR,
                environment=self._env,
            )
            output = BoundedOutput(max_output)
            client_timed_out = False
            try:
                # The limit is enforced inside the container; this only guards
                # against a daemon that stops answering.
                async with asyncio.timeout(timeout_s + KILL_AFTER_S + CLIENT_GRACE_S):
                    with watchdog.waiting_on(watchdog.command_label(command)):
                        async with execution.start(detach=False) as stream:
                            while (message := await stream.read_out()) is not None:
                                output.feed(message.data)
                                watchdog.touch()
            except TimeoutError:
                client_timed_out = True
            except asyncio.CancelledError:
                # Cancelling the exec does not stop it in the container.
                await run_shielded(self._kill_guarded(container, token))
                raise
            if client_timed_out:
                await self._kill_guarded(container, token)
            info = await execution.inspect()
        except DockerError as exc:
            raise SandboxError(f"exec in {self.name} failed: {exc.message}") from exc
        duration = time.monotonic() - started
        exit_code = info.get("ExitCode")
        if exit_code is None or info.get("Running"):
            exit_code, client_timed_out = 137, True
        return ExecResult(
            exit_code=exit_code,
            output=output.text(),
            truncated=output.truncated,
            timed_out=client_timed_out or is_timeout(exit_code, duration, timeout_s),
            duration_s=duration,
        )

    async def _kill_guarded(self, container: DockerContainer, token: str) -> None:
        """Kill the process group of an exec that the client gave up on."""
        try:
            async with asyncio.timeout(10):
                execution = await container.exec(["bash", "-c", _KILL_GUARDED, "awm-kill", token])
                await execution.start(detach=True)
        except (DockerError, TimeoutError, OSError, aiohttp.ClientError):
            pass  # the container may be gone already; close() removes the rest

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None or self._attached:
            return
        await run_shielded(_remove(container))


async def _remove(container: DockerContainer) -> bool:
    """Force-remove; False when it was already gone."""
    try:
        await container.delete(force=True, v=True)
    except DockerError as exc:
        # 404: gone already; 409: a removal is already in progress.
        if exc.status in (404, 409):
            return False
        raise
    return True


async def sweep(docker: aiodocker.Docker, run_name: str | None = None) -> int:
    """Force-remove the containers of one run name (or all of awm-tui's), whoever owns
    them; returns how many. For tests and tools: a starting run uses `sweep_leftovers`."""
    label = f"{RUN_LABEL}={run_name}" if run_name is not None else f"{LABEL}=1"
    found = await docker.containers.list(all=True, filters={"label": [label]})
    return await _remove_all(found)


async def sweep_leftovers(docker: aiodocker.Docker, run_name: str, output_dir: str | os.PathLike) -> int:
    """Remove what killed processes left: the containers of `output_dir` on this host
    (the caller holds its lock, so no live run uses them), of a process that is gone,
    and (made before owners were labelled) of `run_name`. Never a live process's."""
    mine = Owner.this_process(output_dir)
    found = await docker.containers.list(all=True, filters={"label": [f"{LABEL}=1"]})

    def left_behind() -> list[DockerContainer]:  # reads /proc: in a thread
        chosen = []
        for container in found:
            labels = container["Labels"] if "Labels" in container else {}
            owner = Owner.from_labels(labels)
            if owner is None:
                if (labels or {}).get(RUN_LABEL) == run_name:
                    chosen.append(container)
            elif (owner.host == mine.host and owner.output_dir == mine.output_dir) or owner.gone():
                chosen.append(container)
        return chosen

    return await _remove_all(await asyncio.to_thread(left_behind))


async def _remove_all(containers: list[DockerContainer]) -> int:
    removed = await asyncio.gather(*(_remove(c) for c in containers), return_exceptions=True)
    return sum(1 for r in removed if r is True)


def docker_url_candidates() -> list[str]:
    """Where a daemon may answer, in the order tried: $DOCKER_HOST, system, private."""
    candidates = []
    if env := os.environ.get("DOCKER_HOST"):
        candidates.append(env)
    for path in (SYSTEM_SOCKET, PRIVATE_SOCKET):
        if os.path.exists(path):
            candidates.append(f"unix://{path}")
    return candidates


def default_docker_url() -> str:
    """$DOCKER_HOST, else the system socket if present, else scripts/setup's private one."""
    return (docker_url_candidates() or [f"unix://{PRIVATE_SOCKET}"])[0]


def normalize_docker_url(url: str) -> str:
    """Accept `unix:///path`, a bare socket path, `tcp://host:port`."""
    return f"unix://{url}" if url.startswith("/") else url


async def connect_docker(url: str | None = None) -> aiodocker.Docker | None:
    """A client for the first daemon that answers (only `url` when given), else None."""
    candidates = [url] if url else docker_url_candidates()
    for candidate in candidates:
        try:
            docker = aiodocker.Docker(url=normalize_docker_url(candidate))
        except ValueError:
            continue
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await docker.version()
            return docker
        except (TimeoutError, OSError, aiohttp.ClientError, DockerError):
            await docker.close()
        except BaseException:
            await docker.close()
            raise
    return None


async def image_exists(docker: aiodocker.Docker, image: str) -> bool:
    try:
        await docker.images.inspect(image)
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


class ImagePullError(SandboxError):
    """A task's image is absent and could not be pulled: an infrastructure error."""

    kind = ErrorKind.IMAGE


PullProgress = Callable[[dict[str, Any]], None]
"""Called with {layers_done, layers_total, bytes_done, bytes_total} as a pull goes on."""

_LAYER_DONE = frozenset({"Pull complete", "Already exists"})
PROGRESS_EVERY_S = 0.5


async def free_space(docker: aiodocker.Docker) -> int | None:
    """Free bytes where the daemon keeps images, when that folder is visible from here."""
    try:
        info = await docker.system.info()
    except (DockerError, OSError, aiohttp.ClientError):
        return None
    root = info.get("DockerRootDir")
    if not root:
        return None
    try:
        return (await asyncio.to_thread(shutil.disk_usage, root)).free
    except OSError:
        return None  # a remote daemon, or a root we may not read


async def pull_image(docker: aiodocker.Docker, image: str, progress: PullProgress) -> None:
    """`docker pull` through aiodocker, reporting layers and bytes; ImagePullError on failure."""
    layers: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    last = 0.0

    def report(final: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if final or now - last >= PROGRESS_EVERY_S:
            last = now
            progress({"layers_done": sum(1 for s in layers.values() if s in _LAYER_DONE),
                      "layers_total": len(layers), "bytes_done": sum(c for c, _ in sizes.values()),
                      "bytes_total": sum(t for _, t in sizes.values())})

    try:
        async for message in docker.images.pull(image, stream=True, timeout=None):
            if message.get("error"):
                raise ImagePullError(f"cannot pull {image}: {_one_line(message['error'])}")
            layer, status = message.get("id"), str(message.get("status", ""))
            if layer and ":" not in layer and status and not status.startswith("Pulling from"):
                changed = layers.get(layer) != status and (status in _LAYER_DONE or layer not in layers)
                layers[layer] = status
                detail = message.get("progressDetail") or {}
                if status == "Downloading" and detail.get("total"):
                    sizes[layer] = (int(detail.get("current", 0)), int(detail["total"]))
                elif status in _LAYER_DONE and layer in sizes:
                    sizes[layer] = (sizes[layer][1], sizes[layer][1])
                report(final=changed)
    except DockerError as exc:
        raise ImagePullError(f"cannot pull {image}: {_one_line(exc.message)}") from exc
    except (OSError, aiohttp.ClientError) as exc:
        raise ImagePullError(f"cannot pull {image}: {exc or type(exc).__name__}") from exc
    report(final=True)
    if not await image_exists(docker, image):
        raise ImagePullError(f"cannot pull {image}: the daemon reported no error but has no such image")


async def remove_image(docker: aiodocker.Docker, image: str) -> bool:
    """Untag/remove an image; False when it was already gone. DockerError 409 while in use."""
    try:
        await docker.images.delete(image)
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise SandboxError(f"cannot remove image {image}: {_one_line(exc.message)}") from exc
    return True


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def _tar_directory(src: Path) -> bytes:
    if not src.is_dir():
        raise SandboxError(f"{src} is not a directory")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for child in sorted(src.iterdir()):
            tar.add(child, arcname=child.name, filter=_as_root)
    return buffer.getvalue()


def _tar_file(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Files belong to root in the container, whoever owns them here."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
