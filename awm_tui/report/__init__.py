"""`awm-tui report DIR [DIR ...]`: one self-contained HTML page (or JSON) about runs.

- `data`: the output directories read into a `Report` (what `--json` prints)
- `plots`: the figures, matplotlib to inline SVG (the optional `report` extra)
- `html`: the page
- `cli`: the subcommand

Never imports Textual: a report is made where no terminal UI runs (CI, cron).
"""

from .data import Report, ReportError, RunReport, build_report, read_run

__all__ = ["Report", "ReportError", "RunReport", "build_report", "read_run"]
