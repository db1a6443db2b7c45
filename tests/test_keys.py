"""One key resolver, one choice of a run's key, one mask, one profile-name rule — seen
from every way a key comes in: the config file, `--api-key`, `--keys-file` and a TUI pane.

Real files and environment variables throughout; the TUI is driven by the Pilot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from textual.content import Content
from textual.widgets import Input, Static

from awm_tui.batch.plan import build_plan
from awm_tui.cli import build_parser
from awm_tui.config.errors import ConfigError
from awm_tui.config.keys import (
    NO_KEY,
    KeyProblem,
    aresolve_key,
    choose_key,
    key_format_warning,
    mask_key,
    resolve_key,
)
from awm_tui.config.loader import load_config
from awm_tui.config.models import AppConfig, EvalConfig, LLMProfile, RunConfig, profile_name
from awm_tui.config.plan import resolve_plan, resolve_run
from awm_tui.engine.fleet import Fleet, RunRefused
from awm_tui.tui.app import AWMApp
from awm_tui.tui.pane_checks import check_panes
from awm_tui.tui.widgets.pane_form import FormValues
from tests.plugins.tui import RecordingFleet, sample_config, settle, type_into

KEY = "sk-or-v1-" + "0123456789abcdef" * 3 + "0123456789abab12"
FILE_KEY = "sk-or-v1-" + "fe" * 30 + "c0de"
UNSET = "AWM_KEYS_TEST_UNSET"
UNSET_PROBLEM = (f"environment variable {UNSET} is unset or empty; "
                 f"export {UNSET}=… or put the key in a file and use file:PATH")
"""The one message for an unset variable, whichever way the reference came in."""


def awm(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER", "AWM_"))} | (env or {})
    return subprocess.run([sys.executable, "-m", "awm_tui", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=60)


def key_file(tmp_path: Path) -> Path:
    """A key file as people write them: padded, a trailing note on the next line."""
    path = tmp_path / "k.txt"
    path.write_text(f"  {FILE_KEY}  \nrotated 2026-11-30\n")
    return path


def config_file(tmp_path: Path, run_key: str | None = None, llm_key: str | None = None) -> Path:
    lines = ["[llm]", 'model = "awm-sim"', 'base_url = "http://127.0.0.1:9/v1"']
    if llm_key:
        lines.append(f'api_key = "{llm_key}"')
    lines += ["", "[llm.kimi-k2]", 'model = "openrouter/moonshotai/kimi-k2"', "",
              "[[runs]]", 'name = "a"', 'llm = "kimi-k2"', 'output_dir = "out/a"']
    if run_key:
        lines.append(f'api_key = "{run_key}"')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def notes_of(pane) -> str:
    """The pane's notes line(s) as shown; "" when hidden."""
    notes = pane.form.query_one("#notes", Static)
    return Content.from_markup(str(notes.content)).plain if notes.display else ""


async def press_start(pilot, app, key: str = "ctrl+s") -> None:
    await pilot.press(key)
    await settle(app)
    await pilot.pause()


# -- the resolver -----------------------------------------------------------------------------

def test_env_file_and_literal_references_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("AWM_KEYS_TEST_SET", f" {KEY}\n")
    key_file(tmp_path)
    assert resolve_key("env:AWM_KEYS_TEST_SET").get_secret_value() == KEY  # padding stripped
    assert resolve_key(SecretStr("file:k.txt"), base_dir=tmp_path).get_secret_value() == FILE_KEY  # first line
    assert resolve_key(f"  {KEY} ").get_secret_value() == KEY
    assert resolve_key(None) is None and resolve_key("   ") is None


def test_problems_name_the_reference_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    (tmp_path / "empty.txt").write_text("\n")
    for ref, text in ((f"env:{UNSET}", UNSET_PROBLEM),
                      ("env:", "empty environment variable name; write env:VAR_NAME"),
                      ("file:nope.txt", f"key file {tmp_path / 'nope.txt'} does not exist; create it or fix the path"),
                      ("file:empty.txt", f"key file {tmp_path / 'empty.txt'} is empty; write the key into it")):
        problem = resolve_key(ref, base_dir=tmp_path)
        assert isinstance(problem, KeyProblem) and problem.reference == ref and str(problem) == text


