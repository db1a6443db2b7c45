"""Which kind of sandbox a run gets, decided once per run; which image each task needs; which
Docker host each task's container goes to (`hosts.HostPool`).

`SandboxBackend` is what the run loop asks of a backend; `SandboxFactory` is the Docker/local
one. Another backend (Kubernetes, Modal) implements the same methods and the loop is unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Protocol

import aiodocker

from awm_tui.config.models import DockerConfig, parse_memory
from awm_tui.engine.events import ImagePull
from awm_tui.engine.outcomes import ErrorKind, InfraError
from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.engine.sandbox.docker import (
    DEFAULT_LIMITS,
    DockerSandbox,
    ImagePullError,
    connect_docker,
    default_docker_url,
    free_space,
    image_exists,
    pull_image,
    remove_image,
)
from awm_tui.engine.sandbox.hosts import DockerHost, HostPool, HostSandbox, labels_for, open_pool
from awm_tui.engine.sandbox.local import LocalSandbox
from awm_tui.engine.sandbox.owner import Owner
from awm_tui.engine.tasks import Task, swebench_image_name

SandboxKind = Literal["auto", "docker", "local"]
CONDA_ENV = "testbed"
"""The conda environment SWE-bench's images install the repository into."""


class SandboxBackend(Protocol):
    """What `AWMRun` asks of where sandboxes come from."""

    kind: str
    isolated: bool
    description: str

    def image_for(self, task: Task) -> str | None: ...

    def env_for(self, task: Task) -> str | None: ...

    async def create(self, *, run_name: str, instance_id: str, image: str | None = None,
                     conda_env: str | None = None, output_dir: str | os.PathLike | None = None) -> Sandbox:
        """An unstarted sandbox for one task, placed where it should run (may wait for room)."""

    async def aclose(self) -> None: ...


