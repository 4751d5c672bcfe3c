"""`ess replay-dead-letters` against the Pub/Sub emulator: a dead letter goes to its source's
route with its data and attributes (minus Pub/Sub's dead-letter ones, plus its first publish
time), once however often Pub/Sub forwarded it; one from a source without a route stays in the
dead-letter subscription; a dry run moves nothing."""

from __future__ import annotations

import uuid

from ess.replay import FIRST_PUBLISH, SOURCE, SOURCE_PUBLISH_TIME, replay


def _pull_all(admin, sub: str) -> list:
    from google.api_core import exceptions as gexc

    out = []
    while True:
        try:
            got = admin.pull(sub, max_messages=50, timeout=1.5)
        except gexc.DeadlineExceeded:
            got = []
        if not got:
            return out
        out += got


def test_routes_hold_and_dry_run(pubsub_emulator):
    a = pubsub_emulator.admin
    tag = uuid.uuid4().hex[:8]
    dead, main = f"dl-{tag}", f"replay-main-{tag}"
    for t in (dead, main):
        a.create_topic(t)
    a.create_pull_subscription(dead, dead, ack_deadline=30)
    a.create_pull_subscription(main, main)
    dead_sub = a.subscription_path(dead)
    for count in ("100", "101"):      # the second: Pub/Sub forwarding the letter again
        a.publish(dead, b"frames-1", site_id="s", **{
            SOURCE: "frames-ingest-main", SOURCE_PUBLISH_TIME: "2026-11-20T01:02:03Z",
            "CloudPubSubDeadLetterSourceDeliveryCount": count})
    a.publish(dead, b"frames-2", site_id="s", **{SOURCE: "someone-else"})
    routes = {"frames-ingest-main": a.topic_path(main)}

    dry = replay(a.subscriber, a.publisher, dead_sub, routes, dry_run=True, pull_timeout=1)
    assert dict(dry.replayed) == {a.topic_path(main): 1}
    assert dict(dry.unrouted) == {"someone-else": 1}
    assert _pull_all(a, main) == []

    out = replay(a.subscriber, a.publisher, dead_sub, routes, pull_timeout=1)
    assert dict(out.replayed) == {a.topic_path(main): 1} and not out.ok
    assert dict(out.copies) == {a.topic_path(main): 1}
    assert dict(out.unrouted) == {"someone-else": 1}
    (got,) = _pull_all(a, main)
    assert got.data == b"frames-1"
    assert dict(got.attributes) == {"site_id": "s", FIRST_PUBLISH: "2026-11-20T01:02:03Z"}
    left = _pull_all(a, dead)
    assert [m.data for m in left] == [b"frames-2"], "the unrouted letter stays"
