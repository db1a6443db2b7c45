"""Where an agent's commands run: a Docker container, or a local temp copy."""

from awm_tui.engine.sandbox.base import ExecResult, Sandbox, SandboxError
from awm_tui.engine.sandbox.docker import (
    DEFAULT_IMAGE,
    DockerSandbox,
    connect_docker,
    default_docker_url,
    sweep,
)
from awm_tui.engine.sandbox.factory import SandboxFactory, open_factory
from awm_tui.engine.sandbox.local import LocalSandbox

__all__ = [
    "DEFAULT_IMAGE", "DockerSandbox", "ExecResult", "LocalSandbox", "Sandbox", "SandboxError",
    "SandboxFactory", "connect_docker", "default_docker_url", "open_factory", "sweep",
]
