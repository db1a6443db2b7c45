"""The real `awm-tui --demo` inside a real tmux session, driven by send-keys."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.plugins.tui import leftover_containers

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

if shutil.which("tmux") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tmux is required on CI")
    pytest.skip("tmux is not installed", allow_module_level=True)


class Tmux:
    def __init__(self) -> None:
        self.socket = f"awm-tui-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "awm")

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.5)
        raise AssertionError(f"{text!r} did not appear within {timeout}s; screen:\n{self.screen()}")


@pytest.fixture
def tmux():
    session = Tmux()
    yield session
    subprocess.run(["tmux", "-L", session.socket, "kill-server"], capture_output=True, timeout=10)


def test_demo_run_in_tmux_finishes_and_quits_cleanly(tmux, tmp_path: Path):
    awm_tui = Path(sys.executable).parent / "awm-tui"
    command = [str(awm_tui)] if awm_tui.exists() else [sys.executable, "-m", "awm_tui"]
    rc_file = tmp_path / "rc"
    shell = (f"{shlex.join([*command, '--demo', '--output-root', str(tmp_path / 'out')])}; "
             f"echo $? > {shlex.quote(str(rc_file))}")
    tmux("new-session", "-d", "-s", "awm", "-x", "120", "-y", "40",
         "-e", "TERM=screen-256color", "-c", str(Path(__file__).parent.parent), shell)
    tmux.wait_for("demo-a", timeout=60)
    tmux.wait_for("^s Start", timeout=10)
    tmux("send-keys", "-t", "awm", "C-s")
    tmux.wait_for("running task", timeout=60)
    screen = tmux.wait_for("finished ·", timeout=240)
    captures = [screen]
    tmux("send-keys", "-t", "awm", "C-q")
    deadline = time.monotonic() + 60
    while not rc_file.exists() and time.monotonic() < deadline:
        try:
            screen = tmux.screen()
        except subprocess.CalledProcessError:
            break  # the session ended with the app
        captures.append(screen)
        if "Stop them" in screen:
            tmux("send-keys", "-t", "awm", "y")
        time.sleep(0.5)
    assert rc_file.read_text().strip() == "0"
    assert all("sim-demo-key" not in c for c in captures)
    import asyncio
    assert asyncio.run(leftover_containers()) in (None, 0)


def test_curves_render_in_the_ansi_theme_in_tmux(tmux, tmp_path: Path):
    """The demo in tmux with TERM=screen and awm-ansi: f5 shows the pane's resolve curve,
    and everything on screen is painted in the terminal's own 16 colours."""
    awm_tui = Path(sys.executable).parent / "awm-tui"
    command = [str(awm_tui)] if awm_tui.exists() else [sys.executable, "-m", "awm_tui"]
    shell = shlex.join([*command, "--demo", "--theme", "awm-ansi", "--output-root", str(tmp_path / "out")])
    tmux("new-session", "-d", "-s", "awm", "-x", "100", "-y", "40",
         "-e", "TERM=screen", "-c", str(Path(__file__).parent.parent), shell)
    tmux.wait_for("^s Start", timeout=60)
    tmux("send-keys", "-t", "awm", "C-s")
    tmux.wait_for("tasks 2/", timeout=180)  # two tasks checkpointed: a curve to draw
    tmux("send-keys", "-t", "awm", "F5")
    screen = tmux.wait_for("└┬", timeout=30)  # the plot's x axis
    assert re.search(r"▞▞ demo-a [0-9]+/[0-9]+", screen), screen  # its legend: resolved/done
    painted = tmux("capture-pane", "-p", "-e", "-t", "awm")
    # The 16 colours are SGR 30-37 / 90-97 (40-47 / 100-107); an RGB colour (ours or the
    # plot library's) reaches tmux as 38;2 or, through TERM=screen, as 38;5;N.
    assert not re.findall(r"\x1b\[[0-9;]*[34]8;[25];", painted), painted
    tmux("send-keys", "-t", "awm", "C-q")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if "Stop them" in tmux.screen():
                tmux("send-keys", "-t", "awm", "y")
        except subprocess.CalledProcessError:
            break  # the session ended with the app
        time.sleep(0.5)
