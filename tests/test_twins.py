"""No-memory twins end to end: `twin = true` / `--twin` through the real CLI against the
simulated model (its memory gain labelled SIMULATION), then the curve data and the report."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from pydantic import SecretStr

from awm_tui.config.keys import mask_key
from awm_tui.config.models import RunConfig
from awm_tui.config.twins import twin_config, twin_dir, twin_of
from awm_tui.engine import protocol
from awm_tui.engine.state import OutputLayout, load_state, resolve_curve
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_batch import KEYS, Result, assert_no_raw_keys, batch, batch_env, summary, write_config

FIRST = "minicsv__minicsv-3"
"""The sample's first task: forced solved, so the run with memory induces from it."""


@pytest.fixture
async def sim():
    # SIMULATION: without workflows in the prompt every task but the first gets a wrong patch.
    async with SimLLMServer(SimOptions(seed=3, memory_gain=1.0, submit=((FIRST, "gold"),))) as server:
        yield server


def twin_run(**extra: object) -> dict:
    return {"name": "a", "output_dir": "a", "limit": 3, "sandbox": "local", "induction": "rule",
            "induce_every": 1, "twin": True, **extra}


def first_prompts(out: Path) -> dict[str, str]:
    """Each task's first user message as the agent sent it (trajectories/<id>.json)."""
    prompts = {}
    for path in sorted((out / "trajectories").glob("*.json")):
        messages = json.loads(path.read_text())["messages"]
        prompts[path.stem] = next(m["content"] for m in messages if m["role"] == "user")
    return prompts


async def cli(*args: str | Path, cwd: Path) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awm_tui", *map(str, args), cwd=cwd, env=batch_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Result(proc.returncode or 0, out.decode(), err.decode())


def test_twin_config_is_its_run_without_memory() -> None:
    run = RunConfig(name="a", output_dir=Path("/tmp/out/a"), limit=7, dataset="d.jsonl", filter="x.*",
                    shuffle=3, sandbox="docker", max_steps=9, twin=True, api_key=SecretStr("k-run"))
    twin = twin_config(run)
    assert (twin.name, twin.output_dir, twin.memory, twin.twin) == ("a-nomem", Path("/tmp/out/a-nomem"), False, False)
    same = set(RunConfig.model_fields) - {"name", "output_dir", "memory", "twin", "twin_api_key", "api_key"}
    assert {f: getattr(twin, f) for f in same} == {f: getattr(run, f) for f in same}
    assert twin.api_key == run.api_key and twin_of("a-nomem") == "a" and twin_of("a") is None
    assert twin_dir(Path("out/a/")) == Path("out/a-nomem") and twin_dir(Path(".")) == Path.cwd().parent / (
        Path.cwd().name + "-nomem")
    own = twin_config(RunConfig.model_validate({**run.model_dump(), "twin_api_key": SecretStr("k-twin")}))
    assert own.api_key is not None and own.api_key.get_secret_value() == "k-twin"


async def test_twin_runs_the_same_tasks_without_memory(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=[twin_run(twin_api_key=KEYS[1])])
    res = await batch("--config", cfg, cwd=tmp_path, timeout=240)
    assert res.code == 0, res.err
    a, twin = tmp_path / "a", tmp_path / "a-nomem"
    # The pair finished, each in its own directory, the twin on its own key.
    assert summary(a)["status"] == summary(twin)["status"] == "finished"
    assert summary(twin)["name"] == "a-nomem" and summary(twin)["api_key"] == mask_key(KEYS[1])
    runs = [json.loads((d / "checkpoint.json").read_text())["finished"] for d in (a, twin)]
    assert list(runs[0]) == list(runs[1]) and len(runs[0]) == 3  # the same tasks in the same order
    # The twin's prompts never held workflows (its trajectories, and what the model received) ...
    stats = sim.stats()["by_key"]
    assert stats[mask_key(KEYS[1])]["agent"] > 0 and stats[mask_key(KEYS[1])]["workflow_prompts"] == 0
    assert not any(protocol.WORKFLOWS_OPEN in p for p in first_prompts(twin).values())
    # ... while the run with memory induced and used workflows: the comparison means something.
    assert stats[mask_key(KEYS[0])]["workflow_prompts"] > 0
    assert any(protocol.WORKFLOWS_OPEN in p for p in first_prompts(a).values())
    # Its directory never got workflows, nor an induction.
    memory = json.loads((twin / "memory.json").read_text())
    assert memory["workflows"] == [] and memory["history"] == [] and memory["version"] == 0
    assert not list((twin / "inductions").glob("*.json")) if (twin / "inductions").exists() else True
    assert json.loads((a / "memory.json").read_text())["workflows"]
    assert "a-nomem" in res.out  # the batch's lines and summary show the twin
    assert any("a-nomem" in line and "run started" in line and "no memory" in line for line in res.lines())
    assert "memory: a resolved 3/3 (100%), its no-memory twin a-nomem 1/3 (33%): +2" in res.out
    assert_no_raw_keys(res.out, res.err)

    # The curve data (the engine's, which the TUI and the report draw) shows the gap.
    with_memory, without = (resolve_curve(load_state(OutputLayout.of(d))) for d in (a, twin))
    assert with_memory.instance_ids == without.instance_ids
    assert with_memory.resolved == (1, 2, 3) and without.resolved == (1, 1, 1)
    assert [m.after_tasks for m in with_memory.inductions][:1] == [1] and without.inductions == ()

    # The pair's report: both runs, side by side.
    report = await cli("report", a, twin, "--json", cwd=tmp_path)
    assert report.code == 0, report.err
    data = json.loads(report.out)
    assert [(r["name"], r["resolved"], r["done"]) for r in data["runs"]] == [("a", 3, 3), ("a-nomem", 1, 3)]
    assert [t["resolved_so_far"] for t in data["runs"][1]["tasks"]] == [1, 1, 1]
    assert data["runs"][0]["memory"][0]["after_tasks"] == 1
    assert [(r["with_memory"], r["twin_of"]) for r in data["runs"]] == [(True, None), (False, "a")]
    page = await cli("report", a, twin, "-o", tmp_path / "pair.html", cwd=tmp_path)
    assert page.code == 0, page.err
    html = (tmp_path / "pair.html").read_text()
    row = html[html.index('<tr data-run="a-nomem">'):]
    assert "off (twin of a)" in row[:row.index("</tr>")]
    assert "stroke-dasharray" in html  # the twin's curve is drawn dashed, in its run's colour


