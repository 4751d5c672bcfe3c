"""Envelope parsing in-process (ingest/envelope.py): a push body or a messagePublished
CloudEvent becomes a Message; anything else is a BadPayload whose `kept` message is the raw body,
byte for byte, with whatever fields were usable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from ess_functions.ingest.envelope import (
    body_id,
    message_from_cloud_event,
    message_from_push,
)
from ess_functions.ingest.errors import BadPayload

DATA = b"\x00\x01frames\xff"
GOOD = {"messageId": "m-1", "data": base64.b64encode(DATA).decode(),
        "attributes": {"site_id": "site-a"}, "publishTime": "2026-03-01T12:00:00.5Z"}


def push(msg: object, **extra) -> bytes:
    return json.dumps({"message": msg, "subscription": "projects/p/subscriptions/s",
                       **extra}).encode()


class CloudEvent(dict):
    """The two things the function reads of a functions-framework CloudEvent."""

    def __init__(self, data: object, **attrs):
        super().__init__({"id": "ce-9", **attrs})
        self.data = data


def test_a_push_body_gives_its_message():
    m = message_from_push(push(GOOD))
    assert (m.message_id, m.data, m.attributes) == ("m-1", DATA, {"site_id": "site-a"})
    assert m.publish_time == datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)


def test_snake_case_fields_and_no_attributes_are_accepted():
    m = message_from_push(push({"message_id": "m-2", "data": GOOD["data"],
                                "publish_time": "2026-03-01T12:00:00+09:00"}))
    assert (m.message_id, m.attributes) == ("m-2", {})
    assert m.publish_time.astimezone(UTC).hour == 3


@pytest.mark.parametrize("when", ["not a time", "", "0001-01-01T00:00:00+01:00"])
def test_an_unusable_publish_time_counts_as_missing(when):
    assert message_from_push(push({**GOOD, "publishTime": when})).publish_time is None


def test_a_cloud_event_gives_its_message_with_the_events_id_and_time_as_fallbacks():
    msg = {k: v for k, v in GOOD.items() if k not in ("messageId", "publishTime")}
    m = message_from_cloud_event(CloudEvent({"message": msg}, time="2026-03-02T00:00:00Z"),
                                 b"raw")
    assert m.message_id == "ce-9" and m.data == DATA
    assert m.publish_time == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("body, why", [
    (b"\xff not json", "push body is not JSON"),
    (b"[1, 2]", "push body is a JSON list, not an object"),
    (b'{"subscription": "s"}', "push body has no message"),
    (push("text"), "message is a str, not an object"),
    (push({**GOOD, "messageId": ""}), "message has no messageId"),
    (push({**GOOD, "attributes": {"a": 1}}), "attributes is not an object of strings"),
    (push({**GOOD, "attributes": ["a"]}), "attributes is not an object of strings"),
    (push({**GOOD, "publishTime": 5}), "publishTime is not a string"),
    (push({k: v for k, v in GOOD.items() if k != "data"}), "message has no data"),
    (push({**GOOD, "data": 17}), "message data is not a string"),
    (push({**GOOD, "data": "not base64!"}), "message data is not base64"),
])
def test_a_bad_push_body_is_refused_and_kept_byte_for_byte(body, why):
    with pytest.raises(BadPayload) as err:
        message_from_push(body)
    assert str(err.value).startswith(why) and err.value.reason == "bad_payload"
    kept = err.value.kept
    assert kept.data == body and kept.publish_time is not None


def test_what_is_kept_uses_the_usable_fields():
    body = push({**GOOD, "data": "###"})
    kept = _kept(body)
    assert (kept.message_id, kept.attributes) == ("m-1", {"site_id": "site-a"})
    assert kept.publish_time == datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    bad_attrs = push({"messageId": 7, "attributes": {"a": 1}, "publishTime": "x"})
    kept = _kept(bad_attrs)
    assert kept.message_id == body_id(bad_attrs) and kept.attributes == {}
    assert kept.publish_time.tzinfo is not None     # now, as no usable time was given


def test_the_id_of_an_anonymous_body_is_stable():
    assert body_id(b"x") == body_id(b"x") != body_id(b"y")
    assert body_id(b"x").startswith("body-") and len(body_id(b"x")) == 37


def test_a_cloud_event_without_a_message_is_kept_under_the_events_id():
    with pytest.raises(BadPayload) as err:
        message_from_cloud_event(CloudEvent({"nothing": 1}), b"raw body")
    assert err.value.kept.message_id == "ce-9" and err.value.kept.data == b"raw body"


def _kept(body: bytes):
    with pytest.raises(BadPayload) as err:
        message_from_push(body)
    return err.value.kept
