"""Pure parts of the TUI: event folding, the relay's merging, cross-pane checks, themes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from awm_tui.engine.events import (
    AgentStep, LLMCall, LogLine, MetricsData, MetricsSnapshot, RunFailed, StatusChanged,
)
from awm_tui.tui.messages import MetricsArrived, RunEventsArrived
from awm_tui.tui.pane_checks import check_panes
from awm_tui.tui.relay import EventRelay
from awm_tui.tui.run_view import RunView, apply_event, log_text, spark_data, status_text
from awm_tui.tui.themes import load_themes, parse_theme
from awm_tui.tui.widgets.pane_form import FormValues
from awm_tui.tui.widgets.pane_stats import llm_line
from tests.plugins.tui import SECRET_KEY, fixed_events, sample_config


def fold(events) -> RunView:
    view = RunView()
    for event in events:
        view = apply_event(view, event)
    return view


def test_fixed_events_fold_into_the_figures_a_pane_shows():
    view = fold(fixed_events("alpha"))
    assert (view.done, view.resolved, view.limit, view.workflows) == (3, 2, 5, 2)
    assert view.metrics.evaluations_per_minute == 4.0
    assert view.evals_history == (0.0, 1.0, 2.0, 2.5, 3.0, 2.0, 4.0)
    assert status_text(view) == "running task rangeset__rangeset-4 (4/5) step 3"


@pytest.mark.parametrize(("phase", "expected"), [
    ("evaluating", "evaluating rangeset__rangeset-4"),
    ("inducing", "inducing workflows"),
])
def test_status_follows_the_phase(phase, expected):
    view = fold([*fixed_events("a"), StatusChanged(run="a", phase=phase)])
    assert status_text(view) == expected


def test_failed_run_shows_its_reason():
    view = fold([*fixed_events("a"), RunFailed(run="a", reason="401 from the model: key rejected")])
    assert status_text(view) == "failed: 401 from the model: key rejected"
    assert not view.active


async def test_relay_merges_a_flood_into_few_messages():
    posted = []
    relay = EventRelay(posted.append, log_lines=100, events_interval=0.05, metrics_interval=0.05)
    for i in range(5000):
        relay(LogLine(run="a" if i % 2 else "b", message=f"line {i}"))
    for i in range(50):
        relay(MetricsSnapshot(run="a", metrics=MetricsData(requests=i)))
    await asyncio.sleep(0.15)
    events = [m for m in posted if isinstance(m, RunEventsArrived)]
    metrics = [m for m in posted if isinstance(m, MetricsArrived)]
    assert len(events) == 1 and len(metrics) == 1
    assert len(events[0].log_lines["a"]) == 100  # bounded to the pane's log size
    assert events[0].dropped["a"] == 2400
    assert events[0].log_lines["a"][-1].endswith("line 4999")
    assert [s.metrics.requests for s in metrics[0].snapshots] == [49]  # only the latest
    relay.close()


def test_pending_metrics_batches_merge_run_by_run():
    old = MetricsArrived((MetricsSnapshot(run="a", metrics=MetricsData(requests=1)),
                          MetricsSnapshot(run="b", metrics=MetricsData(requests=1))))
    new = MetricsArrived((MetricsSnapshot(run="a", metrics=MetricsData(requests=2)),))
    assert old.can_replace(new)
    assert {s.run: s.metrics.requests for s in new.snapshots} == {"a": 2, "b": 1}


def values(name, output, key=None, profile="llm.kimi-k2", limit="5"):
    return FormValues(name=name, key=SecretStr(key) if key else None, output=output, limit=limit,
                      profile=profile)


def test_same_output_dir_written_differently_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notes = check_panes({"p1": values("a", "./runs/x"), "p2": values("b", "runs/x/"),
                         "p3": values("c", str(tmp_path / "runs" / "y"))}, sample_config().llm)
    assert [(n.field, n.level) for n in notes["p1"]] == [("output", "error")]
    assert "b" in notes["p1"][0].text and "a" in notes["p2"][0].text
    assert notes["p3"] == []


def test_key_format_and_shared_keys_are_warnings(monkeypatch):
    monkeypatch.setenv("AWM_TEST_KEY", SECRET_KEY)
    notes = check_panes({
        "p1": values("a", "o/a", key="not-a-key"),
        "p2": values("b", "o/b", key=SECRET_KEY),
        "p3": values("c", "o/c", key="env:AWM_TEST_KEY"),
        "p4": values("d", "o/d", key="env:AWM_TEST_MISSING"),
    }, sample_config().llm)
    assert [(n.field, n.level) for n in notes["p1"]] == [("key", "warning")]
    assert [(n.field, n.level) for n in notes["p2"]] == [("key", "warning")]
    assert "rate limits are shared" in notes["p3"][0].text
    assert [(n.field, n.level) for n in notes["p4"]] == [("key", "error")]
    assert all(SECRET_KEY not in n.text for ns in notes.values() for n in ns)


def test_bad_name_and_limit_are_errors():
    notes = check_panes({"p1": values("has space", "o/a", limit="0")}, sample_config().llm)
    assert {n.field for n in notes["p1"]} == {"name", "limit"}


def test_shipped_themes_load_and_ansi_is_ansi_only():
    themes, problems = load_themes()
    assert problems == []
    by_name = {t.name: t for t in themes}
    assert {"awm-dark", "awm-light", "awm-ansi"} <= set(by_name)
    ansi = by_name["awm-ansi"]
    assert ansi.ansi
    colours = [ansi.primary, ansi.secondary, ansi.accent, ansi.warning, ansi.error, ansi.success,
               ansi.foreground, ansi.background, ansi.surface, ansi.panel, *ansi.variables.values()]
    assert all(c.startswith("ansi_") or c in ("none", "reverse") for c in colours)


def test_a_broken_theme_file_is_reported_not_raised(tmp_path: Path):
    (tmp_path / "good.toml").write_text('name = "good"\nprimary = "#123456"\n')
    (tmp_path / "typo.toml").write_text('name = "typo"\nprimary = "#123456"\nprimray = "#fff"\n')
    (tmp_path / "colour.toml").write_text('name = "colour"\nprimary = "not-a-colour"\n')
    (tmp_path / "syntax.toml").write_text('name = "syntax\n')
    themes, problems = load_themes(tmp_path)
    assert [t.name for t in themes] == ["good"]
    assert len(problems) == 3 and any("primray" in p for p in problems)
    with pytest.raises(ValueError):
        parse_theme({"name": "x"}, "x.toml")


def test_a_refused_reply_logs_its_reason_never_none():
    line = log_text(AgentStep(run="a", instance_id="x__y-1", step=1, command="", exit_code=None,
                              output_preview="reply cut at max_output_tokens (512); raise it", format_error=True))
    assert line is not None and "None" not in line and "(format error)" not in line
    assert line.endswith("step 1: reply not run: reply cut at max_output_tokens (512); raise it")


def test_no_sparkline_bar_before_anything_was_evaluated():
    idle = fold([MetricsSnapshot(run="a", metrics=MetricsData())])
    assert idle.evals_history == (0.0,) and spark_data(idle) == []   # one 0.0 point drew a full bar
    busy = fold([MetricsSnapshot(run="a", metrics=MetricsData(evaluations=2, evaluations_per_minute=3.0))])
    assert spark_data(busy) == [3.0]


def test_the_served_model_is_folded_from_the_replies():
    view = fold([LLMCall(run="a", purpose="agent", latency_s=1.0, model="gemma-3-270m-it"),
                 MetricsSnapshot(run="a", metrics=MetricsData(truncated_replies=2))])
    assert view.served_model == "gemma-3-270m-it"
    assert "gemma-3-270m-it" in llm_line(view) and "cut at max tokens 2" in llm_line(view)
    assert "tokens ~" not in llm_line(view)


def test_estimated_tokens_are_marked_in_the_pane():
    """A stream without usage (llama-cpp-python): the pane's token figures say they are estimates."""
    view = fold([LLMCall(run="a", purpose="agent", latency_s=1.0, prompt_tokens=900, completion_tokens=50,
                         usage_estimated=True, instance_id="t"),
                 MetricsSnapshot(run="a", metrics=MetricsData(prompt_tokens=900, completion_tokens=50))])
    assert view.tokens_estimated and "tokens ~900/50" in llm_line(view)


