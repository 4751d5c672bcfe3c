"""Structured log lines: Cloud Logging's JSON fields, the request's trace, the caller's line."""

import io
import json
import logging

import flask
import pytest
from ess.logs import NO_TRACE, event, setup_logging, trace_from_headers


def flask_trace():
    """The trace provider an HTTP function passes: its Flask request's trace headers."""
    if not flask.has_request_context():
        return NO_TRACE
    return trace_from_headers(flask.request.headers)


@pytest.fixture
def lines(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-1")
    stream = io.StringIO()
    setup_logging("ingest", stream=stream, trace=flask_trace)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()
                   if "logging.googleapis.com/diagnostic" not in json.loads(line)]
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_ess", False)]:
        root.removeHandler(handler)


@pytest.mark.parametrize("headers, trace, span, sampled", [
    ({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
     "projects/proj-1/traces/105445aa7843bc8bf206b12000100000", "1", True),
    ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
     "projects/proj-1/traces/0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", False),
    ({}, "", "", False),
])
def test_a_line_carries_its_request_trace(lines, headers, trace, span, sampled):
    app = flask.Flask("t")
    with app.test_request_context("/", method="POST", headers=headers):
        event(logging.getLogger("ess.ingest"), "stored 11/11 rows", stage="store", rows=11)
    (line,) = lines()
    assert line["message"] == "stored 11/11 rows" and line["severity"] == "INFO"
    assert line["stage"] == "store" and line["rows"] == 11
    assert line.get("logging.googleapis.com/trace", "") == trace
    assert line.get("logging.googleapis.com/spanId", "") == span
    assert line.get("logging.googleapis.com/trace_sampled", False) is sampled
    assert line["logging.googleapis.com/labels"] == {"python_logger": "ess.ingest",
                                                     "component": "ingest"}


def test_source_location_is_the_caller_not_the_helper(lines):
    event(logging.getLogger("ess.x"), "hello", stage="preprocess", level=logging.WARNING)
    logging.getLogger("ess.x").error("plain", extra={"labels": {"k": "v"}})
    first, second = lines()
    assert first["logging.googleapis.com/sourceLocation"]["file"] == __file__
    assert first["logging.googleapis.com/sourceLocation"]["function"] == (
        "test_source_location_is_the_caller_not_the_helper")
    assert first["severity"] == "WARNING" and "trace" not in first["message"]
    assert second["logging.googleapis.com/labels"]["k"] == "v"
    assert second["severity"] == "ERROR"


def test_exceptions_and_dict_messages(lines):
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("ess.x").exception("boom")
    logging.getLogger("ess.x").info({"stage": "poll", "frames": 3})
    failed, fields = lines()
    assert failed["message"].startswith("boom\nTraceback") and "ZeroDivisionError" in (
        failed["message"])
    assert fields["stage"] == "poll" and fields["frames"] == 3 and fields["message"] == ""


def test_without_a_trace_provider_lines_carry_no_trace():
    stream = io.StringIO()
    setup_logging("collector", stream=stream)
    try:
        app = flask.Flask("t")
        with app.test_request_context("/", headers={"traceparent": "00-" + "a" * 32 + "-b-01"}):
            event(logging.getLogger("ess.x"), "polled", stage="poll")
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_ess", False)]:
            root.removeHandler(handler)
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert "logging.googleapis.com/trace" not in line
