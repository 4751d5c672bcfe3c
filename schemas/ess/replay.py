"""`ess replay-dead-letters`: send dead-lettered frame messages back to the sink that failed them.

A sink down for longer than its subscription's retry budget (`max_delivery_attempts` deliveries,
10-600 s apart: about 16 hours at 100 attempts) dead-letters every message it could not store
into the one dead-letter topic. Pub/Sub marks each with the subscription that gave up
(`CloudPubSubDeadLetterSourceSubscription`), so the replay can route it: each route maps a source
subscription to that sink's replay topic, whose push subscription delivers to the same ingest
function. The other sink and the raw archive see nothing again; a frame stored already is a
duplicate and skipped (`ON CONFLICT DO NOTHING`), so replaying twice is harmless.
Pub/Sub forwards a message to the dead-letter topic at least once: copies of one letter (same
route, data and attributes) are published once per run, and the copies acknowledged after it.

A message is acknowledged on the dead-letter subscription only after its publish to the replay
topic succeeded. Messages of a source without a route, or whose publish failed, are released at
the end (visible again, for inspection or a second run). The message keeps its data and the
collector's attributes; `ess_first_publish_time` carries its first publish time (the ingest
function's publish time is then the replay's).

Docs: docs/deploy.md ("Outages longer than the retry budget").
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from dataclasses import dataclass, field

SOURCE = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"
FIRST_PUBLISH = "ess_first_publish_time"


@dataclass
class Replay:
    """What one run did: messages replayed per topic, copies of a replayed message acknowledged
    per topic, held per source (no route, or the publish failed)."""

    replayed: Counter = field(default_factory=Counter)
    copies: Counter = field(default_factory=Counter)
    unrouted: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.unrouted and not self.failed

    def summary(self) -> str:
        parts = [f"replayed {n} to {t}" for t, n in sorted(self.replayed.items())]
        parts += [f"skipped {n} copies for {t} (a letter forwarded more than once)"
                  for t, n in sorted(self.copies.items())]
        parts += [f"held {n} from {s} (no route)" for s, n in sorted(self.unrouted.items())]
        parts += [f"held {n} for {t} (publish failed)" for t, n in sorted(self.failed.items())]
        return "; ".join(parts) or "the dead-letter subscription is empty"


def short_name(path: str) -> str:
    """`projects/P/subscriptions/S` or `S` -> `S`."""
    return path.rsplit("/", 1)[-1]


def parse_routes(pairs: list[str]) -> dict[str, str]:
    """`SOURCE_SUBSCRIPTION=TOPIC` pairs -> {source short name: topic path}."""
    routes = {}
    for pair in pairs:
        src, sep, topic = pair.partition("=")
        if not sep or not src or not topic.startswith("projects/") or "/topics/" not in topic:
            raise ValueError(f"a route is SOURCE_SUBSCRIPTION=projects/P/topics/T, got {pair!r}")
        routes[short_name(src)] = topic
    return routes


def replay_attributes(attributes) -> dict[str, str]:
    """The message's attributes without Pub/Sub's dead-letter ones, plus its first publish
    time (kept from an earlier replay)."""
    attrs = {k: v for k, v in attributes.items() if not k.startswith("CloudPubSubDeadLetter")}
    first = attributes.get(FIRST_PUBLISH) or attributes.get(SOURCE_PUBLISH_TIME)
    if first:
        attrs[FIRST_PUBLISH] = first
    return attrs


def _pull(subscriber, subscription: str, batch: int, timeout: float) -> list:
    from google.api_core import exceptions as gexc

    try:
        resp = subscriber.pull(request={"subscription": subscription, "max_messages": batch},
                               timeout=timeout)
    except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
        return []
    return list(resp.received_messages)


def letter_key(topic: str, msg) -> tuple:
    """Two dead letters with one key are copies of one message (Pub/Sub forwards a message to
    the dead-letter topic at least once): same route, data and the collector's attributes."""
    attrs = sorted((k, v) for k, v in msg.attributes.items()
                   if not k.startswith("CloudPubSubDeadLetter") and k != FIRST_PUBLISH)
    return topic, hashlib.blake2b(msg.data, digest_size=16).digest(), tuple(attrs)


@dataclass
class _Batch:
    """One pull's work: publishes in flight, copies waiting for their twin's publish."""

    sent: list = field(default_factory=list)      # (ack id, topic, key, future)
    copies: list = field(default_factory=list)    # (ack id, topic, key)


