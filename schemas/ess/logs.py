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
from collections.abc import Callable, Mapping
from typing import IO

from google.cloud.logging.handlers import StructuredLogHandler

Trace = tuple[str | None, str | None, bool]    # (trace id, span id, sampled)
TraceProvider = Callable[[], Trace]
NO_TRACE: Trace = (None, None, False)


def trace_from_headers(headers: Mapping[str, str]) -> Trace:
    """(trace id, span id, sampled) from an X-Cloud-Trace-Context or traceparent header.

    A function's trace provider passes its request's headers here, so that the function's lines
    group under their request in Logs Explorer.
    """
    cloud = headers.get("X-Cloud-Trace-Context")    # TRACE_ID/SPAN_ID;o=1
    if cloud:
        trace, _, rest = cloud.partition("/")
        span, _, options = rest.partition(";")
        return trace or None, span or None, options == "o=1"
    parent = headers.get("traceparent", "").split("-")    # 00-TRACE-SPAN-FLAGS
    if len(parent) == 4:
        return parent[1], parent[2], parent[3] == "01"
    return NO_TRACE


class CloudJsonHandler(StructuredLogHandler):
    """google-cloud-logging's StructuredLogHandler, formatting each record in one pass.

    The stock handler's filter rebuilds the request's URL, user agent and address for every
    record, and its formatter encodes JSON several times: about 4x the cost of this one under
    load, where an ingest instance writes a line per message. The output is the same Cloud
    Logging structured-log JSON (`severity`, `message`, labels, trace, sourceLocation, and
    `json_fields` as jsonPayload fields); Cloud Run's own request log carries `httpRequest`.
    """

    def __init__(self, component: str, stream: IO[str], project: str | None = None,
                 trace: TraceProvider | None = None):
        super().__init__(labels={"component": component}, stream=stream, project_id=project)
        self.trace = trace
        for stock in list(self.filters):
            self.removeFilter(stock)
        self.component = component
        self._labels: dict[str, dict] = {}

    def format(self, record: logging.LogRecord) -> str:
        entry = dict(getattr(record, "json_fields", None) or {})
        if isinstance(record.msg, Mapping):       # a dict logged as is: its keys are fields
            entry.update(record.msg)
            message = ""
        else:
            message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatter_exception(record)
        entry["message"] = message
        entry["severity"] = record.levelname
        labels = self._labels.get(record.name)
        if labels is None:
            labels = self._labels[record.name] = {"python_logger": record.name,
                                                  "component": self.component}
        extra = getattr(record, "labels", None)
        entry["logging.googleapis.com/labels"] = {**labels, **extra} if extra else labels
        trace, span, sampled = self.trace() if self.trace else NO_TRACE
        if trace:
            entry["logging.googleapis.com/trace"] = (
                f"projects/{self.project_id}/traces/{trace}" if self.project_id else trace)
            entry["logging.googleapis.com/spanId"] = span or ""
            entry["logging.googleapis.com/trace_sampled"] = sampled
        entry["logging.googleapis.com/sourceLocation"] = {
            "file": record.pathname, "line": record.lineno, "function": record.funcName}
        return json.dumps(entry, ensure_ascii=False, default=str)

    @staticmethod
    def formatter_exception(record: logging.LogRecord) -> str:
        if not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record.exc_text


def setup_logging(component: str, stream: IO[str] | None = None, level: str | None = None,
                  trace: TraceProvider | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as Cloud Logging structured JSON.

    `trace`, if given, returns the (trace id, span id, sampled) of the request being served (or
    NO_TRACE outside one); an HTTP function passes one so its lines carry their request's trace.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ess", False):
            root.removeHandler(handler)
    handler = CloudJsonHandler(component, stream or sys.stderr,
                               os.environ.get("GOOGLE_CLOUD_PROJECT"), trace)
    handler._ess = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Lines carry no thread or process names: skip looking them up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # e.g. ESS_LOG_LEVEL=DEBUG
    root.setLevel(level or os.environ.get("ESS_LOG_LEVEL", "INFO"))


def event(logger: logging.Logger, message: str, *, stage: str, level: int = logging.INFO,
          **fields) -> None:
    """Log one structured event: `stage` plus any counters, ids and latencies as JSON fields."""
    logger.log(level, message, extra={"json_fields": {"stage": stage, **fields}}, stacklevel=2)
