"""Exit codes and signals of the real CLI process (issue 12 item 6)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from awm_tui.servers.sim_llm import SimLLMServer
from tests.test_batch import batch_env

pytestmark = pytest.mark.timeout(180)

KEY = "sk-or-v1-" + "0123456789abcdef" * 4


# The console script users run (its wrapper imports awm_tui.cli, then calls main()).
AWM_TUI = str(Path(sys.executable).with_name("awm-tui"))


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([AWM_TUI, *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or batch_env())


async def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    # In a thread: the loop must keep serving the in-process simulated model meanwhile.
    return await asyncio.to_thread(proc.communicate, timeout=timeout)


# From start-up (imports, config, plan) to runs in flight. A signal before the
# interpreter runs our first line is the interpreter's (not tested: it may land
# there on a loaded machine below ~0.3 s).
INSTANTS = [0.4, 0.8, 1.5, 3.0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("after", INSTANTS)
def test_a_stop_signal_at_any_instant_exits_130_with_a_line(sig: signal.Signals, after: float,
                                                            tmp_path: Path) -> None:
    # Python's default warning filters, as a user runs it: a signal landing while importlib
    # reads a .pyc leaves *CPython's* file object unclosed, which batch_env's
    # error::ResourceWarning turned into an "Exception ignored ... Traceback" on stderr
    # (seen once in CI at 0.4 s); leaks of our own are caught by every other batch test.
    env = batch_env({"PYTHONWARNINGS": "ignore::ResourceWarning"})
    proc = start("--batch", "--demo", "--output-root", str(tmp_path / "out"), "--limit", "2", cwd=tmp_path,
                 env=env)
    time.sleep(after)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out[-800:], err[-800:])
    assert "Traceback" not in err and "internal error" not in err, err
    assert "rerun" in out + err  # how to resume is said, whichever phase the signal hit


def test_an_unknown_flag_never_echoes_its_value(tmp_path: Path) -> None:
    for args in (["--apikey", KEY], [f"--apikey={KEY}"], ["--limit", KEY]):
        proc = start("--batch", *args, cwd=tmp_path)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        assert KEY not in out + err and KEY[-20:] not in err, err
        assert "--apikey" in err or "--limit" in err


async def test_a_batch_whose_every_task_errs_exits_1(tmp_path: Path, sim_llm: SimLLMServer) -> None:
    # A SWE-bench Lite row: no snapshot, no image, so there is no repository to work in.
    dataset = tmp_path / "lite.jsonl"
    dataset.write_text('{"instance_id": "astropy__astropy-12907", "repo": "astropy/astropy", '
                       '"base_commit": "d16bfe05", "problem_statement": "fix it"}\n')
    config = tmp_path / "c.toml"
    config.write_text(f'[llm]\nmodel = "awm-sim"\nbase_url = "{sim_llm.url}"\napi_key = "{KEY}"\n'
                      f'[[runs]]\nname = "lite"\noutput_dir = "{tmp_path / "out"}"\n'
                      f'dataset = "{dataset}"\nlimit = 1\nsandbox = "local"\n')
    config.chmod(0o600)
    proc = start("--batch", "--config", str(config), cwd=tmp_path)
    out, err = await finish(proc, 120)
    assert "+1 err" in out, out
    assert proc.returncode == 1, (out, err)


def test_main_in_process_leaves_the_callers_sigterm_handler(tmp_path: Path) -> None:
    from awm_tui.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["--check", "--config", str(tmp_path / "missing.toml")]) == 2
    assert signal.getsignal(signal.SIGTERM) is before
