"""Pub/Sub publishing: frames of one site packed into messages, with the contract's attributes.

Each message holds 1..max_frames frame bodies of a single site, as the spool stored them
(`ess.codec.pack_bodies`: a frame is encoded once, when it is spooled), and carries
site_id, schema_version (the codec's message version: 1, or 2 when `publish.compress` deflates
the body), frame_count, first_poll and last_poll (ISO 8601 UTC). With ordering
enabled the site id is the ordering key. `PUBSUB_EMULATOR_HOST` is honoured by the client.
"""

from __future__ import annotations

import concurrent.futures
import os

from ess.codec import COMPRESSED, VERSION, pack_bodies
from ess.wire.times import iso_z
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type

from .config import PublishSettings

_RETRYABLE = if_exception_type(gexc.Aborted, gexc.Cancelled, gexc.DeadlineExceeded,
                               gexc.InternalServerError, gexc.ResourceExhausted,
                               gexc.ServiceUnavailable, gexc.Unknown)


def message_for(site: str, bodies: list[bytes], polls_us: list[int],
                compress: bool = False) -> tuple[bytes, dict[str, str]]:
    """Body and attributes of one message: frame bodies of `site` and their poll starts;
    deflated (message version 2) when `compress`."""
    return pack_bodies(bodies, compress), {
        "site_id": site, "schema_version": str(COMPRESSED if compress else VERSION),
        "frame_count": str(len(bodies)),
        "first_poll": iso_z(min(polls_us)), "last_poll": iso_z(max(polls_us))}


# Reconnect quickly after an outage (gRPC's default back-off grows to 120 s).
_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250),
                    ("grpc.min_reconnect_backoff_ms", 250),
                    ("grpc.max_reconnect_backoff_ms", 3000),
                    ("grpc.max_send_message_length", -1),
                    ("grpc.max_receive_message_length", -1)]


def _transport():
    """A gRPC transport with the options above (insecure when PUBSUB_EMULATOR_HOST is set)."""
    import grpc
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    # e.g. PUBSUB_EMULATOR_HOST=127.0.0.1:8085
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        channel = grpc.insecure_channel(emulator, options=_CHANNEL_OPTIONS)
    else:
        channel = PublisherGrpcTransport.create_channel(options=_CHANNEL_OPTIONS)
    return PublisherGrpcTransport(channel=channel)


class FramePublisher:
    """google-cloud-pubsub PublisherClient tuned for small, frequent messages.

    With ordering enabled the client retries transient errors without limit (in order); only
    permanent errors (e.g. topic not found) fail a publish. Without ordering, a publish fails
    after `settings.timeout` seconds of retries.
    """

    def __init__(self, settings: PublishSettings, client=None):
        from google.cloud import pubsub_v1
        from google.cloud.pubsub_v1 import types

        self.settings = settings
        self.topic = settings.topic
        self.client = client or pubsub_v1.PublisherClient(
            transport=_transport(),
            batch_settings=types.BatchSettings(max_messages=100, max_bytes=4 * 1024 * 1024,
                                               max_latency=0.01),
            publisher_options=types.PublisherOptions(
                enable_message_ordering=settings.ordering,
                flow_control=types.PublishFlowControl(
                    message_limit=10_000, byte_limit=256 * 1024 * 1024,
                    limit_exceeded_behavior=types.LimitExceededBehavior.IGNORE)))
        self.retry = Retry(predicate=_RETRYABLE, initial=0.2, maximum=5.0, multiplier=2.0,
                           timeout=settings.timeout)

    def publish(self, site: str, bodies: list[bytes],
                polls_us: list[int]) -> concurrent.futures.Future:
        """Publish one message of frame bodies (all of `site`); the future resolves to the
        message id or raises."""
        data, attrs = message_for(site, bodies, polls_us, self.settings.compress)
        key = site if self.settings.ordering else ""
        return self.client.publish(self.topic, data, ordering_key=key, retry=self.retry,
                                   timeout=min(self.settings.timeout, 60.0), **attrs)

    def resume(self, site: str) -> None:
        """Let an ordering key publish again after a failure."""
        if self.settings.ordering:
            self.client.resume_publish(self.topic, site)

    def stop(self) -> None:
        self.client.stop()

