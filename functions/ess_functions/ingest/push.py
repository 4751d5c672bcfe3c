"""Raw Pub/Sub push requests, read from the request body itself (before functions-framework).

functions-framework answers 400 to a body it cannot turn into a CloudEvent, and its conversion
loses the raw bytes; Pub/Sub would redeliver such a body until the dead-letter topic. So the
ingest function registers `before_request`: every request that is not a CloudEvent (no `ce-`
headers, not `application/cloudevents+json`) is a push body, handled here; CloudEvents
(Eventarc) go on to the framework and `handle_cloud_event`.
"""

from __future__ import annotations

import flask

from .ingestor import handle_push_body


def is_cloud_event(request) -> bool:
    """A binary-mode (`ce-specversion` header) or structured-mode CloudEvent."""
    return ("ce-specversion" in request.headers
            or request.mimetype.startswith("application/cloudevents"))


def before_request():
    """Handle a raw push request (return the response), or None to let a CloudEvent through."""
    request = flask.request
    if request.method != "POST" or is_cloud_event(request):
        return None
    handle_push_body(request.get_data())   # raises on a retryable error: 500, redelivery
    return "OK", 200
