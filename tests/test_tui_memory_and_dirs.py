"""The memory browser, old output directories, key field forms and broken theme files,
driven by the Pilot against the real engine and the simulated model (DemoEnvironment).

What the screens show is checked against the files the runs wrote (memory.json,
buffer.json, checkpoint.json, events.jsonl), never against our own code's idea of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import Button, DataTable, Input, OptionList, Static, TabbedContent

from awm_tui.demo import DemoEnvironment
from awm_tui.engine.state import OutputLayout, load_state
from awm_tui.tui.app import AWMApp
from awm_tui.tui.screens.memory import MemoryScreen
from tests.plugins.tui import run_finished, screen_text, settle, type_into, wait_until

pytestmark = pytest.mark.slow


def load(path: Path):
    return json.loads(path.read_text())


def events_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]


def static_text(widget: Static) -> str:
    return Content.from_markup(str(widget.content)).plain


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_memory(pilot, app: AWMApp) -> MemoryScreen:
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: isinstance(app.screen, MemoryScreen), what="the memory browser")
    screen = app.screen
    await settle(app, "memory")
    await wait_until(pilot, lambda: screen.summary is not None, what="memory.json read")
    await pilot.pause()
    return screen


async def show_tab(pilot, screen: MemoryScreen, tab: str) -> None:
    screen.query_one(TabbedContent).active = tab
    await pilot.pause()


# -- 1. the memory browser after a real run ------------------------------------------------------

async def test_memory_browser_shows_what_the_run_wrote(tmp_path):
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=3) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(120, 40)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+s")
            await settle(app)
            await run_finished(pilot, app)
            out = tmp_path / "root" / "demo-a"
            memory = load(out / "memory.json")
            buffer = load(out / "buffer.json")
            checkpoint = load(out / "checkpoint.json")
            assert len(checkpoint["finished"]) == 3
            assert memory["history"], "induce_every=2 over 3 tasks: at least one induction"

            screen = await open_memory(pilot, app)
            title = static_text(screen.query_one("#memory-title", Static))
            assert f"version {memory['version']}" in title
            assert f"{len(memory['workflows'])} workflow(s) · 3 task(s) done" in title

            # Workflows: every one of memory.json, its steps, sources and use counts.
            options = screen.query_one("#workflow-list", OptionList)
            assert options.option_count == len(memory["workflows"])
            detail = screen.query_one("#workflow-text", Static)
            for index, workflow in enumerate(memory["workflows"]):
                options.highlighted = index
                await pilot.pause()
                label = str(options.get_option_at_index(index).prompt)
                assert label == f"{workflow['id']} {workflow['title']} ({workflow['successes']}/{workflow['uses']})"
                text = static_text(detail)
                assert text.startswith(f"{workflow['title']}  ({workflow['id']}, v{workflow['version']})")
                assert f"used in {workflow['uses']} task(s)" in text
                for number, step in enumerate(workflow["steps"], 1):
                    assert f"{number}. {step}" in text
                assert "sources: " + ", ".join(workflow["source_instances"]) in text
            assert memory["workflows"][-1]["title"] in screen_text(app)  # on screen, not only in a widget

            # Inductions: newest first, what each added, changed and removed.
            await show_tab(pilot, screen, "inductions-tab")
            rows = table_rows(screen.query_one("#inductions", DataTable))
            expected = [[str(r["version"]), r["mode"], ", ".join(r["added"]) or "–",
                         ", ".join(r["changed"]) or "–", ", ".join(r["removed"]) or "–"]
                        for r in reversed(memory["history"])]
            assert [[row[0], *row[2:]] for row in rows] == expected
            assert any(row[3] != "–" for row in rows)  # the first induction added workflows

            # Tasks: which workflows each task received (from which memory version), and
            # whether it was resolved.
            await show_tab(pilot, screen, "tasks-tab")
            rows = table_rows(screen.query_one("#tasks", DataTable))
            expected = [[e["instance_id"], "yes" if e["resolved"] else "no", f"v{e['memory_version']}",
                         ", ".join(e["injected_workflows"]) or "none"] for e in buffer["experiences"]]
            assert sorted(rows) == sorted(expected)
            assert {row[0] for row in rows} == set(checkpoint["finished"])
            assert any(row[3] != "none" for row in rows)  # the task after the induction got workflows
            assert any(row[2] != "v0" for row in rows)  # ...from the memory version it made
            for row in rows:  # the same as the task's trajectory file says
                trajectory = load(out / "trajectories" / f"{row[0]}.json")
                assert row[3] == (", ".join(trajectory["injected_workflows"]) or "none")
                assert row[2] == f"v{trajectory['memory_version']}"

            await pilot.press("ctrl+s", "ctrl+l")  # pane keys are off here: no hidden run, no second browser
            await settle(app)
            assert app.fleet.active == [] and not app.main_screen.panes[0].running
            assert len(app.screen_stack) == 2

            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is app.main_screen, what="the main screen")
            await open_memory(pilot, app)
            await pilot.press("ctrl+q")  # quits from inside the browser too (no run active)
            await settle(app, "shutdown")
        assert app.return_code == 0


# -- the memory browser on fixed files: a snapshot -----------------------------------------------

FIXED_TS = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def write_fixed_output(out: Path) -> None:
    """memory.json, buffer.json and checkpoint.json as a stopped run would leave them."""
    out.mkdir(parents=True)

    def workflow(number, title, steps, sources, uses, successes, version=1, description=""):
        return {"id": f"wf-{number:03d}", "title": title, "description": description, "steps": steps,
                "source_instances": sources, "repos": ["awm-samples/minicsv"], "version": version,
                "created_at": FIXED_TS, "updated_at": FIXED_TS + 60 * version, "uses": uses,
                "successes": successes}

    first = workflow(1, "Locate, patch and verify a bug fix",
                     ["cd {repo_path} && git status", "grep -n '{function}' {file}",
                      "python3 -m pytest -q [tests]", "echo AWM_SUBMIT_PATCH"],
                     ["minicsv__minicsv-3", "minicsv__minicsv-7"], uses=2, successes=1, version=2,
                     description="Read, fix, test, submit.")
    second = workflow(2, "Check list[int] annotations [typing]", ["grep -n 'List\\[' {file}"],
                      ["minicsv__minicsv-7"], uses=0, successes=0)
    memory = {
        "format": 1, "version": 2, "next_id": 4, "workflows": [first, second],
        "history": [
            {"version": 1, "at": FIXED_TS + 60, "mode": "llm", "added": ["wf-001", "wf-003"],
             "changed": [], "removed": [], "sources": ["minicsv__minicsv-3", "minicsv__minicsv-7"]},
            {"version": 2, "at": FIXED_TS + 120, "mode": "rule", "added": ["wf-002"],
             "changed": ["wf-001"], "removed": ["wf-003"], "sources": ["minicsv__minicsv-7"]},
        ],
    }
    tasks = [("minicsv__minicsv-3", True, []), ("minicsv__minicsv-7", True, []),
             ("minicsv__minicsv-12", False, ["wf-001"]), ("textkit__textkit-2", True, ["wf-001"])]
    buffer = {"version": 1, "experiences": [
        {"instance_id": iid, "repo": "awm-samples/" + iid.split("__")[0], "problem": "a bug",
         "resolved": resolved, "reward": float(resolved), "exit_status": "Submitted",
         "injected_workflows": injected, "finished_at": FIXED_TS + i * 30}
        for i, (iid, resolved, injected) in enumerate(tasks)]}
    checkpoint = {"version": 1, "run_name": "fixed", "finished": {
        iid: {"instance_id": iid, "exit_status": "Submitted", "resolved": resolved,
              "reward": float(resolved), "steps": 5, "finished_at": FIXED_TS + i * 30}
        for i, (iid, resolved, _) in enumerate(tasks)}}
    for name, data in (("memory.json", memory), ("buffer.json", buffer), ("checkpoint.json", checkpoint)):
        (out / name).write_text(json.dumps(data, indent=2))


def test_memory_browser_snapshot(snap_compare, monkeypatch, tmp_path):
    from tests.plugins.tui import FrozenClock, RecordingFleet, sample_config

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)  # the output dir is relative: the title is the same on every machine
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    write_fixed_output(tmp_path / "outputs" / "alpha")
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=1), theme="awm-dark", fleet_factory=lambda config, sink: fleet,
                 clock=FrozenClock())

    async def browse(pilot) -> None:
        await app.panes_ready.wait()
        await settle(app, "read")
        await open_memory(pilot, app)
        for field in app.query(Input):
            field.cursor_blink = False
        text = screen_text(app)
        assert "Check list[int] annotations [typing]" in text
        assert "version 2 · 2 workflow(s) · 4 task(s) done" in text
        assert len(app._notifications) == 0, [n.message for n in app._notifications]
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(120, 40), run_before=browse)
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_memory_browser_shows_task_ids_literally(tmp_path, monkeypatch):
    """Task ids come from the user's dataset: brackets in one are text, not markup."""
    from tests.plugins.tui import FrozenClock, RecordingFleet, sample_config

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs" / "alpha"
    write_fixed_output(out)
    odd = "pkg__case-[b]1[/b]"
    checkpoint = load(out / "checkpoint.json")
    checkpoint["finished"][odd] = {"instance_id": odd, "exit_status": "Submitted", "resolved": True,
                                   "reward": 1.0, "steps": 3, "finished_at": FIXED_TS + 200}
    (out / "checkpoint.json").write_text(json.dumps(checkpoint))
    buffer = load(out / "buffer.json")
    buffer["experiences"].append({**buffer["experiences"][0], "instance_id": odd, "finished_at": FIXED_TS + 200})
    (out / "buffer.json").write_text(json.dumps(buffer))
    fleet = RecordingFleet()
    app = AWMApp(sample_config(runs=1), theme="awm-dark", fleet_factory=lambda config, sink: fleet,
                 clock=FrozenClock())
    async with app.run_test(size=(120, 40)) as pilot:
        await app.panes_ready.wait()
        await settle(app, "read")
        screen = await open_memory(pilot, app)
        await show_tab(pilot, screen, "tasks-tab")
        await pilot.pause()
        assert odd in screen_text(app)