async def test_twin_flag_gives_a_single_run_its_twin(tmp_path: Path, sim: SimLLMServer) -> None:
    """`--twin` for the users' single-run flags; the twin shares the run's key."""
    cfg = write_config(tmp_path / "c.toml", sim)
    res = await batch("--config", cfg, "--llm-config", "kimi-k2", "--api-key", KEYS[2], "--output-dir", "out/r",
                      "--limit", "2", "--skip-eval", "--twin", cwd=tmp_path, timeout=120)
    assert res.code == 0, res.err
    assert summary(tmp_path / "out" / "r")["status"] == summary(tmp_path / "out" / "r-nomem")["status"] == "finished"
    assert summary(tmp_path / "out" / "r-nomem")["api_key"] == mask_key(KEYS[2])
    assert sim.stats()["by_key"][mask_key(KEYS[2])]["agent"] > 0


async def test_demo_with_twins(tmp_path: Path) -> None:
    res = await batch("--demo", "--twin", "--output-root", tmp_path / "out", "--limit", "1", cwd=tmp_path,
                      timeout=180)
    assert res.code == 0, res.err
    for name in ("demo-a", "demo-a-nomem", "demo-b", "demo-b-nomem"):
        assert summary(tmp_path / "out" / name)["status"] == "finished", name
    assert not json.loads((tmp_path / "out" / "demo-a-nomem" / "memory.json").read_text())["workflows"]


async def test_check_shows_the_twin(tmp_path: Path, sim: SimLLMServer) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=[twin_run()])
    res = await cli("--check", "--config", cfg, cwd=tmp_path)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    twin_at = lines.index("run a-nomem")
    assert lines.index("run a") < twin_at
    block = "\n".join(lines[twin_at:twin_at + 9])
    assert str(tmp_path / "a-nomem") in block and mask_key(KEYS[0]) in block
    assert "off: no workflows in prompts, no induction (the no-memory twin of a)" in block
    assert f"twin a-nomem in {tmp_path / 'a-nomem'}" in res.out
    # Outside --batch/--check (and the TUI's --demo) the flag has nothing to act on: one line, exit 2.
    tui = await cli("--twin", "--config", cfg, cwd=tmp_path)
    assert tui.code == 2 and "--twin: needs --batch (or --check)" in tui.err and len(tui.err.splitlines()) == 1


@pytest.mark.parametrize(("runs", "args", "expected"), [
    ([twin_run(), {"name": "a-nomem", "output_dir": "b"}], (), "runs[1].name: duplicate run name 'a-nomem'"),
    ([twin_run(), {"name": "b", "output_dir": "a-nomem"}], (), "runs[1].output_dir: same directory as the twin"),
    ([twin_run(memory=False)], (), "runs[0].twin: a twin compares a run with memory"),
    ([twin_run(name="n" * 60)], (), "runs[0].twin: the run's name is too long to have a twin"),
    ([twin_run(twin=False)], ("--twin-api-key", KEYS[1]), "--twin-api-key: only used with --twin"),
    ([twin_run(twin_api_key="env:AWM_TEST_UNSET_TWIN_KEY")], (), "runs[0].twin_api_key: environment variable"),
])
async def test_twin_mistakes_are_one_line_exit_2(tmp_path: Path, sim: SimLLMServer, runs, args, expected) -> None:
    cfg = write_config(tmp_path / "c.toml", sim, key=KEYS[0], runs=runs)
    res = await batch("--config", cfg, *args, cwd=tmp_path)
    assert res.code == 2, res.out + res.err
    assert len(res.err.strip().splitlines()) == 1 and expected in res.err, res.err
    assert "Traceback" not in res.err and not (tmp_path / "a").exists()
