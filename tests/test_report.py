"""`awm-tui report`: output directories of real runs (the simulated model on loopback,
local sandboxes and evaluation) read into JSON and one HTML page, opened in a real
headless Chromium."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from awm_tui.cli import main
from awm_tui.engine.state import Memory, write_json_atomic
from awm_tui.config.models import AppConfig, EvalConfig, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.fleet import Fleet
from awm_tui.servers.sim_llm import SimLLMServer, SimOptions
from tests.test_engine_runs import profile_for, subset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PLAN = {  # run -> (induction mode, tasks in order)
    "alpha": ("llm", ["minicsv__minicsv-3", "minicsv__minicsv-7", "textkit__textkit-4", "textkit__textkit-9"]),
    "beta": ("rule", ["minicsv__minicsv-3", "broken__task-1", "textkit__textkit-4", "rangeset__rangeset-2"]),
    "gamma": ("rule", ["minicsv__minicsv-3", "minicsv__minicsv-7"]),  # --skip-eval, memory seeded
}
SEEDED = {"title": "Read the failing test first", "steps": ["Run pytest on {test}", "Fix {file}"],
          "repos": ["awm-samples/minicsv"]}
UNRESOLVABLE = {"alpha": "textkit__textkit-9", "beta": "rangeset__rangeset-2", "gamma": ""}
"""Each run's task that also needs a test nobody wrote: the patch is right, the task stays unresolved."""


def _dataset(root: Path, name: str, ids: list[str]) -> Path:
    """Sample tasks; `broken__task-1` has no repository snapshot, so it ends in an error."""
    path = subset(root, name, [i for i in ids if not i.startswith("broken")])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["instance_id"] == UNRESOLVABLE[name]:
            record["FAIL_TO_PASS"] = [*record["FAIL_TO_PASS"], "tests/test_nobody_wrote.py::test_it"]
    if "broken__task-1" in ids:
        broken = dict(records[0], instance_id="broken__task-1", repo_snapshot=str(root / "no-such-snapshot"))
        records.insert(ids.index("broken__task-1"), broken)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


async def _produce(root: Path) -> dict[str, Path]:
    # gamma starts with one workflow in memory and evaluates nothing: only events say what it injected
    memory = Memory()
    memory.apply_induction([SEEDED], "manual", sources=[], repos=SEEDED["repos"])
    write_json_atomic(root / "out-gamma" / "memory.json", memory.model_dump(mode="json"))  # as a past run left it
    async with SimLLMServer(SimOptions(seed=3)) as sim:
        runs = [RunConfig(name=name, llm="llm.sim", output_dir=root / f"out-{name}",
                          dataset=str(_dataset(root, name, ids)), limit=len(ids), sandbox="local",
                          induce_every=1, induction=mode, command_timeout=60, skip_eval=name == "gamma")
                for name, (mode, ids) in PLAN.items()]
        config = AppConfig(llm={"llm.sim": profile_for(sim)}, runs=runs, eval=EvalConfig(mode="local"))
        async with Fleet(config, lambda event: None, metrics_interval=0.2) as fleet:
            for run in runs:
                await fleet.start(resolve_run(config, run, api_key=SecretStr(f"sim-report-key-{run.name}-0001")))
            await fleet.wait()
    return {name: root / f"out-{name}" for name in PLAN}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    return asyncio.run(_produce(tmp_path_factory.mktemp("report-runs")))


def checkpoint(out: Path) -> dict:
    return json.loads((out / "checkpoint.json").read_text())


def report_json(capsys, *dirs: Path) -> dict:
    assert main(["report", *map(str, dirs), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def listing(out: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(out)), p.stat().st_mtime_ns) for p in out.rglob("*"))