class SandboxFactory:
    """Makes one (unstarted) sandbox per task; owns the Docker client it was given."""

    def __init__(
        self,
        kind: Literal["docker", "local"],
        *,
        pool: HostPool | None = None,
        limits: DockerConfig = DEFAULT_LIMITS,
        reason: str = "",
    ) -> None:
        if kind == "docker" and pool is None:
            raise ValueError("a docker factory needs its Docker host(s)")
        self.kind = kind
        self.pool = pool
        self.limits = limits
        """The `[docker]` section: daemon, default image, limits, SWE-bench image names."""
        self.min_free = parse_memory(limits.min_free_space) or 0
        self.reason = reason
        """Why this kind was chosen when it was not asked for (auto fell back)."""
        self._pulls: dict[tuple[str, str], asyncio.Task[None]] = {}
        """One pull per (host, image) however many runs want it at once."""

    @property
    def docker(self) -> aiodocker.Docker | None:
        """The first host's client (the only one without `[[docker.hosts]]`)."""
        return self.pool.primary.docker if self.pool is not None else None

    @property
    def image(self) -> str:
        return self.limits.image

    @property
    def isolated(self) -> bool:
        return self.kind == "docker"

    @property
    def description(self) -> str:
        """One line for the UI, e.g. 'docker (awm-sandbox:bookworm)'."""
        if self.kind == "docker":
            hosts = len(self.pool.hosts) if self.pool is not None and self.pool.explicit else 0
            return f"docker ({self.image})" + (f" on {hosts} hosts" if hosts > 1 else "")
        return "local (not isolated)" + (f": {self.reason}" if self.reason else "")

    # -- the image of each task ---------------------------------------------------------

    def image_for(self, task: Task) -> str | None:
        """The task's own image (its `image`, or SWE-bench's name derived for a classic row);
        None when the run's default image serves. InfraError when this sandbox cannot run it."""
        image = task.image
        if image is None and task.kind == "classic":
            c = self.limits
            image = swebench_image_name(task.instance_id, namespace=c.namespace, arch=c.arch, tag=c.tag)
        if image is not None and self.kind == "local":
            if task.kind == "extended":
                return None  # our own rows: the local copy of its snapshot serves
            raise InfraError(f"{task.instance_id} is a SWE-bench row: its repository lives in the image "
                             f"{image}; run it with sandbox = \"docker\"", ErrorKind.SETUP)
        return image

    @staticmethod
    def env_for(task: Task) -> str | None:
        """The conda environment commands run in: SWE-bench's `testbed` whenever the image holds
        the repository (activated only if the image has conda)."""
        return CONDA_ENV if task.repo_snapshot is None else None

    def _host(self, sandbox: Sandbox | None) -> DockerHost | None:
        """The host a sandbox was placed on (the first host when not told)."""
        if isinstance(sandbox, HostSandbox):
            return sandbox.host_ref
        return self.pool.primary if self.pool is not None else None

    async def has_image(self, image: str, sandbox: Sandbox | None = None) -> bool:
        host = self._host(sandbox)
        if host is None:
            return True
        try:
            present = await image_exists(host.docker, image)
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot inspect image {image}: {exc.message}") from exc
        (host.images.add if present else host.images.discard)(image)
        return present

    async def pull(self, image: str, *, run: str, instance_id: str,
                   progress: Callable[[ImagePull], None], sandbox: Sandbox | None = None) -> None:
        """Pull a missing image onto the sandbox's host (free space checked first), progress as
        ImagePull events; ImagePullError (one line) when it cannot be had."""
        host = self._host(sandbox)
        assert host is not None
        free = await free_space(host.docker)

        def event(**fields: Any) -> ImagePull:
            return ImagePull(run=run, instance_id=instance_id, image=image, free_bytes=free, **fields)

        if free is not None and free < self.min_free:
            message = (f"cannot pull {image}: only {free / 1e9:.1f} GB free for Docker images "
                       f"(min_free_space = {self.limits.min_free_space!r}); free some space "
                       "(docker image prune) or lower [docker] min_free_space")
            progress(event(done=True, error=message))
            raise ImagePullError(message)
        progress(event())
        key = (host.url, image)
        pulling = self._pulls.get(key)
        if pulling is None or pulling.done():
            pulling = self._pulls[key] = asyncio.ensure_future(
                pull_image(host.docker, image, lambda p: progress(event(**p))))
        try:
            await asyncio.shield(pulling)
        except ImagePullError as exc:
            progress(event(done=True, error=str(exc)))
            raise
        host.images.add(image)
        progress(event(done=True))

    async def release_image(self, image: str, sandbox: Sandbox | None = None) -> bool:
        """`keep_images = "none"`: remove the task's image; True when one was removed."""
        host = self._host(sandbox)
        if self.limits.keep_images != "none" or host is None or image == self.image:
            return False  # the run's default image serves every other task: it stays
        host.images.discard(image)
        return await remove_image(host.docker, image)

    async def sweep_leftovers(self, run_name: str, output_dir: str | os.PathLike) -> int:
        """Containers killed processes left, on every host (see `docker.sweep_leftovers`)."""
        return 0 if self.pool is None else await self.pool.sweep_leftovers(run_name, output_dir)

    # -- sandboxes ---------------------------------------------------------------------

    async def create(
        self, *, run_name: str, instance_id: str, image: str | None = None, conda_env: str | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> Sandbox:
        """A sandbox for one task; `image` (the task's own) overrides the run's.
        `output_dir` names the container's owner (see `sandbox.owner`)."""
        if self.kind == "local":
            return LocalSandbox(run_name=run_name, instance_id=instance_id)
        assert self.pool is not None
        host = await self.pool.acquire(image or self.image)
        inner = DockerSandbox(
            host.docker,
            limits=self.limits,
            image=image,
            run_name=run_name,
            instance_id=instance_id,
            conda_env=conda_env,
            owner=Owner.this_process(output_dir),
            labels=labels_for(host),
        )
        return HostSandbox(inner, host, self.pool)

    async def aclose(self) -> None:
        pulls, self._pulls = list(self._pulls.values()), {}
        for pulling in pulls:
            pulling.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.aclose()

    async def __aenter__(self) -> "SandboxFactory":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def open_factory(kind: SandboxKind = "auto", limits: DockerConfig = DEFAULT_LIMITS) -> SandboxFactory:
    """Docker when asked (or, for auto, when a daemon answers and has the image), else local.

    `limits` is the `[docker]` section: the daemon's URL (or its `[[docker.hosts]]`), the
    image and the container limits. Raises SandboxError when kind is "docker" and that is
    impossible, and whenever a configured host cannot be used (auto never hides those).
    """
    if kind == "local":
        return SandboxFactory("local", limits=limits)
    pool = await open_pool(limits, lambda: connect_docker(limits.url))
    image = limits.image
    if pool is None:
        reason = f"no Docker daemon at {limits.url or default_docker_url()}"
    else:
        try:
            missing = [h for h in pool.hosts if h.up and not await image_exists(h.docker, image)]
        except BaseException:
            await pool.aclose()
            raise
        if not missing:
            pool.start()
            return SandboxFactory("docker", pool=pool, limits=limits)
        await pool.aclose()
        if pool.explicit:
            raise SandboxError(f"image {image} is missing on {', '.join(h.url for h in missing)}; load it there "
                               f"(docker save {image} | docker -H URL load)")
        reason = f"image {image} is missing (run scripts/sandbox-image)"
    if kind == "docker":
        raise SandboxError(f"cannot use Docker: {reason}")
    return SandboxFactory("local", limits=limits, reason=reason)
