"""`ess.replay` in process, with a recording subscriber and publisher: copies of one dead letter
(Pub/Sub forwards at least once) are published once and acknowledged after their twin; a copy
whose twin's publish failed stays with it; letters that differ in data or attributes are not
copies."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

from ess.replay import FIRST_PUBLISH, SOURCE, SOURCE_PUBLISH_TIME, letter_key, replay

SUB, TOPIC = "projects/p/subscriptions/dl", "projects/p/topics/replay-main"
ROUTES = {"ingest-main": TOPIC}


def _letter(i: int, data: bytes, **attrs) -> SimpleNamespace:
    attrs = {SOURCE: "projects/p/subscriptions/ingest-main",
             SOURCE_PUBLISH_TIME: "2026-11-20T01:02:03Z", "site_id": "s", **attrs}
    msg = SimpleNamespace(message_id=f"m{i}", data=data, attributes=attrs)
    return SimpleNamespace(ack_id=f"a{i}", message=msg)


class Subscriber:
    def __init__(self, letters):
        self.pulls = [letters[:3], letters[3:]]
        self.acked, self.released = [], []

    def pull(self, request, timeout):
        return SimpleNamespace(received_messages=self.pulls.pop(0) if self.pulls else [])

    def acknowledge(self, request):
        self.acked += request["ack_ids"]

    def modify_ack_deadline(self, request):
        assert request["ack_deadline_seconds"] == 0
        self.released += request["ack_ids"]


class Publisher:
    def __init__(self, fail: bytes | None = None):
        self.fail, self.published = fail, []

    def publish(self, topic, data, **attrs):
        f = Future()
        if data == self.fail:
            f.set_exception(RuntimeError("unavailable"))
        else:
            self.published.append((topic, data, attrs))
            f.set_result("id")
        return f


def _run(letters, **kw):
    sub, pub = Subscriber(letters), kw.pop("publisher", Publisher())
    return replay(sub, pub, SUB, ROUTES, pull_timeout=0, **kw), sub, pub


def test_copies_in_one_pull_and_across_pulls_are_published_once():
    letters = [_letter(0, b"f1"), _letter(1, b"f1"), _letter(2, b"f2"),
               _letter(3, b"f1", CloudPubSubDeadLetterSourceDeliveryCount="7"), _letter(4, b"f2")]
    out, sub, pub = _run(letters)
    assert [d for _, d, _ in pub.published] == [b"f1", b"f2"]
    assert pub.published[0][2] == {"site_id": "s", FIRST_PUBLISH: "2026-11-20T01:02:03Z"}
    assert dict(out.replayed) == {TOPIC: 2} and dict(out.copies) == {TOPIC: 3} and out.ok
    assert sorted(sub.acked) == ["a0", "a1", "a2", "a3", "a4"] and sub.released == []
    assert out.summary() == (f"replayed 2 to {TOPIC}; skipped 3 copies for {TOPIC} "
                             "(a letter forwarded more than once)")


def test_a_copy_stays_with_its_twin_when_the_publish_fails():
    letters = [_letter(0, b"bad"), _letter(1, b"bad"), _letter(2, b"ok")]
    out, sub, pub = _run(letters, publisher=Publisher(fail=b"bad"))
    assert [d for _, d, _ in pub.published] == [b"ok"]
    assert sub.acked == ["a2"] and sorted(sub.released) == ["a0", "a1"]
    assert dict(out.failed) == {TOPIC: 2} and not out.copies and not out.ok


def test_dry_run_counts_copies_and_moves_nothing():
    out, sub, pub = _run([_letter(0, b"f1"), _letter(1, b"f1"), _letter(2, b"f2")], dry_run=True)
    assert pub.published == [] and sub.acked == []
    assert sorted(sub.released) == ["a0", "a1", "a2"]
    assert dict(out.replayed) == {TOPIC: 2} and dict(out.copies) == {TOPIC: 1}


def test_letters_differing_in_data_route_or_attributes_are_not_copies():
    a = _letter(0, b"f1").message
    same = _letter(1, b"f1", **{SOURCE_PUBLISH_TIME: "2026-11-20T09:00:00Z"}).message
    assert letter_key(TOPIC, a) == letter_key(TOPIC, same)
    for other, topic in ((_letter(2, b"f2").message, TOPIC),
                         (_letter(3, b"f1", site_id="t").message, TOPIC),
                         (a, "projects/p/topics/replay-replica")):
        assert letter_key(topic, other) != letter_key(TOPIC, a)