# -- 2. an old output directory: opened, shown, resumed ------------------------------------------

async def open_dir(pilot, app: AWMApp, path: Path):
    before = len(app.main_screen.panes)
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: len(app.screen_stack) == 2, what="the open dialog")
    app.screen.query_one("#path", Input).value = str(path)  # a long tmp path: typing it costs seconds
    await pilot.press("end", "enter")
    await wait_until(pilot, lambda: len(app.main_screen.panes) == before + 1, what="a pane for the directory")
    await settle(app, "read")
    await pilot.pause()
    return app.main_screen.panes[-1]


async def test_an_interrupted_run_opens_and_resumes_only_its_unfinished_tasks(tmp_path):
    root = tmp_path / "root"
    out = root / "demo-a"
    async with DemoEnvironment(root, runs=1, limit=3) as demo:
        # A run stopped mid-way: two tasks checkpointed, the third cut off.
        app = AWMApp(demo.config, output_root=root)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.panes_ready.wait()
            first = app.main_screen.panes[0]
            await pilot.press("ctrl+s")
            await settle(app)
            await wait_until(pilot, lambda: first.view.done >= 1, timeout=60, what="a task done")
            # Committed (journal.jsonl) when the pane shows it; checkpoint.json follows within a second.
            assert first.view.done == len(load_state(OutputLayout.of(out)).checkpoint.finished) == 1
            await wait_until(pilot, lambda: len(load(out / "checkpoint.json")["finished"]) >= 1, timeout=5,
                             what="checkpoint.json following the journal")
            # After the second task (and the induction it may trigger) the third one starts.
            await wait_until(pilot, lambda: first.view.done >= 2 and first.view.phase == "running",
                             timeout=60, what="two tasks done, the third started")
            await pilot.press("ctrl+t")
            await settle(app)
            await run_finished(pilot, app)
            assert first.view.phase == "stopped"
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        assert app.return_code == 0
        before = load(out / "checkpoint.json")["finished"]
        memory = load(out / "memory.json")
        assert len(before) == 2
        # Two successes with induce_every=2: the induction ran before the third task started.
        assert bool(memory["workflows"]) == all(r["resolved"] for r in before.values())
        resolved_before = sum(r["resolved"] for r in before.values())

        # A new session opens the directory: its checkpoint and memory show, Start resumes.
        app = AWMApp(demo.config.model_copy(update={"runs": []}), output_root=root)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.panes_ready.wait()
            pane = await open_dir(pilot, app, out)
            assert pane.values().name == "demo-a" and pane.values().output == str(out)
            assert (pane.view.done, pane.view.resolved, pane.view.workflows) == (
                2, resolved_before, len(memory["workflows"]))
            announced = [line for line in pane.log_view.lines if "Start resumes" in line]
            assert len(announced) == 1, announced
            assert (f"checkpoint in {out}: 2 done, {resolved_before} resolved, "
                    f"{len(memory['workflows'])} workflow(s)") in announced[0]
            text = screen_text(app)
            assert f"idle · checkpoint: 2 done, {resolved_before} resolved (Start resumes)" in text
            browser = await open_memory(pilot, app)
            assert browser.query_one("#workflow-list", OptionList).option_count == len(memory["workflows"])
            assert len(table_rows(browser.query_one("#tasks", DataTable))) >= 2
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is app.main_screen, what="the main screen")

            await type_into(pilot, pane.form.query_one("#limit", Input), "3")
            await type_into(pilot, pane.form.query_one("#key", Input), "sim-resume-key-0001")
            await pilot.press("tab")
            await pilot.click(pane.form.query_one("#start", Button))
            await settle(app)
            assert app.fleet.active == ["demo-a"]
            await run_finished(pilot, app)

            after = load(out / "checkpoint.json")["finished"]
            assert len(after) == 3 and set(before) < set(after)
            assert {k: v["finished_at"] for k, v in before.items()} == {
                k: after[k]["finished_at"] for k in before}  # the old results were not redone
            resolved = sum(r["resolved"] for r in after.values())
            assert (pane.view.phase, pane.view.done, pane.view.resolved) == ("finished", 3, resolved)
            text = screen_text(app)
            assert f"finished · 3 done, {resolved} resolved" in text
            assert f"tasks 3/3 · resolved {resolved}" in text
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        assert app.return_code == 0

    events = events_of(out)
    starts = [i for i, e in enumerate(events) if e["kind"] == "run_started"]
    assert len(starts) == 2 and events[starts[1]]["resumed"] == 2
    resumed_tasks = [e["instance_id"] for e in events[starts[1]:] if e["kind"] == "task_started"]
    assert resumed_tasks == sorted(set(after) - set(before))  # only the unfinished task ran again