async def test_a_key_file_is_read_off_the_event_loop(tmp_path):
    key_file(tmp_path)
    got = await aresolve_key(f"file:{tmp_path / 'k.txt'}")
    assert isinstance(got, SecretStr) and got.get_secret_value() == FILE_KEY


# -- the choice -------------------------------------------------------------------------------

def test_override_over_run_over_profile_and_a_broken_reference_does_not_fall_back():
    over, own, shared = SecretStr("o" * 20), SecretStr("r" * 20), SecretStr("p" * 20)
    assert choose_key(("override", over), ("run", own), ("profile", shared)).key is over
    assert choose_key(("run", own), ("profile", shared)).key is own
    assert choose_key(("run", None), ("profile", shared)).source == "profile"
    broken = KeyProblem("env:X", "environment variable X is unset or empty", "export X=…")
    chosen = choose_key(("run", broken), ("profile", shared))  # never the profile's key instead
    assert (chosen.key, chosen.source, chosen.problem) == (None, "run", broken)
    assert choose_key(("run", SecretStr("  ")), ("profile", None)).problem is NO_KEY


def test_a_named_profile_reports_the_broken_key_it_inherits(tmp_path, monkeypatch):
    # Before: the inherited [llm] key's problem was lost, and the run read "none set".
    monkeypatch.delenv(UNSET, raising=False)
    [item] = resolve_plan(load_config(config_file(tmp_path, llm_key=f"env:{UNSET}")))
    assert (item.key_path, str(item.key_problem)) == ("llm.kimi-k2.api_key", UNSET_PROBLEM)
    out = awm("--check", "--config", "config.toml", cwd=tmp_path)
    assert f"missing: environment variable {UNSET} is unset or empty (llm.kimi-k2.api_key)" in out.stdout


# -- the same key and the same message from every entry point ------------------------------------

def plan_key(argv: list[str]) -> str:
    [run] = build_plan(build_parser().parse_args(["--batch", *argv])).runs
    assert run.api_key is not None
    return run.api_key.get_secret_value()


