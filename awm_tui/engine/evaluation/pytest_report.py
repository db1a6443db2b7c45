"""Per-test outcomes from pytest's `-rA` short test summary.

pytest prints one line per test at the end of a `-rA` run, e.g.
`PASSED tests/test_x.py::test_a`, `FAILED tests/test_x.py::test_b - assert 1 == 2`.
SKIPPED lines name a file location rather than a node id, so a skipped test is
not found by id and, like any test missing from the output, counts as failed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")

PASSING = frozenset({"PASSED", "XFAIL"})
"""SWE-bench counts an expected failure as a pass, and nothing else."""

MISSING = "MISSING"
"""Status of an expected test that the output never mentions."""

# When a test shows up twice (a FAILED call and an ERROR in teardown), the
# worse outcome is the one that counts.
_SEVERITY = {"PASSED": 0, "XFAIL": 1, "SKIPPED": 2, "XPASS": 3, "FAILED": 4, "ERROR": 5}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+)$")

SUMMARY_GREP = r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) "
"""`grep -E` pattern for the summary lines, to pull them out of a long log."""


def parse_summary(output: str, expected: Iterable[str] = ()) -> dict[str, str]:
    """Map node id → status for every summary line in `output`.

    Node ids may contain spaces (parametrized ids), and the reason after ` - `
    may too, so a line is matched against the `expected` ids first; only lines
    naming no expected id fall back to cutting at the first ` - `.
    """
    wanted = set(expected)
    outcomes: dict[str, str] = {}
    for raw in output.splitlines():
        match = _LINE.match(_ANSI.sub("", raw).rstrip())
        if match is None:
            continue
        status, rest = match.groups()
        if status == "SKIPPED" and rest.startswith("["):
            continue  # `SKIPPED [1] file.py:12: reason` names no test
        node = _known_prefix(rest, wanted) or rest.split(" - ", 1)[0].strip()
        previous = outcomes.get(node)
        if previous is None or _SEVERITY[status] > _SEVERITY[previous]:
            outcomes[node] = status
    return outcomes


def _known_prefix(rest: str, wanted: set[str]) -> str | None:
    if rest in wanted:
        return rest
    # Try every cut at a space, longest first: `id - reason` or `id reason`.
    cuts = [i for i, ch in enumerate(rest) if ch == " "]
    for cut in reversed(cuts):
        if rest[:cut] in wanted:
            return rest[:cut]
    return None


def grade(
    outcomes: Mapping[str, str],
    fail_to_pass: Iterable[str],
    pass_to_pass: Iterable[str],
) -> dict:
    """SWE-bench grading: resolved only when every listed test passes.

    Returns a JSON-serialisable report with per-test status and counts.
    """
    report: dict = {"resolved": True}
    for name, ids in (("FAIL_TO_PASS", fail_to_pass), ("PASS_TO_PASS", pass_to_pass)):
        statuses = {node: outcomes.get(node, MISSING) for node in ids}
        failed = [node for node, status in statuses.items() if status not in PASSING]
        report[name] = {
            "status": statuses,
            "passed": len(statuses) - len(failed),
            "failed": len(failed),
            "missing": sum(1 for s in statuses.values() if s == MISSING),
        }
        if failed:
            report["resolved"] = False
    return report