# -- 3. key field forms --------------------------------------------------------------------------

ENV_SECRET = "sim-env-key-" + "5f3a9c" * 4 + "wxyz"


async def enter_key(pilot, pane, text: str) -> None:
    await type_into(pilot, pane.form.query_one("#key", Input), text)
    await pilot.press("tab")  # leaving the field takes the key out of it
    await pilot.pause()


async def test_an_env_key_resolves_from_the_environment_and_shows_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("AWM_TUI_TEST_KEY", ENV_SECRET)
    async with DemoEnvironment(tmp_path / "root", runs=0) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            pane = app.main_screen.panes[0]
            await type_into(pilot, pane.form.query_one("#limit", Input), "1")
            await enter_key(pilot, pane, "env:AWM_TUI_TEST_KEY")
            assert pane.form.query_one("#key", Input).value == ""
            assert "env:AWM_TUI_TEST_KEY = …wxyz" in screen_text(app)
            assert not pane.form.query_one("#notes", Static).display  # no error, no warning
            await pilot.press("ctrl+s")
            await settle(app)
            await run_finished(pilot, app)
            assert pane.view.phase == "finished" and pane.view.done == 1
            svg = app.export_screenshot()
            assert ENV_SECRET not in svg and ENV_SECRET[:-4] not in svg
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        # The model was called with the variable's value, not with the text "env:…".
        by_key = demo.sim.stats()["by_key"]
        assert list(by_key) == ["…wxyz"] and by_key["…wxyz"]["requests"] > 0
    for path in (tmp_path / "root").rglob("*"):
        assert path.is_dir() or ENV_SECRET.encode() not in path.read_bytes(), path


