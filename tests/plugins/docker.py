"""Docker fixtures: a real daemon and the awm-sandbox image, or a skip (a failure on CI)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import aiodocker
import pytest

from awm_tui.engine.sandbox.docker import (
    DEFAULT_IMAGE,
    docker_url_candidates,
    normalize_docker_url,
    sweep,
)


def _get(url: str, path: str) -> int | None:
    """HTTP status of a GET to the daemon, with plain sockets (no event loop here)."""
    url = normalize_docker_url(url)
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.create_connection((parts.hostname, parts.port or 2375), timeout=5)
        with sock:
            if parts.scheme == "unix":
                sock.settimeout(5)
                sock.connect(parts.path)
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
        return int(status_line.split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (required when CI is set: run scripts/setup)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_url() -> str:
    """The first daemon that answers ($DOCKER_HOST, system socket, private socket)."""
    candidates = docker_url_candidates()
    url = next((u for u in candidates if _get(u, "/_ping") == 200), None)
    if url is None:
        _unavailable(f"no Docker daemon answers (tried {', '.join(candidates) or 'nothing'})")
    assert url is not None
    if _get(url, f"/images/{quote(DEFAULT_IMAGE)}/json") != 200:
        _unavailable(f"image {DEFAULT_IMAGE} is missing at {url} (run scripts/sandbox-image)")
    return url


@pytest.fixture
async def docker_client(docker_url: str) -> AsyncIterator[aiodocker.Docker]:
    docker = aiodocker.Docker(url=normalize_docker_url(docker_url))
    try:
        yield docker
    finally:
        await docker.close()


@pytest.fixture
async def docker_run_name(
    request: pytest.FixtureRequest, docker_client: aiodocker.Docker
) -> AsyncIterator[str]:
    """A run label unique to this test; its containers are swept at teardown."""
    name = f"test-{request.node.name[:30]}-{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        await sweep(docker_client, name)
