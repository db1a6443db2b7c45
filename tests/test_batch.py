"""`awm-tui --batch` end to end: the real CLI in a subprocess against the simulated model."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from awm_tui.config.keys import mask_key
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions

KEYS = [f"sk-or-v1-batchtest{n}secret{n}{n}{n}{n}abcd{n:02d}" for n in range(1, 5)]
NO_DOCKER = "unix:///nonexistent/awm-test-docker.sock"
"""A daemon URL nobody answers: `sandbox = "auto"` runs then fall back to the fast local sandbox."""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.strip()]


async def batch(*args: str | Path, cwd: Path, timeout: float = 90, env: dict[str, str] | None = None) -> Result:
    """Run `python -m awm_tui --batch ARGS` and wait for it (the sim server keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui", "--batch", *map(str, args), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=batch_env(env))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


def batch_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWM_TUI_CONFIG", "NO_COLOR")}
    env["PYTHONWARNINGS"] = "error::ResourceWarning"
    return env | (extra or {})


def write_config(path: Path, sim: SimLLMServer, *, runs: list[dict] = (), key: str | None = None,
                 docker_url: str | None = NO_DOCKER, extra: str = "") -> Path:
    lines = ["[llm]", 'model = "awm-sim"', f'base_url = "{sim.url}"', "num_retries = 1",
             "retry_min_wait = 0.05", "retry_max_wait = 0.1"]
    if key:
        lines.append(f'api_key = "{key}"')
    lines += ["", "[llm.kimi-k2]", 'model = "awm-sim"', ""]
    if docker_url:
        lines += ["[docker]", f'url = "{docker_url}"', ""]
    for run in runs:
        lines.append("[[runs]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in run.items()]
        lines.append("")
    path.write_text("\n".join(lines) + extra)
    path.chmod(0o600)
    return path


def summary(out_dir: Path) -> dict:
    return json.loads((out_dir / "summary.json").read_text())


def layout(out_dir: Path) -> set[str]:
    return {str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if not p.name.startswith(".")}


def assert_no_raw_keys(*texts: str) -> None:
    for text in texts:
        for key in KEYS:
            assert key not in text
            assert key[9:] not in text  # nor its body without the known prefix


@pytest.fixture
async def sim():
    async with SimLLMServer(SimOptions(seed=3)) as server:
        yield server


# -- the demo -----------------------------------------------------------------------------------


async def test_demo_finishes_offline_with_summary(tmp_path: Path) -> None:
    res = await batch("--demo", "--output-root", tmp_path / "out", "--limit", "2", cwd=tmp_path, timeout=120)
    assert res.code == 0, res.err
    assert "AWM batch summary" in res.out
    assert "run started" in res.out and "run finished" in res.out
    runs = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(runs) >= 2
    for run_dir in runs:
        data = summary(run_dir)
        assert data["status"] == "finished" and data["tasks"] == 2 and data["interrupted"] is False
        assert "\x1b[" not in res.out  # not a terminal: no colour codes


# -- config runs, single-run flags ---------------------------------------------------------------


async def test_single_run_seed_flags_match_config_run_layout(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "config.toml", sim, key=KEYS[0], runs=[
        {"name": "from-config", "output_dir": "cfg_out", "limit": 1, "sandbox": "local"}])
    from_config = await batch("--config", cfg, cwd=tmp_path)
    assert from_config.code == 0, from_config.err

    # The users' own command line, with the config found as usual (./config.toml).
    seeds = await batch("--llm-config", "llm.kimi-k2", "--api-key", KEYS[1], "--output-dir", "./outputs/run_1",
                        "--limit", "1", cwd=tmp_path)
    assert seeds.code == 0, seeds.err
    out = tmp_path / "outputs" / "run_1"
    assert layout(out) == layout(tmp_path / "cfg_out")
    assert {"checkpoint.json", "buffer.json", "preds.json", "events.jsonl",
            "summary.json"} <= layout(out)
    data = summary(out)
    assert data["name"] == "run_1" and data["tasks"] == 1 and data["api_key"] == mask_key(KEYS[1])
    assert mask_key(KEYS[1]) in seeds.out  # the run-started line names the key, masked
    assert_no_raw_keys(seeds.out, seeds.err, from_config.out, from_config.err,
                       (out / "events.jsonl").read_text(), (out / "summary.json").read_text())
    # The key that did the work is the override, not the profile's.
    assert list(sim.stats()["tasks_by_key"]) == [mask_key(KEYS[0]), mask_key(KEYS[1])]

    skipped = await batch("--llm-config", "kimi-k2", "--api-key", KEYS[2], "--output-dir", "outputs/run_2",
                          "--limit", "1", "--skip-eval", "--include-medium", cwd=tmp_path)
    assert skipped.code == 0, skipped.err
    assert summary(tmp_path / "outputs" / "run_2")["evaluations"] == 0
    assert "not evaluated" in skipped.out


async def test_limit_overrides_every_config_run(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=[
        {"name": "a", "output_dir": "a", "limit": 5, "sandbox": "local", "skip_eval": True},
        {"name": "b", "output_dir": "b", "limit": 4, "sandbox": "local", "skip_eval": True}])
    res = await batch("--config", cfg, "--limit", "1", "--json", cwd=tmp_path)
    assert res.code == 0, res.err
    assert summary(tmp_path / "a")["tasks"] == summary(tmp_path / "b")["tasks"] == 1


async def test_json_lines_only_and_no_key(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=[
        {"name": "j", "output_dir": "j", "limit": 2, "sandbox": "local", "skip_eval": True}])
    res = await batch("--config", cfg, "--json", "--status-every", "0.2", cwd=tmp_path)
    assert res.code == 0, res.err
    events = [json.loads(line) for line in res.lines()]  # every stdout line is JSON
    kinds = [e["kind"] for e in events]
    assert kinds.count("task_finished") == 2
    assert {"run_started", "metrics", "run_finished"} <= set(kinds)
    assert kinds[-1] == "batch_summary" and events[-1]["exit_code"] == 0
    # Every event names its run, but a key's health: that is fleet-wide (run "", its runs listed).
    assert all(e.get("run") == "j" for e in events[:-1] if e["kind"] != "key_health")
    health = [e for e in events if e["kind"] == "key_health"]
    assert health and all(e["run"] == "" and e["runs"] == ["j"] for e in health)
    assert health[-1]["masked"] == mask_key(KEYS[0]) and health[-1]["credits_remaining"] is None
    assert_no_raw_keys(res.out, res.err)


async def test_json_lines_carry_low_credits(tmp_path: Path) -> None:
    """The simulated key has $0.50 (under the $1 threshold): `--json` says so, in the key's
    health and in one credits_low event, and the status lines do too."""
    async with SimLLMServer(SimOptions(seed=3, key_credit_limit=0.5)) as sim:
        configs = []
        for name in ("j", "h"):
            cfg = write_config(tmp_path / f"{name}.toml", sim, key=KEYS[0], runs=[
                {"name": name, "output_dir": name, "limit": 1, "sandbox": "local", "skip_eval": True}])
            cfg.write_text(cfg.read_text().replace("[llm]\n", "[llm]\nkey_endpoint = true\n", 1))
            configs.append(cfg)
        res = await batch("--config", configs[0], "--json", cwd=tmp_path)
        human = await batch("--config", configs[1], "--status-every", "0.2", cwd=tmp_path)
    assert res.code == 0, res.err
    events = [json.loads(line) for line in res.lines()]
    low = [e for e in events if e["kind"] == "credits_low"]
    assert len(low) == 1 and low[0]["masked"] == mask_key(KEYS[0]) and low[0]["limit"] == 0.5
    health = [e for e in events if e["kind"] == "key_health" and e["credits_checked_at"]]
    assert health and health[-1]["credits_low"] and 0 < health[-1]["credits_remaining"] < 0.5
    assert human.code == 0, human.err
    assert f"warning: credits low on key {mask_key(KEYS[0])}" in human.out
    assert any("status" in line and "/$0.50 LOW" in line for line in human.lines()), human.out
    assert_no_raw_keys(res.out, res.err, human.out, human.err)


# -- --parallel ----------------------------------------------------------------------------------


async def test_parallel_gives_each_run_its_own_key(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    keys = tmp_path / "keys.txt"
    keys.write_text("# one per run\n" + "\n".join(KEYS[:3]) + "\n")
    res = await batch("--config", cfg, "--parallel", "3", "--keys-file", keys, "--output-root", "par",
                      "--limit", "1", cwd=tmp_path)
    assert res.code == 0, res.err
    by_key = sim.stats()["tasks_by_key"]
    assert len(by_key) == 3
    for i in range(1, 4):
        out = tmp_path / "par" / f"run_{i}"
        data = summary(out)
        assert data["status"] == "finished" and data["api_key"] == mask_key(KEYS[i - 1])
        done = list(json.loads((out / "checkpoint.json").read_text())["finished"])
        assert by_key[mask_key(KEYS[i - 1])] == done  # this run's tasks went out on its key only
    assert_no_raw_keys(res.out, res.err)


async def test_parallel_refuses_too_few_keys_unless_shared(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim)
    keys = tmp_path / "keys.txt"
    keys.write_text(KEYS[0] + "\n")
    args = ("--config", cfg, "--parallel", "2", "--keys-file", keys, "--output-root", "par", "--limit", "1")
    refused = await batch(*args, cwd=tmp_path)
    assert refused.code == 2
    assert len(refused.err.strip().splitlines()) == 1 and "--share-keys" in refused.err
    assert not (tmp_path / "par").exists()

    shared = await batch(*args, "--share-keys", "--skip-eval", cwd=tmp_path)
    assert shared.code == 0, shared.err
    assert list(sim.stats()["tasks_by_key"]) == [mask_key(KEYS[0])]


async def test_parallel_401_key_fails_its_run_only(tmp_path: Path) -> None:
    bad = KEYS[1]
    async with SimLLMServer(SimOptions(invalid_keys=frozenset({bad}))) as sim:
        cfg = write_config(tmp_path / "c.toml", sim)
        keys = tmp_path / "keys.txt"
        keys.write_text("\n".join(KEYS[:3]))
        res = await batch("--config", cfg, "--parallel", "3", "--keys-file", keys, "--output-root", "par",
                          "--limit", "1", cwd=tmp_path)
    assert res.code == 1, res.err
    failed = summary(tmp_path / "par" / "run_2")
    assert failed["status"] == "failed" and mask_key(bad) in failed["reason"]
    assert any("run_2" in line and "run failed" in line and mask_key(bad) in line for line in res.lines())
    for other in ("run_1", "run_3"):
        assert summary(tmp_path / "par" / other)["status"] == "finished"
    assert_no_raw_keys(res.out, res.err)


# -- usage and config errors --------------------------------------------------------------------


async def test_config_problems_exit_2_with_one_line(tmp_path: Path, sim: SimLLMServer) -> None:
    no_key = write_config(tmp_path / "nokey.toml", sim, runs=[{"name": "a", "output_dir": "a", "sandbox": "local"}])
    res = await batch("--config", no_key, cwd=tmp_path)
    assert res.code == 2 and res.out == ""
    assert len(res.err.strip().splitlines()) == 1 and "no API key" in res.err

    refused = write_config(tmp_path / "refused.toml", sim, key=KEYS[0], runs=[
        {"name": "a", "output_dir": "a", "sandbox": "local", "dataset": str(tmp_path / "missing.jsonl")}])
    res = await batch("--config", refused, cwd=tmp_path)
    assert res.code == 2
    assert len(res.err.strip().splitlines()) == 1 and "missing.jsonl" in res.err

    res = await batch("--demo", "--parallel", "2", cwd=tmp_path)
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1
