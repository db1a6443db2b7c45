"""An OpenHands config.toml as OpenHands documents it: its zero defaults, its notices."""

from __future__ import annotations

from pathlib import Path

from awm_tui.config.loader import load_config
from tests.test_config import DATA, awm

OPENHANDS_DEFAULTS = """
[core]
workspace_base = "./workspace"

[llm]
model = "openai/qwen2.5-coder"
base_url = "http://127.0.0.1:8080/v1"
api_key = "sk-local-0000"
max_output_tokens = 0
max_input_tokens = 0
max_message_chars = 30000
caching_prompt = true

[llm.small]
model = "openai/gemma-3-270m"
max_input_tokens = 8192
system_prompt_mode = "user"

[agent]
enable_browsing = false

[sandbox]
timeout = 120

[[runs]]
name = "local"
llm = "llm.small"
output_dir = "out"
"""


def test_zero_token_limits_mean_not_set(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(OPENHANDS_DEFAULTS)
    path.chmod(0o600)
    loaded = load_config(path)   # refused before: 0 failed "greater than 0"
    base, small = loaded.config.llm["llm"], loaded.config.llm["llm.small"]
    assert base.max_output_tokens is None and base.max_input_tokens is None
    assert small.max_input_tokens == 8192 and small.system_prompt_mode == "user"
    assert small.max_output_tokens is None   # inherited 0: still "not set"


def test_everything_ignored_is_one_line() -> None:
    [notice] = [n for n in load_config(DATA / "openhands_config.toml").notices if "ignoring" in n]
    assert notice.count("\n") == 0
    for ignored in ("[core]", "[agent]", "[sandbox]", "[condenser]", "llm.embedding_model",
                    "llm.kimi-k2.native_tool_calling"):
        assert ignored in notice


def test_check_shows_the_url_each_run_calls(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(OPENHANDS_DEFAULTS)
    path.chmod(0o600)
    out = awm("--check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "  url      http://127.0.0.1:8080/v1/chat/completions" in out.stdout
    assert len([line for line in out.stderr.splitlines() if "ignoring" in line]) == 1


def test_check_shows_a_profiles_pace(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(OPENHANDS_DEFAULTS.replace('caching_prompt = true', 'caching_prompt = true\nrequests_per_minute = 20'))
    path.chmod(0o600)
    out = awm("--check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "/v1/chat/completions (at most 20 calls a minute per key)" in out.stdout
