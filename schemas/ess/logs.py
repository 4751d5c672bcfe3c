"""Structured logs in the Cloud Logging JSON format (one JSON object per line).

On Cloud Run and the collector VM, Cloud Logging's agents pick the lines up from stdout/stderr;
locally they go to files under the run directory. Log-based metrics read the `jsonPayload` fields
named here: stage, site, device, frames, rows, duplicates, out_of_range, latency_ms, error.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO

from google.cloud.logging.handlers import StructuredLogHandler

_configured = False


def setup_logging(component: str, stream: IO[str] | None = None,
                  level: str | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as Cloud Logging structured JSON."""
    global _configured
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ess", False):
            root.removeHandler(handler)
    handler = StructuredLogHandler(labels={"component": component},
                                   stream=stream or sys.stderr,
                                   project_id=os.environ.get("GOOGLE_CLOUD_PROJECT"))
    handler._ess = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # e.g. ESS_LOG_LEVEL=DEBUG
    root.setLevel(level or os.environ.get("ESS_LOG_LEVEL", "INFO"))
    _configured = True


def event(logger: logging.Logger, message: str, *, stage: str, level: int = logging.INFO,
          **fields) -> None:
    """Log one structured event: `stage` plus any counters, ids and latencies as JSON fields."""
    logger.log(level, message, extra={"json_fields": {"stage": stage, **fields}})
