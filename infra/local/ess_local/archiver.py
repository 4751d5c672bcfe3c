"""The local twin of the raw-archive Cloud Storage subscription.

Pulls an `ess-archive` pull subscription and writes each batch as one Avro object in the
subscription's layout (ess_functions.archive.layout), acking the batch only after its object
is stored.
Run it with `python -m ess_local.archiver --subscription S --dest gs://BUCKET/frames/|DIR`.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from datetime import UTC, datetime

from ess.logs import event, setup_logging
from ess_functions.archive.layout import Record, encode_records, object_name
from ess_functions.objstore import StoreError, open_store

log = logging.getLogger("ess.archive")


class Archiver:
    """Pulls a subscription and writes each batch as one Avro object, then acks the batch."""

    def __init__(self, subscription: str, dest: str, *, subscriber=None,
                 max_duration: float = 5.0, max_bytes: int = 10_000_000,
                 max_messages: int = 1000):
        from google.cloud import pubsub_v1

        self.subscription = subscription    # projects/P/subscriptions/S
        self.store = open_store(dest)
        self.subscriber = subscriber or pubsub_v1.SubscriberClient()
        self.max_duration, self.max_bytes, self.max_messages = (max_duration, max_bytes,
                                                                max_messages)

    def _pull(self, timeout: float) -> list:
        from google.api_core import exceptions as gexc

        try:
            resp = self.subscriber.pull(request={"subscription": self.subscription,
                                                 "max_messages": self.max_messages},
                                        timeout=timeout)
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
            return []
        return list(resp.received_messages)

    def cycle(self, until_idle: bool = False) -> int:
        """Collect one batch (max_duration or max_bytes, or until a pull is empty when
        `until_idle`), write it, ack it; return how many messages were archived."""
        started, batch, size = time.monotonic(), [], 0
        while time.monotonic() - started < self.max_duration and size < self.max_bytes:
            got = self._pull(timeout=2.0)
            batch += got
            size += sum(len(m.message.data) for m in got)
            if not got and (until_idle or batch):
                break
        if not batch:
            return 0
        records = [Record(m.message.message_id, m.message.publish_time,
                          dict(m.message.attributes), m.message.data,
                          self.subscription) for m in batch]
        name = object_name(datetime.now(UTC))
        uri = self.store.uri(name)
        self.store.put(name, encode_records(records), content_type="application/avro")
        self.subscriber.acknowledge(request={"subscription": self.subscription,
                                             "ack_ids": [m.ack_id for m in batch]})
        event(log, f"archived {len(batch)} messages to {uri}", stage="archive",
              messages=len(batch), bytes=size, object=uri)
        return len(batch)

    def drain(self) -> int:
        """Archive until the subscription is empty; return how many messages were archived."""
        total = 0
        while n := self.cycle(until_idle=True):
            total += n
        return total

    def run(self, stop: threading.Event) -> None:
        """Archive until `stop` is set."""
        while not stop.is_set():
            try:
                self.cycle()
            except StoreError as exc:  # unacked messages come back after their deadline
                event(log, str(exc), stage="archive", level=logging.ERROR, error=str(exc))
                stop.wait(5.0)


def main(argv: list[str] | None = None) -> int:
    """`python -m ess_local.archiver`: run the local archiver until interrupted."""
    p = argparse.ArgumentParser(prog="ess-archive", description=__doc__.splitlines()[0])
    p.add_argument("--subscription", required=True,
                   help="projects/P/subscriptions/ess-archive (a pull subscription)")
    p.add_argument("--dest", required=True, help="gs://BUCKET/PREFIX or a local directory")
    p.add_argument("--max-duration", type=float, default=5.0, help="seconds per object")
    args = p.parse_args(argv)
    setup_logging("archive")
    archiver = Archiver(args.subscription, args.dest, max_duration=args.max_duration)
    stop = threading.Event()
    try:
        archiver.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
