"""Which kind of sandbox a run gets, decided once per run."""

from __future__ import annotations

from types import TracebackType
from typing import Literal

import aiodocker

from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.config.models import DockerConfig
from awm_tui.engine.sandbox.docker import (
    DEFAULT_LIMITS,
    DockerSandbox,
    connect_docker,
    default_docker_url,
    image_exists,
)
from awm_tui.engine.sandbox.local import LocalSandbox

SandboxKind = Literal["auto", "docker", "local"]


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
        self.reason = reason
        """Why this kind was chosen when it was not asked for (auto fell back)."""

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

    async def create(
        self, *, run_name: str, instance_id: str, image: str | None = None
    ) -> Sandbox:
        """A sandbox for one task; `image` (the task's own) overrides the run's."""
        if self.kind == "local":
            return LocalSandbox(run_name=run_name, instance_id=instance_id)
        assert self.docker is not None
        return DockerSandbox(
            self.docker,
            limits=self.limits,
            image=image,
            run_name=run_name,
            instance_id=instance_id,
        )

    async def aclose(self) -> None:
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
