"""A real headless Chromium (Debian `chromium`): screenshots, the DOM after load,
and every network request a page made, from Chromium's own net log."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@dataclass(frozen=True)
class PageLoad:
    dom: str
    page_requests: list[str]
    """URLs the page itself asked for (Chromium's own update/account pings excluded)."""


def page_requests(net_log: Path) -> list[str]:
    """Requests started on behalf of a file:// page: their network isolation key is
    the file origin (Chromium's background pings carry none, or Google's)."""
    data = json.loads(net_log.read_text())
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = [event.get("params") or {} for event in data["events"] if event["type"] == start_job]
    return [p["url"] for p in starts if "file://" in str(p.get("network_isolation_key", ""))]


class Chromium:
    def __init__(self, binary: str, profile_root: Path) -> None:
        self.binary, self.profile_root = binary, profile_root
        self._runs = 0

    async def _run(self, *args: str) -> tuple[str, str]:
        self._runs += 1
        profile = self.profile_root / f"profile-{self._runs}"
        proc = await asyncio.create_subprocess_exec(
            self.binary, *FLAGS, f"--user-data-dir={profile}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode(), err.decode(errors="replace")

    async def load(self, page: Path) -> PageLoad:
        """The DOM after load (scripts, if any, have run) and the page's requests."""
        net_log = self.profile_root / f"net-{self._runs + 1}.json"
        dom, _ = await self._run(f"--log-net-log={net_log}", "--dump-dom", page.absolute().as_uri())
        return PageLoad(dom, page_requests(net_log))

    async def screenshot(self, page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> Path:
        await self._run(f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", page.absolute().as_uri())
        return png


@pytest.fixture
def chromium(tmp_path: Path) -> Chromium:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = "chromium is not installed (scripts/setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; required when CI is set", pytrace=False)
        pytest.skip(message)
    return Chromium(binary, tmp_path / "chromium")
