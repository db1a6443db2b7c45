"""HTTP plumbing shared by every client: pooled traced sessions and run metrics."""

from awm_tui.engine.http.metrics import RunMetrics
from awm_tui.engine.http.session import (
    TelemetryConnector,
    host_key,
    make_session,
    make_timeout,
    session_metrics,
)

__all__ = [
    "RunMetrics",
    "TelemetryConnector",
    "host_key",
    "make_session",
    "make_timeout",
    "session_metrics",
]
