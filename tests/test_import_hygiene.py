"""The headless parts never import Textual: batch runs, servers and benchmarks must
start fast and work where no terminal UI can (CI, a server over SSH).

Each check runs in a fresh interpreter, so modules this test process already
imported cannot hide an import.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

HEADLESS = [
    "awm_tui.engine",
    "awm_tui.engine.fleet",
    "awm_tui.engine.run",
    "awm_tui.demo",
    "awm_tui.engine.state",
    "awm_tui.batch",
    "awm_tui.servers.eval_server",
    "awm_tui.servers.sim_llm",
    "awm_tui.report",
    "awm_tui.report.cli",
    "awm_tui.report.html",
]

PROBE = """
import importlib, json, sys
culprits = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    if "textual" in sys.modules and not culprits:
        culprits[name] = sorted(m for m in sys.modules if m.startswith("awm_tui."))
print(json.dumps({"culprits": culprits, "textual": "textual" in sys.modules}))
"""


def test_headless_modules_do_not_import_textual() -> None:
    present = [m for m in HEADLESS if importlib.util.find_spec(m) is not None]
    assert {"awm_tui.engine", "awm_tui.engine.fleet", "awm_tui.demo"} <= set(present)
    done = subprocess.run([sys.executable, "-c", PROBE, *present], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # names the first module after whose import textual was loaded, and what was loaded then
    assert not result["textual"], f"textual imported by {result['culprits']}"


@pytest.mark.parametrize("argv", [["eval-server", "--help"], ["sim-llm", "--help"], ["report", "--help"]])
def test_server_commands_do_not_import_textual(argv: list[str]) -> None:
    """`awm-tui eval-server` / `sim-llm` go through the CLI: it must not pull the TUI in either."""
    code = ("import sys, runpy; sys.argv = ['awm-tui', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('awm_tui', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('TEXTUAL' if 'textual' in sys.modules else 'CLEAN')")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "CLEAN", done.stdout[-2000:] + done.stderr[-2000:]