def test_json_holds_what_the_files_hold(outputs, capsys) -> None:
    before = {name: listing(out) for name, out in outputs.items()}
    data = report_json(capsys, *outputs.values())
    assert {name: listing(out) for name, out in outputs.items()} == before  # reading touched nothing
    runs = {r["name"]: r for r in data["runs"]}
    assert list(runs) == ["alpha", "beta", "gamma"]
    # gamma: nothing evaluated, so no buffer entry; what each prompt had comes from its events
    started = [json.loads(line) for line in (outputs["gamma"] / "events.jsonl").read_text().splitlines()
               if '"task_started"' in line]
    assert [t["outcome"] for t in runs["gamma"]["tasks"]] == ["not evaluated"] * 2
    assert [t["workflows"] for t in runs["gamma"]["tasks"]] == [e["injected_workflows"] for e in started]
    assert runs["gamma"]["tasks"][0]["workflows"] == ["wf-001"]
    assert runs["gamma"]["with_workflows"] == {"tasks": 0, "resolved": 0}  # not evaluated: in neither
    for name in ("alpha", "beta"):
        out = outputs[name]
        finished = checkpoint(out)["finished"]
        run = runs[name]
        assert (run["done"], run["resolved"]) == (len(finished), sum(r["resolved"] for r in finished.values()))
        # the curve: tasks in finishing order, cumulative resolved, ending at the resolved count
        on_curve = [t for t in run["tasks"] if t["outcome"] != "error"]
        assert [t["instance_id"] for t in on_curve] == list(finished)
        assert on_curve[-1]["resolved_so_far"] == run["resolved"]
        # memory's versions are memory.json's history, each placed after the task it followed
        history = json.loads((out / "memory.json").read_text())["history"]
        assert [v["version"] for v in run["memory"]] == [h["version"] for h in history]
        assert all(1 <= v["after_tasks"] <= run["done"] for v in run["memory"])
        assert [v["added"][0]["title"] for v in run["memory"] if v["added"]]  # titles, not only ids
        # tokens are the model calls' own counts from events.jsonl
        calls = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()
                 if '"llm_call"' in line]
        assert run["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls) > 0
        assert run["cost"] == pytest.approx(sum(c["cost"] for c in calls))
        # with / without workflows: the buffer's injected ids and verdicts
        buffer = json.loads((out / "buffer.json").read_text())["experiences"]
        helped = [e for e in buffer if e["injected_workflows"]]
        assert run["with_workflows"] == {"tasks": len(helped), "resolved": sum(e["resolved"] for e in helped)}
        assert run["without_workflows"]["tasks"] == len(buffer) - len(helped) >= 1  # the first task had none
    # beta's broken task errored (never checkpointed), and alpha never ran it
    assert runs["beta"]["errors"] == 1 and "broken__task-1" not in checkpoint(outputs["beta"])["finished"]
    assert data["grid"]["broken__task-1"] == {"alpha": "not run", "beta": "error", "gamma": "not run"}
    assert data["grid"]["minicsv__minicsv-7"]["gamma"] == "not evaluated"
    assert data["grid"]["rangeset__rangeset-2"]["alpha"] == "not run"
    assert data["grid"]["textkit__textkit-9"]["beta"] == "not run"
    for instance, result in checkpoint(outputs["alpha"])["finished"].items():
        assert data["grid"][instance]["alpha"] == ("resolved" if result["resolved"] else "unresolved")
    for name, instance in UNRESOLVABLE.items():
        assert not instance or data["grid"][instance][name] == "unresolved"
    assert data["grid"]["textkit__textkit-4"] == {"alpha": "resolved", "beta": "resolved", "gamma": "not run"}


class _RunCells(HTMLParser):
    """Per run (`tr[data-run]`), the text of each `td[data-field]`; and the CSP meta."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, str]] = {}
        self.csp: str | None = None
        self.external: list[str] = []
        self._run = self._field = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content")
        for name in ("src", "href"):
            if a.get(name) and not str(a[name]).startswith(("data:", "#")):
                self.external.append(a[name])
        if tag == "tr" and "data-run" in a:
            self._run = a["data-run"]
            self.cells.setdefault(self._run, {})
        if tag == "td" and self._run and "data-field" in a:
            self._field = a["data-field"]

    def handle_endtag(self, tag):
        if tag == "td":
            self._field = None
        if tag == "tr":
            self._run = None

    def handle_data(self, data):
        if self._run and self._field:
            self.cells[self._run][self._field] = data.strip()


async def test_page_in_chromium_shows_the_checkpoints_numbers_offline(outputs, tmp_path, chromium) -> None:
    page = tmp_path / "report.html"
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "awm_tui", "report",
                                   str(outputs["alpha"]), str(outputs["beta"]), "-o", str(page)],
                                   capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {page}" in done.stdout
    assert page.stat().st_mode & 0o044 == 0o044  # readable by others (umask 022), unlike a temp file

    shot = await chromium.screenshot(page, tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    loaded = await chromium.load(page)
    cells = _RunCells()
    cells.feed(loaded.dom)
    for name in ("alpha", "beta"):
        out = outputs[name]
        finished = checkpoint(out)["finished"]
        assert cells.cells[name]["resolved"] == str(sum(r["resolved"] for r in finished.values()))
        assert cells.cells[name]["done"] == str(len(finished))
    assert cells.cells["beta"]["errors"] == "1"
    for name in ("alpha", "beta"):
        out = outputs[name]
        helped = [e for e in json.loads((out / "buffer.json").read_text())["experiences"] if e["injected_workflows"]]
        assert cells.cells[name]["with"].startswith(f"{sum(e['resolved'] for e in helped)}/{len(helped)} ")
    assert cells.csp is not None and "default-src 'none'" in cells.csp
    assert cells.external == []
    assert loaded.page_requests == []
    assert loaded.dom.count("<svg") >= 3  # curves, workflow use, cost: drawn inline


async def test_the_request_check_sees_a_page_that_fetches(tmp_path, chromium, aiohttp_server) -> None:
    """The no-request assertion above can fail: the same probe on a page that loads
    an image from a loopback server reports that request."""
    hits: list[str] = []

    async def image(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/pixel.png", image)
    server = await aiohttp_server(app)
    page = tmp_path / "fetching.html"
    page.write_text(f'<html><body><img src="http://127.0.0.1:{server.port}/pixel.png">x</body></html>')
    loaded = await chromium.load(page)
    assert loaded.page_requests == [f"http://127.0.0.1:{server.port}/pixel.png"]
    assert hits == ["/pixel.png"]


def run_cli(*argv: str, cwd: Path | None = None, block_matplotlib: bool = False) -> subprocess.CompletedProcess:
    code = ("import sys\n" + ("sys.modules['matplotlib'] = None\n" if block_matplotlib else "")
            + "from awm_tui.cli import main\nsys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_bad_directories_are_one_line_and_exit_2(outputs, tmp_path) -> None:
    line = one_line_error(run_cli("report", str(tmp_path / "missing")))
    assert str(tmp_path / "missing") in line and "no such directory" in line
    (tmp_path / "a-file").write_text("x")
    assert "a-file: not a directory" in one_line_error(run_cli("report", str(tmp_path / "a-file")))
    plain = tmp_path / "plain"
    plain.mkdir()
    line = one_line_error(run_cli("report", str(outputs["alpha"]), str(plain), cwd=tmp_path))
    assert f"{plain}: not an awm-tui output directory" in line and "--output-dir" in line
    assert list(plain.iterdir()) == []  # reading it created nothing
    assert not (tmp_path / "report.html").exists()


def test_a_corrupt_state_file_names_itself(outputs, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("memory.json", "buffer.json", "events.jsonl"):
        (broken / name).write_bytes((outputs["alpha"] / name).read_bytes())
    (broken / "checkpoint.json").write_text('{"finished": {"x": ')  # cut short by a kill
    line = one_line_error(run_cli("report", str(broken), "-o", str(tmp_path / "r.html")))
    assert str(broken / "checkpoint.json") in line and "corrupt JSON" in line
    assert not (tmp_path / "r.html").exists()
    assert (broken / "checkpoint.json").read_text() == '{"finished": {"x": '  # left for the user


def test_without_matplotlib_html_says_how_and_json_still_works(outputs, tmp_path) -> None:
    line = one_line_error(run_cli("report", str(outputs["alpha"]), block_matplotlib=True, cwd=tmp_path))
    assert "pip install 'awm-tui[report]'" in line
    done = run_cli("report", str(outputs["alpha"]), "--json", block_matplotlib=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"][0]["name"] == "alpha"
    assert not (tmp_path / "report.html").exists()


def test_every_event_reads_back_as_it_was_written(tmp_path) -> None:
    """events.jsonl as EventLog writes it, read back typed (metrics and tuples included);
    a torn last line and a kind from a newer awm-tui are skipped."""
    from awm_tui.engine.events import read_event_log
    from awm_tui.engine.state import EventLog
    from tests.plugins.tui import fixed_events

    written = fixed_events("alpha")
    assert {type(e).__name__ for e in written} >= {"MetricsSnapshot", "TaskStarted", "TaskFinished"}
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        for event in written:
            log.append(event)
    with path.open("a") as handle:
        handle.write('{"kind": "from_the_future", "run": "alpha"}\n{"kind": "log", "run": "al')
    assert read_event_log(path) == written
    assert read_event_log(path, {"task_finished"}) == [e for e in written if e.kind == "task_finished"]
    assert read_event_log(tmp_path / "missing.jsonl") == []


def test_two_directories_of_one_run_name_stay_apart(outputs, capsys) -> None:
    data = report_json(capsys, outputs["alpha"], outputs["alpha"])
    assert [r["name"] for r in data["runs"]] == ["alpha", "alpha (2)"]
    assert all(set(row) == {"alpha", "alpha (2)"} for row in data["grid"].values())
