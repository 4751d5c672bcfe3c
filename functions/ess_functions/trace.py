"""The request trace of the request being served, for ess.logs (functions-framework is Flask)."""

from __future__ import annotations

import flask
from ess.logs import NO_TRACE, Trace, trace_from_headers


def request_trace() -> Trace:
    """(trace id, span id, sampled) of the current request, or NO_TRACE outside one."""
    if not flask.has_request_context():
        return NO_TRACE
    return trace_from_headers(flask.request.headers)