async def test_an_unset_env_key_is_an_error_and_start_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("AWM_TUI_UNSET_KEY", raising=False)
    async with DemoEnvironment(tmp_path / "root", runs=0) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            pane = app.main_screen.panes[0]
            await enter_key(pilot, pane, "env:AWM_TUI_UNSET_KEY")
            notes = static_text(pane.form.query_one("#notes", Static))
            assert notes == ("✗ key: environment variable AWM_TUI_UNSET_KEY is unset or empty; "
                             "export AWM_TUI_UNSET_KEY=… or put the key in a file and use file:PATH")  # one line
            assert pane.form.query_one("#key", Input).has_class("-error")
            assert pane.form.query_one("#start", Button).disabled
            text = screen_text(app)
            assert "env:AWM_TUI_UNSET_KEY (not set)" in text
            assert "environment variable AWM_TUI_UNSET_KEY is unset or empty" in text
            await pilot.press("ctrl+s")  # the key binding is refused with a message too
            await settle(app)
            await pilot.pause()
            assert app.fleet.active == [] and not pane.running
            assert any("fix the marked fields first" in n.message for n in app._notifications)
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        assert demo.sim.stats()["requests"] == 0


async def test_a_file_key_is_read_at_start_and_a_missing_file_refuses_it(tmp_path, monkeypatch):
    secret = "sim-file-key-" + "7d2e4b" * 4 + "qrst"
    monkeypatch.chdir(tmp_path)  # a relative path: typing a long tmp path costs seconds
    (tmp_path / "k.txt").write_text(secret + "\n")
    async with DemoEnvironment(tmp_path / "root", runs=0) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+n")
            await pilot.pause()
            first, second = app.main_screen.panes
            await type_into(pilot, first.form.query_one("#limit", Input), "1")
            await enter_key(pilot, first, "file:k.txt")
            # The reference shows (not a mask of it); two side-by-side panes cut the rest of the hint.
            key_field = first.form.query_one("#key", Input)
            assert key_field.placeholder == "file:k.txt (read at start; type to replace)"
            assert "file:k.txt" in screen_text(app)
            assert not first.form.query_one("#notes", Static).display  # no "not a key" warning
            await enter_key(pilot, second, "file:nope.txt")
            await pilot.click(second.form.query_one("#start", Button))
            await wait_until(pilot, lambda: second.form.query_one("#notes", Static).display,
                             what="the missing key file reported")
            assert "key file nope.txt does not exist" in static_text(second.form.query_one("#notes", Static))
            assert not second.running and app.fleet.active == []
            await pilot.click(first.form.query_one("#start", Button))
            await settle(app)
            await run_finished(pilot, app)
            assert first.view.phase == "finished" and first.view.done == 1
            assert secret[:-4] not in app.export_screenshot()
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        by_key = demo.sim.stats()["by_key"]
        assert list(by_key) == ["…qrst"] and by_key["…qrst"]["requests"] > 0  # the file's key, not its path
    for path in (tmp_path / "root").rglob("*"):
        assert path.is_dir() or secret.encode() not in path.read_bytes(), path


