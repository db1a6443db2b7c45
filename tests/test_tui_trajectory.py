"""The trajectory viewer: opened from the memory browser's task table and with f4
from a pane, driven by the Pilot against a real run; snapshots of a fixed
trajectory (written with the engine's own prompt and observation templates) at
two sizes in two themes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import DataTable, Input, Static, TabbedContent

from awm_tui.engine import prompts, protocol
from awm_tui.demo import DemoEnvironment
from awm_tui.engine.state import Memory, OutputLayout, Workflow
from awm_tui.engine.tasks import load_dataset
from awm_tui.tui.app import AWMApp
from awm_tui.tui.screens.memory import MemoryScreen
from awm_tui.tui.screens.trajectory import StepView, TrajectoryScreen
from tests.plugins.tui import FrozenClock, RecordingFleet, sample_config, settle, wait_until
from tests.test_tui_memory_and_dirs import open_memory, show_tab
from tests.test_tui_snapshots import SIZES, THEMES

INSTANCE = "textkit__textkit-4"
PATCH = """diff --git a/textkit/slugify.py b/textkit/slugify.py
--- a/textkit/slugify.py
+++ b/textkit/slugify.py
@@ -3,6 +3,7 @@
 import re
+import unicodedata
-    slug = _NON_ALNUM.sub(sep, text.lower()).strip(sep)
+    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
+    slug = _NON_ALNUM.sub(sep, ascii_text.lower()).strip(sep)
"""


def write_trajectory(out: Path) -> Path:
    """One finished task as a run records it: system, prompt with workflows, replies, observations."""
    task = load_dataset("sample").get(INSTANCE)
    workflow = Workflow(id="wf-001", title="Locate, patch and verify a bug fix", created_at=0, updated_at=0,
                        steps=["Find {file} with grep -rn '{symbol}'", "Apply the fix with git apply",
                               "Run the tests, then submit"])
    prompt = prompts.instance_prompt(task, "/testbed", Memory.to_prompt_block([workflow]))
    steps = [
        ("Following the workflow: find the slug code.", "cd /testbed && grep -rn 'def slugify' textkit", 0,
         "textkit/slugify.py:11:def slugify(text: str, sep: str = \"-\") -> str:\n"),
        ("Reproduce the bug first.", "cd /testbed && python3 -c 'import textkit; print(textkit.slugify(\"Crème\"))'",
         0, "cr-me\n"),
        ("Apply the fix.", f"cd /testbed && git apply <<'AWM_PATCH'\n{PATCH}AWM_PATCH", 0, ""),
        ("Run the tests.", "cd /testbed && python3 -m pytest -q tests/test_slugify.py", 1,
         "F.....\nFAILED tests/test_slugify.py::test_basic - AssertionError\n1 failed, 5 passed\n"),
    ]
    messages = [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": prompt}]
    for thought, command, code, output in steps:
        messages.append({"role": "assistant", "content": f"THOUGHT: {thought}\n\n```bash\n{command}\n```"})
        messages.append({"role": "user", "content": prompts.observation(code, output, truncated=False,
                                                                         timed_out=False, timeout_s=60)})
    messages.append({"role": "assistant", "content": "Done, I think."})  # no command block
    messages.append({"role": "user", "content": prompts.format_error("no ```bash fenced block found")})
    messages.append({"role": "assistant",
                     "content": f"THOUGHT: Submitting.\n\n```bash\n{protocol.SUBMIT_COMMAND}\n```"})
    evaluation = {"instance_id": INSTANCE, "resolved": False, "timings": {"tests_s": 2.1, "total_s": 3.4},
                  "tests": {"resolved": False,
                            "FAIL_TO_PASS": {"status": {"tests/test_issue_4.py::test_accents": "PASSED"},
                                             "passed": 1, "failed": 0, "missing": 0},
                            "PASS_TO_PASS": {"status": {"tests/test_slugify.py::test_basic": "FAILED",
                                                        "tests/test_wrap.py::test_short": "PASSED"},
                                             "passed": 1, "failed": 1, "missing": 0},
                            "output_tail": "FAILED tests/test_slugify.py::test_basic\n1 failed, 2 passed"},
                  "speedup": None}
    path = OutputLayout.of(out).trajectory(INSTANCE)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"instance_id": INSTANCE, "exit_status": "Submitted",
                                "injected_workflows": ["wf-001"], "messages": messages, "patch": PATCH,
                                "evaluation": evaluation}))
    return path


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


async def loaded(pilot, screen: TrajectoryScreen) -> None:
    await wait_until(pilot, lambda: screen.trajectory is not None and len(screen.query(StepView)) == len(screen.steps),
                     what="the trajectory read")
    await pilot.pause()


# -- snapshots ------------------------------------------------------------------------------------

@pytest.fixture
def fixed_trajectory(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    write_trajectory(Path("outputs/alpha"))
    yield Path("outputs/alpha")
    monkeypatch.undo()
    time.tzset()


def snapshot_app(theme: str) -> AWMApp:
    fleet = RecordingFleet()
    return AWMApp(sample_config(), theme=theme, fleet_factory=lambda config, sink: fleet, clock=FrozenClock())


async def open_viewer(pilot) -> None:
    app = pilot.app
    await app.panes_ready.wait()
    screen = TrajectoryScreen(Path("outputs/alpha"), INSTANCE, "alpha")
    await app.push_screen(screen)
    await loaded(pilot, screen)
    screen.query_one("#step-search", Input).cursor_blink = False
    screen.query_one("#step-4", StepView).collapsed = False  # the failing test run, open
    screen.query_one("#step-4", StepView).focus()
    await pilot.pause()


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_trajectory_steps_snapshot(snap_compare, fixed_trajectory, theme, size):
    assert snap_compare(snapshot_app(theme), terminal_size=size, run_before=open_viewer)


# -- what the screen shows, from the file ---------------------------------------------------------

async def test_viewer_shows_steps_prompt_patch_and_verdict(fixed_trajectory):
    app = snapshot_app("awm-dark")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.panes_ready.wait()
        screen = TrajectoryScreen(fixed_trajectory, INSTANCE, "alpha")
        await app.push_screen(screen)
        await loaded(pilot, screen)
        title = text_of(screen.query_one("#trajectory-title", Static))
        assert INSTANCE in title and "not resolved" in title and "6 step(s)" in title and "wf-001" in title

        views = list(screen.query(StepView))
        assert [v.step.exit_code for v in views] == [0, 0, 0, 1, None, None]
        assert views[3].step.command == "cd /testbed && python3 -m pytest -q tests/test_slugify.py"
        assert views[3].step.reasoning == "Run the tests."  # the THOUGHT, without the command block
        assert "1 failed, 5 passed" in text_of(views[3].query_one(".output", Static))
        assert views[4].step.command is None and "no ```bash fenced block" in views[4].step.note
        assert all(v.collapsed for v in views)

        # search: only matching steps stay, opened; escape clears the search first
        await pilot.press("slash")
        assert screen.query_one("#step-search", Input).has_focus
        await pilot.press(*"FAILED")
        await pilot.pause()
        shown = [v.step.number for v in views if v.display and not v.has_class("-hidden")]
        assert shown == [4] and not views[3].collapsed
        assert "1 of 6 step(s)" in text_of(screen.query_one("#search-status", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert not [v for v in views if v.has_class("-hidden")] and app.screen is screen

        # the prompt, its workflows block highlighted; the patch; the evaluation's log
        prompt = screen.query_one("#prompt", Static).content
        block = prompt.plain[prompt.plain.index(protocol.WORKFLOWS_OPEN):]
        assert "Locate, patch and verify a bug fix" in block
        start = prompt.plain.index(protocol.WORKFLOWS_OPEN)
        assert any(s.start == start and "accent" in str(s.style) for s in prompt.spans)
        assert "+import unicodedata" in text_of(screen.query_one("#patch", Static))
        evaluation = text_of(screen.query_one("#evaluation", Static))
        assert evaluation.startswith("not resolved")
        assert "FAILED   tests/test_slugify.py::test_basic" in evaluation and "output_tail" in evaluation

        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen


async def test_missing_trajectory_is_a_notice_not_a_crash(tmp_path):
    app = snapshot_app("awm-dark")
    async with app.run_test(size=(100, 30)) as pilot:
        await app.panes_ready.wait()
        screen = TrajectoryScreen(tmp_path, "nobody__nothing-1")
        await app.push_screen(screen)
        await settle(app, "trajectory")
        await pilot.pause()
        title = text_of(screen.query_one("#trajectory-title", Static))
        assert "nobody__nothing-1.json: no trajectory recorded" in title
        assert app.screen is screen


# -- opened from the memory browser and from a pane, after a real run -----------------------------

@pytest.mark.slow
async def test_opened_from_the_task_table_and_with_f4(tmp_path):
    async with DemoEnvironment(tmp_path / "root", runs=1, limit=2) as demo:
        app = AWMApp(demo.config, output_root=tmp_path / "root")
        async with app.run_test(size=(120, 40)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("ctrl+s")
            await settle(app)
            await app.fleet.wait()
            await pilot.pause()
            out = tmp_path / "root" / "demo-a"
            finished = list(json.loads((out / "checkpoint.json").read_text())["finished"])
            assert len(finished) == 2

            memory = await open_memory(pilot, app)
            await show_tab(pilot, memory, "tasks-tab")
            table = memory.query_one("#tasks", DataTable)
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, TrajectoryScreen), what="the viewer")
            viewer = app.screen
            await loaded(pilot, viewer)
            recorded = json.loads((out / "trajectories" / f"{finished[0]}.json").read_text())
            assert viewer.instance_id == finished[0]
            replies = [m for m in recorded["messages"] if m["role"] == "assistant"]
            assert len(viewer.query(StepView)) == len(replies)
            assert [v.step.command for v in viewer.query(StepView)][-1] == protocol.SUBMIT_COMMAND
            await pilot.press("escape")
            assert isinstance(app.screen, MemoryScreen)
            await pilot.press("f4")  # a pane action: off while the browser hides the panes
            await settle(app, "read")
            await pilot.pause()
            assert isinstance(app.screen, MemoryScreen)
            await pilot.press("escape")

            await pilot.press("f4")  # the pane's last finished task
            await wait_until(pilot, lambda: isinstance(app.screen, TrajectoryScreen), what="the viewer (f4)")
            assert app.screen.instance_id == finished[-1]
            await loaded(pilot, app.screen)
            assert app.screen.query_one(TabbedContent).active == "steps-tab"