def _route(received, routes, publisher, dry_run, out: Replay, held: list, done: set) -> _Batch:
    b, keys = _Batch(), set()
    for rm in received:
        msg = rm.message
        source = short_name(msg.attributes.get(SOURCE, ""))
        topic = routes.get(source)
        if topic is None:
            out.unrouted[source or "?"] += 1
            held.append(rm.ack_id)
            continue
        key = letter_key(topic, msg)
        if key in done or key in keys:
            b.copies.append((rm.ack_id, topic, key))
            continue
        keys.add(key)
        if dry_run:
            out.replayed[topic] += 1
            done.add(key)
            held.append(rm.ack_id)
            continue
        b.sent.append((rm.ack_id, topic, key, publisher.publish(
            topic, msg.data, **replay_attributes(msg.attributes))))
    return b


def _settle(b: _Batch, out: Replay, held: list, done: set, dry_run: bool) -> list:
    """Waits for the batch's publishes; returns the ack ids to acknowledge. A copy is
    acknowledged once its twin is published; it stays with its twin when that publish failed."""
    acks = []
    for ack_id, topic, key, future in b.sent:
        try:
            future.result(timeout=60)
        except Exception:  # noqa: BLE001 - any publish error: keep the message
            out.failed[topic] += 1
            held.append(ack_id)
            continue
        out.replayed[topic] += 1
        done.add(key)
        acks.append(ack_id)
    for ack_id, topic, key in b.copies:
        if key in done:
            out.copies[topic] += 1
            (held if dry_run else acks).append(ack_id)
        else:
            out.failed[topic] += 1
            held.append(ack_id)
    return acks


def replay(subscriber, publisher, subscription: str, routes: dict[str, str], *,
           batch: int = 100, max_messages: int | None = None, dry_run: bool = False,
           pull_timeout: float = 10.0) -> Replay:
    """Move the dead-letter subscription's messages to their routes' topics (see module doc).

    Stops when two pulls in a row return nothing new, or after `max_messages`."""
    out, held, seen, done, empty = Replay(), [], set(), set(), 0
    while empty < 2 and (max_messages is None or len(seen) < max_messages):
        received = [rm for rm in _pull(subscriber, subscription, batch, pull_timeout)
                    if rm.message.message_id not in seen]
        if max_messages is not None:
            received = received[:max_messages - len(seen)]
        if not received:
            empty += 1
            continue
        empty = 0
        seen |= {rm.message.message_id for rm in received}
        acks = _settle(_route(received, routes, publisher, dry_run, out, held, done), out, held,
                       done, dry_run)
        if acks:
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": acks})
    for i in range(0, len(held), 1000):   # visible again for inspection or another run
        subscriber.modify_ack_deadline(request={"subscription": subscription,
                                                "ack_ids": held[i:i + 1000],
                                                "ack_deadline_seconds": 0})
    return out


def _cmd(args: argparse.Namespace) -> int:
    from google.cloud import pubsub_v1

    from .command import UsageError

    try:
        routes = parse_routes(args.route)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    try:
        out = replay(subscriber, publisher, args.subscription, routes, batch=args.batch,
                     max_messages=args.max_messages, dry_run=args.dry_run,
                     pull_timeout=args.pull_timeout)
    finally:
        publisher.stop()
        subscriber.close()
    print(f"ess replay-dead-letters: {'(dry run) ' if args.dry_run else ''}{out.summary()}")
    return 0 if out.ok else 1


def register(sub) -> None:
    """Add `ess replay-dead-letters` to the CLI."""
    p = sub.add_parser("replay-dead-letters", help="send dead-lettered messages back to the "
                       "sink whose subscription gave up on them (after an outage)")
    p.add_argument("--subscription", required=True,
                   help="the dead-letter pull subscription, projects/P/subscriptions/S")
    p.add_argument("--route", action="append", required=True, metavar="SOURCE=TOPIC",
                   help="messages dead-lettered by subscription SOURCE go to TOPIC "
                        "(projects/P/topics/T); repeatable; Terraform's "
                        "dead_letter_replay_command names them all")
    p.add_argument("--batch", type=int, default=100, help="messages per pull")
    p.add_argument("--max-messages", type=int, help="stop after this many")
    p.add_argument("--pull-timeout", type=float, default=10.0,
                   help="seconds a pull may wait; two empty pulls in a row end the run")
    p.add_argument("--dry-run", action="store_true",
                   help="count the messages per route, move nothing")
    p.set_defaults(func=_cmd)
