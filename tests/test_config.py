"""Loading configs the users already have, and keeping their keys secret."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from awm_tui.config.loader import find_config_path, load_config
from awm_tui.config.models import OPENROUTER_BASE_URL
from awm_tui.config.plan import resolve_plan, with_key

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
KEY_A = "sk-or-v1-" + "a1" * 32
KEY_B = "sk-or-v1-" + "b2" * 32


def awm(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER", "AWM_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "awm_tui", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def test_openhands_config_inherits_and_ignores_unknown(monkeypatch):
    monkeypatch.setenv("AWM_TEST_OPENAI_KEY", KEY_B)
    loaded = load_config(DATA / "openhands_config.toml")
    llm = loaded.config.llm
    assert set(llm) == {"llm", "llm.kimi-k2", "llm.gpt4o"}
    kimi = llm["llm.kimi-k2"]
    # own fields win, unset ones come from [llm]
    assert kimi.model == "openrouter/moonshotai/kimi-k2"
    assert kimi.top_p == 0.9
    assert kimi.temperature == 0.2 and kimi.num_retries == 8 and kimi.retry_min_wait == 15
    assert kimi.api_key.get_secret_value() == "sk-or-v1-dummy-test-key-not-real"
    # litellm-style prefix implies OpenRouter; the prefix is not sent as the model name
    assert kimi.effective_base_url == OPENROUTER_BASE_URL
    assert kimi.api_model == "moonshotai/kimi-k2"
    gpt = llm["llm.gpt4o"]
    assert gpt.api_key.get_secret_value() == KEY_B
    assert gpt.effective_base_url == "https://api.openai.com/v1" and gpt.temperature == 0.0
    text = "\n".join(loaded.notices)
    for ignored in ("[core]", "[agent]", "[sandbox]", "[condenser]", "llm.embedding_model",
                    "llm.kimi-k2.native_tool_calling"):
        assert ignored in text
    assert loaded.config.runs == []


def test_config_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWM_TUI_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_config_path(None) is None
    user = tmp_path / "xdg" / "awm-tui" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config_path(None) == user
    (tmp_path / "config.toml").write_text("")
    assert find_config_path(None) == Path("config.toml")
    monkeypatch.setenv("AWM_TUI_CONFIG", str(tmp_path / "env.toml"))
    assert find_config_path(None) == tmp_path / "env.toml"
    assert find_config_path(tmp_path / "cli.toml") == tmp_path / "cli.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_run_key_override_is_secret_and_masked(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AWM_TEST_KEY_A", KEY_A)
    path = write(tmp_path, f"""
[llm]
model = "openrouter/moonshotai/kimi-k2"
api_key = "{KEY_B}"
[[runs]]
name = "a"
output_dir = "out/a"
api_key = "env:AWM_TEST_KEY_A"
[[runs]]
name = "b"
output_dir = "out/b"
""")
    loaded = load_config(path)
    plan = resolve_plan(loaded)
    a, b = plan
    assert isinstance(a.run.api_key, SecretStr) and isinstance(a.api_key, SecretStr)
    assert a.api_key.get_secret_value() == KEY_A
    assert b.api_key.get_secret_value() == KEY_B  # inherited from [llm]
    # the shared profile is not mutated by the override
    assert loaded.config.llm["llm"].api_key.get_secret_value() == KEY_B
    for shown in (repr(a.run), repr(a.profile), str(a.profile), repr(plan)):
        assert KEY_A not in shown and KEY_B not in shown
    assert a.masked_key.endswith(KEY_A[-4:]) and KEY_A not in a.masked_key
    logging.getLogger("awm_tui.test").warning("plan %s", plan)
    assert KEY_A not in caplog.text and KEY_B not in caplog.text
    # an override is validated: a plain string becomes a SecretStr, junk is refused
    assert isinstance(with_key(a.profile, "sk-plain").api_key, SecretStr)
    with pytest.raises(ValueError):
        with_key(a.profile, 12345)  # type: ignore[arg-type]
    out = awm("--check", "--config", str(path), env={"AWM_TEST_KEY_A": KEY_A})
    assert out.returncode == 0, out.stderr
    assert KEY_A not in out.stdout + out.stderr and KEY_B not in out.stdout + out.stderr
    assert "…" + KEY_A[-4:] in out.stdout and "…" + KEY_B[-4:] in out.stdout


def test_example_config_checks_without_keys():
    out = awm("--check", "--config", str(REPO / "config.example.toml"))
    assert out.returncode == 0, out.stderr
    assert "run_1" in out.stdout and "run_2" in out.stdout
    assert "missing: environment variable OPENROUTER_KEY_1 is unset" in out.stdout
    assert "Traceback" not in out.stderr
    strict = awm("--check", "--require-keys", "--config", str(REPO / "config.example.toml"))
    assert strict.returncode == 2 and "runs[0].api_key" in strict.stderr


def test_example_config_masks_keys_when_set():
    keys = {"OPENROUTER_API_KEY": KEY_A, "OPENROUTER_KEY_1": KEY_B, "OPENROUTER_KEY_2": "sk-or-v1-" + "c3" * 32}
    out = awm("--check", "--require-keys", "--config", str(REPO / "config.example.toml"), env=keys)
    assert out.returncode == 0, out.stderr
    for key in keys.values():
        assert key not in out.stdout + out.stderr


def test_literal_keys_in_readable_file_warn(tmp_path):
    path = write(tmp_path, f'[llm]\napi_key = "{KEY_A}"\n')
    assert not any("readable by group/others" in n for n in load_config(path).notices)
    path.chmod(0o644)
    assert any("readable by group/others" in n for n in load_config(path).notices)


def test_help_lists_the_contract():
    out = awm("--help")
    assert out.returncode == 0
    for flag in ("--config", "--theme", "--demo", "--batch", "--check", "--llm-config", "--api-key",
                 "--output-dir", "--limit", "--skip-eval", "--include-medium", "--parallel",
                 "--keys-file", "--output-root"):
        assert flag in out.stdout, flag
