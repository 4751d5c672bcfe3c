"""Structured logs in the Cloud Logging JSON format (one JSON object per line).

On Cloud Run and the collector VM, Cloud Logging's agents pick the lines up from stdout/stderr;
locally they go to files under the run directory. Log-based metrics read the `jsonPayload` fields
named here: stage, site, device, frames, rows, duplicates, out_of_range, latency_ms, error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO

from google.cloud.logging.handlers import StructuredLogHandler
from google.cloud.logging_v2.handlers.handlers import CloudLoggingFilter

_configured = False


class RequestTraceFilter(CloudLoggingFilter):
    """CloudLoggingFilter without its per-record request introspection.

    The stock filter rebuilds the request's URL, user agent and address for every record
    (about half of a log line's cost; Cloud Run's own request log already has them). This one
    reads only the trace from the X-Cloud-Trace-Context or traceparent header, so each line
    still groups under its request in Logs Explorer, and caches the JSON of labels and source
    locations.
    """

    def __init__(self, project=None, default_labels=None):
        super().__init__(project=project, default_labels=default_labels)
        self._json: dict = {}

    def _cached(self, key, value) -> str:
        text = self._json.get(key)
        if text is None:
            text = self._json[key] = json.dumps(value, ensure_ascii=False)
        return text

    def _trace(self) -> tuple[str | None, str | None, bool]:
        flask = sys.modules.get("flask")    # only a Flask app (a function) has requests
        if flask is None or not flask.has_request_context():
            return None, None, False
        headers = flask.request.headers
        cloud = headers.get("X-Cloud-Trace-Context")   # TRACE_ID/SPAN_ID;o=1
        if cloud:
            trace, _, rest = cloud.partition("/")
            span, _, options = rest.partition(";")
            return trace or None, span or None, options == "o=1"
        parent = headers.get("traceparent", "").split("-")   # 00-TRACE-SPAN-FLAGS
        if len(parent) == 4:
            return parent[1], parent[2], parent[3] == "01"
        return None, None, False

    def filter(self, record):
        trace, span, sampled = self._trace()
        if trace and self.project:
            trace = f"projects/{self.project}/traces/{trace}"
        record._resource = getattr(record, "resource", None)
        record._trace = getattr(record, "trace", trace) or None
        record._span_id = getattr(record, "span_id", span) or None
        record._trace_sampled = bool(getattr(record, "trace_sampled", sampled))
        record._http_request = getattr(record, "http_request", None)
        where = (record.pathname, record.lineno, record.funcName)
        record._source_location = {"line": where[1], "file": where[0], "function": where[2]}
        labels = getattr(record, "labels", None)
        record._labels = {"python_logger": record.name, **self.default_labels, **(labels or {})}
        record._trace_str = record._trace or ""
        record._span_id_str = record._span_id or ""
        record._trace_sampled_str = "true" if record._trace_sampled else "false"
        record._http_request_str = json.dumps(record._http_request or {}, ensure_ascii=False)
        record._source_location_str = self._cached(where, record._source_location)
        record._labels_str = (json.dumps(record._labels, ensure_ascii=False) if labels
                              else self._cached(record.name, record._labels))
        return True


def setup_logging(component: str, stream: IO[str] | None = None,
                  level: str | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as Cloud Logging structured JSON."""
    global _configured
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ess", False):
            root.removeHandler(handler)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    handler = StructuredLogHandler(labels={"component": component},
                                   stream=stream or sys.stderr, project_id=project)
    for stock in [f for f in handler.filters if isinstance(f, CloudLoggingFilter)]:
        handler.removeFilter(stock)
    handler.addFilter(RequestTraceFilter(project=project,
                                         default_labels={"component": component}))
    handler._ess = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # e.g. ESS_LOG_LEVEL=DEBUG
    root.setLevel(level or os.environ.get("ESS_LOG_LEVEL", "INFO"))
    _configured = True


def event(logger: logging.Logger, message: str, *, stage: str, level: int = logging.INFO,
          **fields) -> None:
    """Log one structured event: `stage` plus any counters, ids and latencies as JSON fields."""
    logger.log(level, message, extra={"json_fields": {"stage": stage, **fields}}, stacklevel=2)
