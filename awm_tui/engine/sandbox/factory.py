"""Which kind of sandbox a run gets, decided once per run; which image each task needs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

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
from awm_tui.engine.sandbox.local import LocalSandbox
from awm_tui.engine.sandbox.owner import Owner
from awm_tui.engine.tasks import Task, swebench_image_name

SandboxKind = Literal["auto", "docker", "local"]
CONDA_ENV = "testbed"
"""The conda environment SWE-bench's images install the repository into."""


class SandboxFactory:
    """Makes one (unstarted) sandbox per task; owns the Docker client it was given."""

    def __init__(
        self,
        kind: Literal["docker", "local"],
        *,
        docker: aiodocker.Docker | None = None,
        limits: DockerConfig = DEFAULT_LIMITS,
        reason: str = "",
    ) -> None:
        if kind == "docker" and docker is None:
            raise ValueError("a docker factory needs a Docker client")
        self.kind = kind
        self.docker = docker
        self.limits = limits
        """The `[docker]` section: daemon, default image, limits, SWE-bench image names."""
        self.min_free = parse_memory(limits.min_free_space) or 0
        self.reason = reason
        """Why this kind was chosen when it was not asked for (auto fell back)."""
        self._pulls: dict[str, asyncio.Task[None]] = {}
        """One pull per image however many runs want it at once."""

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
            return f"docker ({self.image})"
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

    async def has_image(self, image: str) -> bool:
        if self.docker is None:
            return True
        try:
            return await image_exists(self.docker, image)
        except aiodocker.DockerError as exc:
            raise SandboxError(f"cannot inspect image {image}: {exc.message}") from exc

    async def pull(self, image: str, *, run: str, instance_id: str,
                   progress: Callable[[ImagePull], None]) -> None:
        """Pull a missing image (free space checked first), progress as ImagePull events;
        ImagePullError (one line) when it cannot be had."""
        assert self.docker is not None
        free = await free_space(self.docker)

        def event(**fields: Any) -> ImagePull:
            return ImagePull(run=run, instance_id=instance_id, image=image, free_bytes=free, **fields)

        if free is not None and free < self.min_free:
            message = (f"cannot pull {image}: only {free / 1e9:.1f} GB free for Docker images "
                       f"(min_free_space = {self.limits.min_free_space!r}); free some space "
                       "(docker image prune) or lower [docker] min_free_space")
            progress(event(done=True, error=message))
            raise ImagePullError(message)
        progress(event())
        pulling = self._pulls.get(image)
        if pulling is None or pulling.done():
            pulling = self._pulls[image] = asyncio.ensure_future(
                pull_image(self.docker, image, lambda p: progress(event(**p))))
        try:
            await asyncio.shield(pulling)
        except ImagePullError as exc:
            progress(event(done=True, error=str(exc)))
            raise
        progress(event(done=True))

    async def release_image(self, image: str) -> bool:
        """`keep_images = "none"`: remove the task's image; True when one was removed."""
        if self.limits.keep_images != "none" or self.docker is None or image == self.image:
            return False  # the run's default image serves every other task: it stays
        return await remove_image(self.docker, image)

    # -- sandboxes ---------------------------------------------------------------------

    async def create(
        self, *, run_name: str, instance_id: str, image: str | None = None, conda_env: str | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> Sandbox:
        """A sandbox for one task; `image` (the task's own) overrides the run's.
        `output_dir` names the container's owner (see `sandbox.owner`)."""
        if self.kind == "local":
            return LocalSandbox(run_name=run_name, instance_id=instance_id)
        assert self.docker is not None
        return DockerSandbox(
            self.docker,
            limits=self.limits,
            image=image,
            run_name=run_name,
            instance_id=instance_id,
            conda_env=conda_env,
            owner=Owner.this_process(output_dir),
        )

    async def aclose(self) -> None:
        pulls, self._pulls = list(self._pulls.values()), {}
        for pulling in pulls:
            pulling.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        docker, self.docker = self.docker, None
        if docker is not None:
            await docker.close()

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

    `limits` is the `[docker]` section: the daemon's URL, the image and the container limits.
    Raises SandboxError when kind is "docker" and that is impossible.
    """
    if kind == "local":
        return SandboxFactory("local", limits=limits)
    docker = await connect_docker(limits.url)
    image = limits.image
    if docker is None:
        reason = f"no Docker daemon at {limits.url or default_docker_url()}"
    else:
        try:
            has_image = await image_exists(docker, image)
        except BaseException:
            await docker.close()
            raise
        if has_image:
            return SandboxFactory("docker", docker=docker, limits=limits)
        await docker.close()
        reason = f"image {image} is missing (run scripts/sandbox-image)"
    if kind == "docker":
        raise SandboxError(f"cannot use Docker: {reason}")
    return SandboxFactory("local", limits=limits, reason=reason)
