"""Batch output for Docker hosts: a line when one goes down or comes back, the host in each
run's status line, host lines with the status lines, and every HostStatus in --json."""

from __future__ import annotations

import io
import json

from awm_tui.engine.events import HostStatus, MetricsData, RunStarted, SandboxPlaced, TaskStarted
from awm_tui.batch.report import Reporter

URL = "tcp://127.0.0.1:24750"


def host(up: bool) -> HostStatus:
    return HostStatus(run="", url=URL, up=up, in_use=1 if up else 0, capacity=2, exec_per_s=4.0, images=3,
                      free_bytes=5_000_000_000, error="" if up else "connection refused")


def test_status_lines_name_the_host_and_say_when_it_is_down() -> None:
    out = io.StringIO()
    reporter = Reporter(json_lines=False, secrets=[], out=out)
    reporter.sink(RunStarted(run="r1", output_dir="/o", limit=2, model="m", sandbox="docker", tasks_total=2))
    reporter.sink(TaskStarted(run="r1", instance_id="t-1", index=1, total=2))
    reporter.sink(SandboxPlaced(run="r1", instance_id="t-1", host=URL))
    reporter.sink(host(True))
    reporter.status("r1", MetricsData())
    reporter.host_lines()
    text = out.getvalue()
    assert f"t-1 on {URL} ·" in text and "(DOWN)" not in text
    assert f"{URL} up 1/2 · 4.0 exec/s · 3 images · 5.0 GB free" in text
    reporter.sink(host(False))
    reporter.status("r1", MetricsData())
    text = out.getvalue()
    assert f"{URL} DOWN (connection refused): its tasks end as errors" in text
    assert f"t-1 on {URL} (DOWN)" in text


def test_json_carries_every_host_status() -> None:
    out = io.StringIO()
    reporter = Reporter(json_lines=True, secrets=[], out=out)
    reporter.sink(host(True))
    reporter.sink(host(False))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["kind"], d["url"], d["up"], d["in_use"], d["capacity"]) for d in lines] == [
        ("host_status", URL, True, 1, 2), ("host_status", URL, False, 0, 2)]
