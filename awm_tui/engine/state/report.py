"""`report.json`: a run's outcomes in the SWE-bench harness's report schema.

Derived, never read back: built from `checkpoint.json` (results), `preds.json`
(what was submitted) and this session's task errors, so the three files agree.
The keys are those of `swebench.harness.reporting.make_run_report` (schema 2);
`graders` and `error_kinds` are ours, added beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from awm_tui.engine.outcomes import ErrorKind, Outcome

from .checkpoint import Checkpoint

REPORT_SCHEMA_VERSION = 2
"""The harness's report schema this follows."""


def build_report(
    task_ids: Iterable[str],
    checkpoint: Checkpoint,
    predictions: Mapping[str, dict],
    errors: Mapping[str, tuple[ErrorKind, str]],
) -> dict:
    """The harness report for the run's tasks (`task_ids`, in the run's order)."""
    ids = list(dict.fromkeys(task_ids))
    by: dict[Outcome, set[str]] = {o: set() for o in Outcome}
    for iid in ids:
        result = checkpoint.finished.get(iid)
        if result is not None:
            by[result.outcome].add(iid)
        elif iid in errors:
            by[Outcome.ERROR].add(iid)
    finished = set().union(*(by[o] for o in Outcome))
    incomplete = [i for i in ids if i not in finished]
    completed = by[Outcome.RESOLVED] | by[Outcome.UNRESOLVED]  # graded, as the harness counts them
    submitted = [i for i in ids if i in predictions]
    error_ids = by[Outcome.ERROR]
    return {
        "total_instances": len(ids),
        "submitted_instances": len(submitted),
        "completed_instances": len(completed),
        "resolved_instances": len(by[Outcome.RESOLVED]),
        "unresolved_instances": len(by[Outcome.UNRESOLVED]),
        "infra_failure_instances": len(error_ids),
        "ambiguous_failure_instances": 0,
        "empty_patch_instances": len(by[Outcome.EMPTY_PATCH]),
        "error_instances": len(error_ids),
        "not_evaluated_instances": len(by[Outcome.NOT_EVALUATED]),
        "completed_ids": sorted(completed),
        "incomplete_ids": sorted(incomplete),
        "empty_patch_ids": sorted(by[Outcome.EMPTY_PATCH]),
        "submitted_ids": sorted(submitted),
        "resolved_ids": sorted(by[Outcome.RESOLVED]),
        "unresolved_ids": sorted(by[Outcome.UNRESOLVED]),
        "infra_failure_ids": sorted(error_ids),
        "ambiguous_failure_ids": [],
        "failure_reasons": {i: errors[i][1] for i in sorted(error_ids)},
        "error_ids": sorted(error_ids),
        "not_evaluated_ids": sorted(by[Outcome.NOT_EVALUATED]),
        "error_kinds": {i: str(errors[i][0]) for i in sorted(error_ids)},
        "graders": {i: r.grader for i, r in checkpoint.finished.items() if i in finished and r.grader},
        "schema_version": REPORT_SCHEMA_VERSION,
    }
