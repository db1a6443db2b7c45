"""Bad configs: exit code 2, one line naming the file and key path, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEY = "sk-or-v1-" + "d4" * 32
GOOD_LLM = f'[llm]\nmodel = "openrouter/moonshotai/kimi-k2"\napi_key = "{KEY}"\n'


def run(name: str, o: str = "out/a") -> str:
    return f'[[runs]]\nname = "{name}"\noutput_dir = "{o}"\n'


CASES = {
    "bad-toml": (GOOD_LLM + "[[runs]\nname = 'a'\n", "line 4"),
    "wrong-type-limit": (GOOD_LLM + run("a") + 'limit = "five"\n', "runs[0].limit"),
    "dup-dir-dot-slash": (GOOD_LLM + run("a", "./a") + run("b", "a/"), "runs[1].output_dir"),
    "dup-dir-dotdot": (GOOD_LLM + run("a", "x/../a") + run("b", "a"), "runs[1].output_dir"),
    "dup-name": (GOOD_LLM + run("a", "a") + run("a", "b"), "runs[1].name"),
    "missing-profile": (GOOD_LLM + run("a") + 'llm = "llm.nope"\n', "runs[0].llm"),
    "negative-limit": (GOOD_LLM + run("a") + "limit = -3\n", "runs[0].limit"),
    "zero-limit": (GOOD_LLM + run("a") + "limit = 0\n", "runs[0].limit"),
    "zero-workers": (GOOD_LLM + run("a") + "workers = 0\n", "runs[0].workers"),
    "env-unset": (GOOD_LLM + run("a") + 'api_key = "env:AWM_TEST_SURELY_UNSET"\n', "runs[0].api_key"),
    "file-missing": (GOOD_LLM + run("a") + 'api_key = "file:no-such-key.txt"\n', "runs[0].api_key"),
    "file-unreadable": (GOOD_LLM + run("a") + 'api_key = "file:keydir"\n', "runs[0].api_key"),
    "key-not-string": (GOOD_LLM + run("a") + "api_key = 12345\n", "runs[0].api_key"),
    "bad-eval-url": (GOOD_LLM + '[eval]\nserver_url = "not a url"\n', "eval.server_url"),
    "bad-base-url": (GOOD_LLM + 'base_url = "ftp://x"\n', "llm.base_url"),
    "typo-field": (GOOD_LLM + run("a") + "limt = 5\n", "runs[0].limt"),
    "profile-temperature": (GOOD_LLM + '[llm.hot]\ntemperature = 5\n', "llm.hot.temperature"),
    "runs-not-array": ('runs = "all"\n' + GOOD_LLM, "runs"),
    "missing-output-dir": (GOOD_LLM + '[[runs]]\nname = "a"\n', "runs[0].output_dir"),
    "pool-per-host": (GOOD_LLM + "[http]\nlimit = 10\nlimit_per_host = 50\n", "http"),
    "docker-url": (GOOD_LLM + '[docker]\nurl = "/var/run/docker.sock"\n', "docker.url"),
    "bad-run-name": (GOOD_LLM + run("my run") , "runs[0].name"),
    "bad-sandbox": (GOOD_LLM + run("a") + 'sandbox = "vm"\n', "runs[0].sandbox"),
    "section-not-table": ("eval = 3\n" + GOOD_LLM, "eval"),
    # refused when the config is read, not after a run has opened its connections
    "docker-memory": (GOOD_LLM + '[docker]\nmemory = "2 gigs"\n', "docker.memory"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config(case: str, tmp_path: Path):
    text, key_path = CASES[case]
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    (tmp_path / "keydir").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWM_", "OPENROUTER"))}
    out = subprocess.run(
        [sys.executable, "-m", "awm_tui", "--check", "--require-keys", "--config", str(path)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.startswith("awm-tui: error:")]
    assert len(lines) == 1, out.stderr
    assert str(path) in lines[0] and key_path in lines[0], lines[0]
    assert "Traceback" not in out.stderr and KEY not in out.stderr + out.stdout


def test_missing_config_file(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "awm_tui", "--check", "--config", str(tmp_path / "nope.toml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr


def test_usage_error_exit_2():
    out = subprocess.run([sys.executable, "-m", "awm_tui", "--limit", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--limit" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "awm_tui", "--batch", "--workers", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "--workers: must be at least 1" in out.stderr and "Traceback" not in out.stderr


def test_workers_flag_reaches_every_run(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD_LLM + run("a", "a") + run("b", "b") + "workers = 2\n")
    path.chmod(0o600)
    check = [sys.executable, "-m", "awm_tui", "--check", "--config", str(path)]
    out = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("in flight at once") == 1 and "2 in flight at once" in out.stdout  # [[runs]] b
    single = [*check, "--output-dir", str(tmp_path / "single"), "--workers", "3"]
    out = subprocess.run(single, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("in flight at once") == 1 and "3 in flight at once" in out.stdout