def test_the_textual_private_hook_the_pane_log_uses_is_there():
    """PaneLog keeps its scrollbars right through Widget._scroll_update (Textual has no public
    call for it); pyproject pins the Textual range this was checked with. An upgrade that drops
    or renames the hook fails here, not as a log whose scrollbar stops following."""
    import inspect

    from textual.widget import Widget

    assert list(inspect.signature(Widget._scroll_update).parameters) == ["self", "virtual_size"]


def test_the_pane_shows_an_image_pull_and_forgets_it_when_done() -> None:
    from awm_tui.engine.events import ImagePull

    image = "swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"
    view = apply_event(RunView(), StatusChanged(run="r", phase="pulling", instance_id="psf__requests-2317"))
    assert view.active and status_text(view) == "pulling the image of psf__requests-2317"
    view = apply_event(view, ImagePull(run="r", instance_id="psf__requests-2317", image=image, layers_done=3,
                                       layers_total=7, bytes_done=412_000_000, bytes_total=980_000_000,
                                       free_bytes=61_200_000_000))
    assert status_text(view) == f"pulling {image} (3/7 layers, 412/980 MB, 61.2 GB free)"
    view = apply_event(view, ImagePull(run="r", instance_id="psf__requests-2317", image=image, done=True))
    assert view.pull is None


def test_a_form_not_yet_composed_reads_as_its_initial_values():
    """A pane is listed as soon as it is added; a sibling's edit checked before this form is
    composed used to raise NoMatches('#key') and take the app down (seen at start-up on a
    loaded machine, in a snapshot run)."""
    from awm_tui.tui.widgets.pane_form import PaneForm

    form = PaneForm(name="beta", output="./outputs/beta", limit=3, profile="llm.sim", profiles={},
                    key=SecretStr(SECRET_KEY), workers=2, budget=1.5)
    values = form.values()
    assert (values.name, values.output, values.limit, values.profile, values.workers, values.budget) == \
        ("beta", "./outputs/beta", "3", "llm.sim", "2", "1.5")
    assert values.key is not None and values.key.get_secret_value() == SECRET_KEY
    notes = check_panes({"pane-1": values}, sample_config().llm)
    form.show_notes(notes["pane-1"])   # nothing to mark yet: the screen checks again once it is mounted
