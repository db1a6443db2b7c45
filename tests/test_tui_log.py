"""The pane log under a flood: bounded, newest lines on screen, the reader's place kept; paint turns."""

from __future__ import annotations

from textual.app import App, ComposeResult

from awm_tui.tui.widgets.log_view import PaneLog
from awm_tui.tui.widgets.paint_turns import PaintTurns

from tests.plugins.tui import screen_text


class LogApp(App):
    def __init__(self, max_lines: int) -> None:
        super().__init__()
        self.max_lines = max_lines

    def compose(self) -> ComposeResult:
        yield PaneLog(max_lines=self.max_lines)


def rows(app: App) -> list[str]:
    return [row.strip("▁▂▃▄▅▆▇█▉▊▋▌▍▎▏ ") for row in screen_text(app).splitlines()]


async def painted(pilot) -> None:
    """Until every log has had its paint turn (a frame each)."""
    turns = PaintTurns.of(pilot.app)
    for _ in range(100):
        await pilot.pause()
        if not turns.pending:
            break
    await pilot.pause()


async def test_a_full_log_shows_its_newest_lines_in_order() -> None:
    app = LogApp(max_lines=50)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.query_one(PaneLog)
        log.add_lines(f"line {i}" for i in range(30))
        await painted(pilot)
        assert "line 29" in rows(app)
        # Past the cap: the oldest go, and what is on screen is the newest, not the strips
        # rendered for the rows that were there before.
        for start in range(30, 500, 47):
            log.add_lines(f"line {i}" for i in range(start, min(start + 47, 500)))
            await painted(pilot)
        assert log.line_count == 50 and log.lines[0] == "line 450" and log.lines[-1] == "line 499"
        shown = [row for row in rows(app) if row.startswith("line ")]
        assert shown and shown[-1] == "line 499"
        assert shown == [f"line {i}" for i in range(500 - len(shown), 500)]


async def test_a_reader_scrolled_up_keeps_their_rows_when_old_lines_drop() -> None:
    app = LogApp(max_lines=100)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.query_one(PaneLog)
        log.add_lines(f"line {i}" for i in range(100))
        await painted(pilot)
        log.scroll_to(y=40, animate=False, immediate=True)
        await pilot.pause()
        before = [row for row in rows(app) if row.startswith("line ")]
        assert before[0] == "line 40"
        log.add_lines(f"line {i}" for i in range(100, 110))  # 10 dropped from the top
        await painted(pilot)
        assert log.lines[0] == "line 10"
        assert [row for row in rows(app) if row.startswith("line ")] == before  # not shifted, not followed


async def test_paint_turns_paint_each_owner_once_in_the_order_asked() -> None:
    app = App()
    painted_order: list[str] = []
    async with app.run_test() as pilot:
        turns = PaintTurns.of(app)
        for owner in ("a", "b", "a", "c"):
            turns.ask(owner, lambda owner=owner: painted_order.append(owner))
        assert painted_order == []  # at their turns, not inside the caller
        await painted(pilot)
        assert painted_order == ["a", "b", "c"]
        turns.ask("d", lambda: painted_order.append("d"))
        turns.cancel("d")
        await painted(pilot)
        assert painted_order == ["a", "b", "c"]


def test_a_line_is_measured_in_the_cells_rich_renders_it_in() -> None:
    from rich.cells import cell_len

    from awm_tui.tui.widgets.log_view import _cells, _clean

    for line in ["plain", "step 3 $ pytest → 0", "✗ failed", "漢字 wide", "tab\there", "esc\x1b[0m",
                 "bell\x07", "e\u0301 combining", "emoji 🎉 done", ""]:
        assert _cells(_clean(line)) == cell_len(_clean(line)), line
