"""Extra real Docker daemons on loopback TCP (scripts/docker-hosts), one with TLS, or a skip
(a failure on CI). The same environment variables as the script choose their ports and
directories, so concurrent test sessions on one machine can keep theirs apart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from awm_tui.config.models import DockerHostConfig
from awm_tui.engine.sandbox.docker import DEFAULT_IMAGE
from tests.plugins.docker import _get, _unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "docker-hosts"
PREFIX = os.environ.get("AWM_DOCKER_HOSTS_PREFIX", "/tmp/awm-dockerd-extra")
BASE_PORT = int(os.environ.get("AWM_DOCKER_HOSTS_PORT", "23750"))
COUNT = 3
TLS_INDEX = 1
CERTS = Path(f"{PREFIX}-certs")


@dataclass(frozen=True)
class ExtraHost:
    index: int
    url: str
    """What awm-tui connects to: tcp://127.0.0.1:PORT."""
    socket: str
    """The same daemon's unix socket, for the tests' own looks at it."""
    dir: Path
    tls: bool

    def config(self, **fields: object) -> DockerHostConfig:
        """Its `[[docker.hosts]]` entry (with the client certificate when it speaks TLS)."""
        tls = dict(tls_verify=True, ca=CERTS / "ca.pem", cert=CERTS / "client.pem",
                   key=CERTS / "client-key.pem") if self.tls else {}
        return DockerHostConfig.model_validate({"url": self.url, **tls, **fields})

    @property
    def pid(self) -> int:
        return int((self.dir / "dockerd.pid").read_text())

    def kill(self) -> None:
        """SIGKILL its dockerd (its containers live on in their shims)."""
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _get(self.socket, "/_ping") == 200 and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        """Start it again (scripts/docker-hosts start is idempotent: only this one starts)."""
        subprocess.run([str(SCRIPT), "start", str(COUNT)], check=True, env={**os.environ, "QUIET": "1"},
                       capture_output=True, timeout=180)


@dataclass(frozen=True)
class DockerHosts:
    hosts: tuple[ExtraHost, ...]
    certs: Path

    @property
    def wrong_ca(self) -> Path:
        """A CA that signed neither certificate."""
        return self.certs / "wrong-ca.pem"

    @property
    def tls_host(self) -> ExtraHost:
        return self.hosts[TLS_INDEX]


@pytest.fixture(scope="session")
def docker_hosts() -> DockerHosts:
    """The extra daemons, answering and holding the sandbox image."""
    hosts = tuple(
        ExtraHost(i, f"tcp://127.0.0.1:{BASE_PORT + i}", f"unix://{PREFIX}-{i}/docker.sock",
                  Path(f"{PREFIX}-{i}"), i == TLS_INDEX)
        for i in range(COUNT))
    for host in hosts:
        if _get(host.socket, "/_ping") != 200:
            _unavailable(f"extra Docker daemon {host.index} does not answer at {host.socket} "
                         f"(run scripts/docker-hosts start)")
        if _get(host.socket, f"/images/{quote(DEFAULT_IMAGE)}/json") != 200:
            _unavailable(f"image {DEFAULT_IMAGE} is missing on extra daemon {host.index} "
                         "(run scripts/docker-hosts start)")
    if not (CERTS / "client-key.pem").is_file():
        _unavailable(f"no TLS certificates in {CERTS} (run scripts/docker-hosts start)")
    return DockerHosts(hosts, CERTS)
