"""Where an agent's commands run: a Docker container, or a local temp copy."""

from awm_tui.engine.sandbox.base import ExecResult, Sandbox, SandboxError

__all__ = ["ExecResult", "Sandbox", "SandboxError"]
