"""Which kind of sandbox a run gets, decided once per run."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Literal

import aiodocker

from awm_tui.engine.sandbox.base import Sandbox, SandboxError
from awm_tui.engine.sandbox.docker import (
    DEFAULT_IMAGE,
    DockerSandbox,
    connect_docker,
    default_docker_url,
    image_exists,
    parse_memory,
)
from awm_tui.engine.sandbox.local import LocalSandbox
from awm_tui.engine.sandbox.owner import Owner

SandboxKind = Literal["auto", "docker", "local"]


class SandboxFactory:
    """Makes one (unstarted) sandbox per task; owns the Docker client it was given."""

    def __init__(
        self,
        kind: Literal["docker", "local"],
        *,
        docker: aiodocker.Docker | None = None,
        image: str = DEFAULT_IMAGE,
        memory: str | int | None = "2g",
        cpus: float | None = None,
        pids_limit: int = 512,
        network: str = "none",
        reason: str = "",
    ) -> None:
        if kind == "docker" and docker is None:
            raise ValueError("a docker factory needs a Docker client")
        self.kind = kind
        self.docker = docker
        self.image = image
        self.memory = parse_memory(memory)  # fail on a bad limit now, not per task
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.network = network
        self.reason = reason
        """Why this kind was chosen when it was not asked for (auto fell back)."""

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
        self, *, run_name: str, instance_id: str, image: str | None = None,
        output_dir: str | os.PathLike | None = None,
    ) -> Sandbox:
        """A sandbox for one task; `image` (the task's own) overrides the run's.
        `output_dir` names the container's owner (see `sandbox.owner`)."""
        if self.kind == "local":
            return LocalSandbox(run_name=run_name, instance_id=instance_id)
        assert self.docker is not None
        return DockerSandbox(
            self.docker,
            image=image or self.image,
            run_name=run_name,
            instance_id=instance_id,
            memory=self.memory,
            cpus=self.cpus,
            pids_limit=self.pids_limit,
            network=self.network,
            owner=Owner.this_process(output_dir),
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


async def open_factory(
    kind: SandboxKind = "auto",
    docker_url: str | None = None,
    image: str = DEFAULT_IMAGE,
    memory: str | int | None = "2g",
    cpus: float | None = None,
    pids_limit: int = 512,
    network: str = "none",
) -> SandboxFactory:
    """Docker when asked (or, for auto, when a daemon answers and has the image), else local.

    Raises SandboxError when kind is "docker" and that is impossible.
    """
    parse_memory(memory)  # ValueError now, before a Docker client exists to leak
    limits = dict(memory=memory, cpus=cpus, pids_limit=pids_limit, network=network)
    if kind == "local":
        return SandboxFactory("local", image=image, **limits)  # type: ignore[arg-type]
    docker = await connect_docker(docker_url)
    if docker is None:
        reason = f"no Docker daemon at {docker_url or default_docker_url()}"
    else:
        try:
            has_image = await image_exists(docker, image)
        except BaseException:
            await docker.close()
            raise
        if has_image:
            return SandboxFactory("docker", docker=docker, image=image, **limits)  # type: ignore[arg-type]
        await docker.close()
        reason = f"image {image} is missing (run scripts/sandbox-image)"
    if kind == "docker":
        raise SandboxError(f"cannot use Docker: {reason}")
    return SandboxFactory("local", image=image, reason=reason, **limits)  # type: ignore[arg-type]
