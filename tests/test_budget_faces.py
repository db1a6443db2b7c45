"""Spend against budgets and the prompt cache's share, as batch lines, the pane and the
fleet bar show them; and the budget settings as config and command line take them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from awm_tui.batch.report import Reporter
from awm_tui.config.errors import ConfigError
from awm_tui.config.loader import parse_config
from awm_tui.engine.events import MetricsData, MetricsSnapshot, RunFinished, RunStarted, Spend, SpendUpdated
from awm_tui.tui.run_view import RunView, apply_event, latest_fleet_spend, status_text
from awm_tui.tui.widgets.pane_stats import budget_line, llm_line

SPEND = SpendUpdated(run="r", run_spend=Spend(0.012, 0.05), fleet_spend=Spend(0.03, 1.0), key="sk-…ab12",
                     key_spend=Spend(0.02, None))
BUDGET_STOP = "budget reached: run budget $0.0500 (r): $0.0480 spent, the next call could cost $0.0040"


def reporter() -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(json_lines=False, secrets=[], out=out, err=io.StringIO()), out


def test_status_line_shows_spend_against_each_budget_set_and_the_cache() -> None:
    rep, out = reporter()
    rep.sink(RunStarted(run="r", output_dir="/o", limit=4, model="m", sandbox="local", tasks_total=4))
    rep.sink(SPEND)
    rep.status("r", MetricsData(cost=0.012, cached_tokens=12_000, cache_saving=0.0324))
    line = out.getvalue().splitlines()[-1]
    assert "spent run $0.0120/$0.0500 (24%) · fleet $0.0300/$1.0000 (3%)" in line
    assert "key" not in line.split("spent")[1].split("·")[0]   # no key budget set: not shown
    assert "12,000 cached tokens, saved $0.0324" in line


def test_status_line_without_budgets_shows_the_cost_as_before() -> None:
    rep, out = reporter()
    rep.sink(SpendUpdated(run="r", run_spend=Spend(0.01), fleet_spend=Spend(0.01)))
    rep.status("r", MetricsData(cost=0.01))
    assert out.getvalue().rstrip().endswith("$0.0100")


def test_budget_reached_is_said_as_such_with_how_to_resume() -> None:
    rep, out = reporter()
    rep.sink(RunFinished(run="r", done=2, resolved=1, stopped=True, reason=BUDGET_STOP))
    line = out.getvalue()
    assert "budget reached: run budget $0.0500 (r)" in line and "rerun with a higher budget" in line


def test_pane_folds_spend_and_says_budget_reached() -> None:
    view = apply_event(RunView(), SPEND)
    assert budget_line(view) == "budget run $0.0120/$0.0500 (24%) · fleet $0.0300/$1.0000 (3%)"
    assert budget_line(RunView()) == ""
    view = apply_event(view, MetricsSnapshot(run="r", metrics=MetricsData(cost=0.01, cached_tokens=900)))
    assert "900 cached tokens" in llm_line(view)
    view = apply_event(view, RunFinished(run="r", done=2, resolved=1, stopped=True, reason=BUDGET_STOP))
    assert status_text(view).startswith("budget reached · 2 done")
    assert latest_fleet_spend([RunView(), view]) == Spend(0.03, 1.0)


def test_fleet_bar_shows_the_fleet_budget_only_when_set() -> None:
    from awm_tui.tui.widgets.fleet_bar import FleetBar, FleetTotals

    bar = FleetBar()
    bar.totals = FleetTotals(panes=2, active=1, cost=0.5, budget=2.0, spent=0.75)
    assert "cost $0.5000 (budget $0.7500/$2.0000, 38%)" in bar.render().plain
    bar.totals = FleetTotals(panes=2, active=1, cost=0.5)
    assert "budget" not in bar.render().plain


def test_budgets_in_config(tmp_path: Path) -> None:
    loaded = parse_config({"fleet": {"budget": 25}, "llm": {"model": "x", "key_budget": 5,
                                                             "caching_prompt": False,
                                                             "cache_read_input_token_cost": 3e-7},
                           "runs": [{"name": "a", "output_dir": "out", "budget": 2.5}]},
                          source="c.toml", base_dir=tmp_path)
    config = loaded.config
    assert config.fleet.budget == 25 and config.runs[0].budget == 2.5
    profile = config.llm["llm"]
    assert (profile.key_budget, profile.caching_prompt, profile.cache_read_input_token_cost) == (5, False, 3e-7)
    with pytest.raises(ConfigError) as bad:
        parse_config({"fleet": {"budget": -1}}, source="c.toml", base_dir=tmp_path)
    assert "fleet" in str(bad.value) and "budget" in str(bad.value)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf"])
def test_a_bad_budget_flag_is_one_line_and_exit_2(value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "awm_tui", "--batch", "--demo", "--budget", value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    # argparse's usage, then the one line naming the flag and what it takes
    assert done.stderr.strip().splitlines()[-1].startswith("awm-tui: error: argument --budget: ")


def test_budget_flag_sets_the_fleet_budget(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[llm]\nmodel = "x"\napi_key = "sk-test-0123456789abcdef"\n[fleet]\nbudget = 9\n')
    done = subprocess.run([sys.executable, "-m", "awm_tui", "--check", "--config", str(config),
                           "--output-dir", str(tmp_path / "o"), "--budget", "$1.50"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "budget $1.50" in done.stdout


def test_spend_events_round_trip_through_events_jsonl() -> None:
    """`--json` and events.jsonl carry SpendUpdated as JSON; reading it back gives the event."""
    import json

    from awm_tui.engine.events import event_from_dict

    again = event_from_dict(json.loads(json.dumps(SPEND.to_dict())))
    assert again == SPEND


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_batch_stops_at_the_fleet_budget_and_says_so(tmp_path: Path) -> None:
    import json

    done = subprocess.run([sys.executable, "-m", "awm_tui", "--batch", "--demo", "--output-root", str(tmp_path),
                           "--budget", "0.001", "--status-every", "0"], capture_output=True, text=True, timeout=170)
    assert done.returncode == 1, done.stderr     # the runs did not reach their limit
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout.count("budget reached: fleet budget $0.0010: ") >= 2
    for run in ("demo-a", "demo-b"):
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert summary["status"] == "stopped" and summary["reason"].startswith("budget reached: fleet budget")
        assert summary["cost"] <= 0.001


def test_the_report_counts_cached_tokens_of_every_call(tmp_path: Path) -> None:
    """`awm-tui report --json`: cached tokens summed from events.jsonl, every session's calls."""
    import json

    from awm_tui.engine.events import LLMCall
    from awm_tui.report.data import read_run

    calls = [LLMCall(run="r", purpose="agent", latency_s=1.0, prompt_tokens=1000, cached_tokens=800),
             LLMCall(run="r", purpose="induction", latency_s=1.0, prompt_tokens=500, cached_tokens=0),
             LLMCall(run="r", purpose="agent", latency_s=1.0, prompt_tokens=1200, cached_tokens=900)]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(c.to_dict()) + "\n" for c in calls))
    report = read_run(tmp_path)
    assert (report.prompt_tokens, report.cached_tokens) == (2700, 1700)