async def test_two_panes_with_the_same_key_are_warned(tmp_path, monkeypatch):
    shared = "sim-shared-9876"  # short: every character is a key press
    monkeypatch.setenv("AWM_TUI_SHARED_KEY", shared)
    async with DemoEnvironment(tmp_path / "root", runs=0) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+n")
            await pilot.pause()
            first, second = app.main_screen.panes
            await enter_key(pilot, first, shared)  # literal in one pane, env: in the other
            await enter_key(pilot, second, "env:AWM_TUI_SHARED_KEY")
            text = screen_text(app)
            assert "! key: same key as run_2 (rate limits are shared)" in text
            assert "! key: same key as run_1 (rate limits are shared)" in text
            for pane in (first, second):
                assert pane.form.query_one("#key", Input).has_class("-warning")
                assert not pane.form.query_one("#start", Button).disabled  # a warning, not an error
            assert shared not in app.export_screenshot()
            await enter_key(pilot, second, "sim-other-5432")
            assert "same key as" not in screen_text(app)
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")


# -- 4. a broken theme file ----------------------------------------------------------------------

async def test_a_broken_theme_file_falls_back_to_the_default_with_a_notice(tmp_path, monkeypatch):
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#336699"\nprimray = "#ffffff"\n')
    (themes / "torn.toml").write_text('name = "torn\n')
    (themes / "fine.toml").write_text('name = "fine"\nprimary = "#336699"\ndark = true\n')
    monkeypatch.setenv("AWM_TUI_THEMES", str(themes))
    async with DemoEnvironment(tmp_path / "root", runs=1) as demo:
        app = AWMApp(demo.config, theme="mine", output_root=tmp_path / "root")
        async with app.run_test(size=(160, 48), notifications=True) as pilot:  # toasts drawn, as live
            await app.panes_ready.wait()
            await pilot.pause()
            assert app.theme == "awm-dark"
            messages = [n.message for n in app._notifications]
            assert any("mine.toml: unknown field(s) primray" in m for m in messages), messages
            assert any(m.startswith("torn.toml: ") for m in messages), messages
            assert any("theme 'mine' is not available; using awm-dark" in m for m in messages), messages
            assert "fine" in app.available_themes  # the good file next to them still loads
            await wait_until(pilot, lambda: "theme 'mine' is not available" in screen_text(app),
                             timeout=5, what="the notice on screen")
            await pilot.press("ctrl+n")  # and the app still works
            await pilot.pause()
            assert len(app.main_screen.panes) == 2
            app.theme = "fine"
            await pilot.pause()
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        assert app.return_code == 0


async def test_a_missing_theme_directory_is_a_notice_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("AWM_TUI_THEMES", str(tmp_path / "no-such-dir"))
    async with DemoEnvironment(tmp_path / "root", runs=1) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(120, 40)) as pilot:
            await app.panes_ready.wait()
            await pilot.pause()
            assert app.theme == "awm-dark"
            assert any("no-such-dir is not a directory" in n.message for n in app._notifications)
            await pilot.press("ctrl+q")
            await settle(app, "shutdown")
        assert app.return_code == 0