def test_config_api_key_and_keys_file_read_one_key_file_alike(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWM_TUI_CONFIG", raising=False)
    key_file(tmp_path)
    (tmp_path / "keys.txt").write_text("# one per line\nfile:k.txt\n")
    cfg = str(config_file(tmp_path, run_key="file:k.txt"))
    assert plan_key(["--config", cfg]) == FILE_KEY
    assert plan_key(["--config", cfg, "--api-key", "file:k.txt", "--output-dir", "out/b"]) == FILE_KEY
    assert plan_key(["--config", cfg, "--parallel", "1", "--keys-file", "keys.txt"]) == FILE_KEY


def test_an_unset_variable_is_one_message_from_config_api_key_and_keys_file(tmp_path):
    config_file(tmp_path, run_key=f"env:{UNSET}")
    out = awm("--check", "--require-keys", "--config", "config.toml", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"awm-tui: error: config.toml: runs[0].api_key: {UNSET_PROBLEM}"]

    out = awm("--batch", "--api-key", f"env:{UNSET}", "--output-dir", "out/x", cwd=tmp_path)
    assert out.returncode == 2 and f"argument --api-key: {UNSET_PROBLEM}" in out.stderr
    assert "Traceback" not in out.stderr

    (tmp_path / "keys.txt").write_text(f"env:{UNSET}\n")
    out = awm("--batch", "--config", "config.toml", "--parallel", "1", "--keys-file", "keys.txt", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"awm-tui: error: keys.txt: line 1: {UNSET_PROBLEM}"]


async def test_a_pane_resolves_env_and_file_keys_like_the_config(tmp_path, monkeypatch):
    """The pane's `env:` key is read stripped (it used to keep a trailing newline and send it),
    its `file:` key is read at start like the config's, and an unset variable is the same line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWM_KEYS_TEST_SET", f"{KEY}\n")
    monkeypatch.delenv(UNSET, raising=False)
    key_file(tmp_path)
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=3), fleet_factory=lambda config, sink: fleet)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        env_pane, file_pane, unset_pane = app.main_screen.panes
        for pane, ref in ((env_pane, "env:AWM_KEYS_TEST_SET"), (file_pane, "file:k.txt"), (unset_pane, f"env:{UNSET}")):
            await type_into(pilot, pane.form.query_one("#key", Input), ref)
            await pilot.press("tab")
            await pilot.pause()
        assert UNSET_PROBLEM in notes_of(unset_pane)
        assert notes_of(env_pane) == ""  # no "trailing whitespace" warning
        await press_start(pilot, app, "ctrl+g")  # every pane
    got = {r.run.name: r.api_key.get_secret_value() for r in fleet.resolved}
    assert got == {"alpha": KEY, "beta": FILE_KEY}  # the unset one was never started


async def test_a_config_run_with_a_broken_key_shows_it_in_its_pane(tmp_path, monkeypatch):
    """Before: the pane of a run whose own `env:` key was unset came up empty and Start
    quietly used its profile's key (shared rate limit). Now the reference and its problem
    are on the key field, Start is refused, and a typed key replaces it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(UNSET, raising=False)
    loaded = load_config(config_file(tmp_path, run_key=f"env:{UNSET}", llm_key=KEY))
    fleet = RecordingFleet()
    app = AWMApp(loaded.config, fleet_factory=lambda config, sink: fleet, key_problems=loaded.key_problems)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        [pane] = app.main_screen.panes
        await pilot.pause()
        assert UNSET_PROBLEM in notes_of(pane)
        await press_start(pilot, app)
        assert fleet.resolved == []  # not started on the profile's key
        await type_into(pilot, pane.form.query_one("#key", Input), "file:k.txt")
        key_file(tmp_path)
        await press_start(pilot, app)
    assert [r.api_key.get_secret_value() for r in fleet.resolved] == [FILE_KEY]


async def test_a_config_run_key_file_missing_at_load_is_read_next_to_the_config_at_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    loaded = load_config(config_file(tmp_path / "cfg", run_key="file:k.txt", llm_key=KEY))
    fleet = RecordingFleet()
    app = AWMApp(loaded.config, fleet_factory=lambda config, sink: fleet, key_problems=loaded.key_problems)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.panes_ready.wait()
        [pane] = app.main_screen.panes
        await press_start(pilot, app)
        assert fleet.resolved == [] and "k.txt does not exist" in notes_of(pane)
        key_file(tmp_path / "cfg")  # not ./k.txt: the config said k.txt beside itself
        await press_start(pilot, app)
    assert [r.api_key.get_secret_value() for r in fleet.resolved] == [FILE_KEY]


async def test_a_pane_on_a_profile_with_a_broken_key_is_refused_with_that_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(UNSET, raising=False)
    loaded = load_config(config_file(tmp_path, llm_key=f"env:{UNSET}"))
    async with Fleet(loaded.config, lambda event: None) as fleet:
        app = AWMApp(loaded.config, fleet_factory=lambda config, sink: fleet, key_problems=loaded.key_problems)
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            await press_start(pilot, app)
            [pane] = app.main_screen.panes
            assert pane.view.reason == f"run 'a': {UNSET_PROBLEM}" and not pane.running


# -- the Fleet chooses nothing ----------------------------------------------------------------

async def test_fleet_refuses_a_run_without_a_key_in_one_line(tmp_path):
    config = AppConfig(llm={"llm.sim": LLMProfile(model="awm-sim")}, eval=EvalConfig(mode="local"))
    run = RunConfig(name="nokey", llm="sim", output_dir=tmp_path / "nokey", sandbox="local")
    async with Fleet(config, lambda event: None) as fleet:
        with pytest.raises(RunRefused) as refused:
            await fleet.start(resolve_run(config, run))
    assert str(refused.value) == f"run 'nokey': {NO_KEY}"
    assert not (tmp_path / "nokey").exists()  # refused before anything was written


# -- profile names ----------------------------------------------------------------------------

def test_one_profile_name_rule_for_runs_flags_and_panes(tmp_path, monkeypatch):
    assert [profile_name(n) for n in ("llm", "kimi-k2", "llm.kimi-k2")] == ["llm", "llm.kimi-k2", "llm.kimi-k2"]
    assert RunConfig(name="a", llm="kimi-k2", output_dir=tmp_path).llm == "llm.kimi-k2"
    [item] = resolve_plan(load_config(config_file(tmp_path, run_key=KEY)))  # written `llm = "kimi-k2"`
    assert item.profile_name == "llm.kimi-k2" and item.profile.provider == "openrouter"
    monkeypatch.chdir(tmp_path)
    assert plan_key(["--config", "config.toml", "--llm-config", "kimi-k2", "--api-key", KEY]) == KEY
    form = FormValues(name="a", key=SecretStr(KEY), output="o/a", limit="1", profile="kimi-k2")
    assert check_panes({"p": form}, sample_config().llm) == {"p": []}


def test_a_missing_profile_is_one_message_from_the_config_and_the_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config_file(tmp_path, run_key=KEY)
    path.write_text(path.read_text().replace('llm = "kimi-k2"', 'llm = "nope"'))
    fix = "no profile [llm.nope]; define [llm.nope] or use one of: llm, llm.kimi-k2"
    with pytest.raises(ConfigError) as from_config:
        load_config(path)
    assert str(from_config.value) == f"{path}: runs[0].llm: {fix}"
    path.write_text(path.read_text().replace('llm = "nope"', 'llm = "kimi-k2"'))
    with pytest.raises(ConfigError) as from_flag:
        build_plan(build_parser().parse_args(["--batch", "--config", str(path), "--llm-config", "nope",
                                              "--api-key", KEY]))
    assert str(from_flag.value) == f"{path}: --llm-config: {fix}"


# -- showing keys -----------------------------------------------------------------------------

def test_mask_key() -> None:
    assert mask_key(SecretStr(KEY)) == "sk-or-v1-…ab12" == mask_key(KEY)
    assert mask_key("sk-proj-" + "x" * 40 + "wxyz") == "sk-proj-…wxyz"
    assert mask_key("somevendorkey-123456789") == "…6789"
    assert mask_key("short1234") == "…34"
    assert mask_key("abc") == "…"
    assert mask_key(None) == "(none)" and mask_key(SecretStr("")) == "(none)"
    for key in ("a", "abc", "abcd", "abcdef", "sk-abcdef12", "sk-abcdef1234"):
        assert key not in mask_key(key) and key.removeprefix("sk-") not in mask_key(key)


def test_key_format_warning() -> None:
    assert key_format_warning(KEY, "openrouter") is None
    assert key_format_warning("sk-" + "a" * 48, "openai") is None
    assert "64" in (key_format_warning("sk-or-v1-abc", "openrouter") or "")
    assert "OpenAI" in (key_format_warning("sk-" + "a" * 48, "openrouter") or "")
    assert "OpenRouter" in (key_format_warning(KEY, "openai") or "")
    assert "whitespace" in (key_format_warning(KEY + "\n", "openrouter") or "")
    assert "env:" in (key_format_warning("env:OPENROUTER_API_KEY", None) or "")
    assert key_format_warning("anything-goes", None) is None
    for warning in (key_format_warning("sk-or-v1-" + "Z" * 64, "openrouter"),
                    key_format_warning("sk-" + "b" * 30, "openrouter")):
        assert warning and "Z" * 8 not in warning and "b" * 8 not in warning


def test_config_imports_nothing_from_the_engine() -> None:
    """The engine imports `config` (plans, keys); `config` importing the engine back was a cycle."""
    probe = ("import importlib, pkgutil, sys, awm_tui.config as c\n"
             "for m in pkgutil.iter_modules(c.__path__): importlib.import_module(f'awm_tui.config.{m.name}')\n"
             "print(sorted(m for m in sys.modules if m.startswith(('awm_tui.engine', 'awm_tui.tui', 'textual'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_key_identity_is_shared_by_equal_keys_and_reveals_nothing() -> None:
    from awm_tui.config.keys import key_identity
    a, b = SecretStr("sk-or-v1-" + "a" * 40), SecretStr(" sk-or-v1-" + "a" * 40 + "\n")
    assert key_identity(a) == key_identity(b)
    assert key_identity(a) != key_identity(SecretStr("sk-or-v1-" + "a" * 39 + "b"))
    assert "aaaa" not in key_identity(a) and len(key_identity(a)) == 12
