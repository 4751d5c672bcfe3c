"""Pub/Sub emulator process and admin helpers (topics, pull and push subscriptions).

The official emulator (google-cloud-cli-pubsub-emulator, Java) is the main path. When it is not
installed, a `pstest` server (Google's Go fake, built by infra/local/install.sh) is used instead.
Clients reach either through `PUBSUB_EMULATOR_HOST`; the helpers here talk to it directly over an
insecure gRPC channel, so they need no environment changes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from .procs import LOCALHOST, ManagedProcess, Service, refuse_if_forbidden

OFFICIAL_BIN = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_CACHE = os.environ.get("ESS_LOCAL_CACHE") or (
    "/var/cache/ess-local" if os.geteuid() == 0
    else os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ess-local")
)
PSTEST_BIN = Path(os.environ.get("ESS_PSTEST_BIN") or os.path.join(_CACHE, "pstest/ess-pstest"))


class EmulatorUnavailable(RuntimeError):
    """No Pub/Sub emulator (official or pstest) is installed."""


def available_kind() -> str:
    """`official` or `pstest`: the emulator `Emulator.start()` would run; raise if neither.

    `ESS_PUBSUB_KIND=official|pstest` forces one.
    """
    want = os.environ.get("ESS_PUBSUB_KIND", "")
    if want in ("", "official") and OFFICIAL_BIN.exists() and shutil.which("java"):
        return "official"
    if want in ("", "pstest") and PSTEST_BIN.exists():
        return "pstest"
    raise EmulatorUnavailable(
        f"no Pub/Sub emulator{' of kind ' + want if want else ''}: "
        f"neither {OFFICIAL_BIN} (with java) nor {PSTEST_BIN}; "
        "run `make system-deps` (infra/local/install.sh)"
    )


class PubSub:
    """Admin and test helpers for a Pub/Sub emulator at `host` (`127.0.0.1:PORT`)."""

    def __init__(self, host: str, project: str) -> None:
        self.host = host
        self.project = project
        self._pub: pubsub_v1.PublisherClient | None = None
        self._sub: pubsub_v1.SubscriberClient | None = None

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        """A publisher client bound to the emulator."""
        if self._pub is None:
            transport = PublisherGrpcTransport(channel=grpc.insecure_channel(self.host))
            self._pub = pubsub_v1.PublisherClient(transport=transport)
        return self._pub

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        """A subscriber client bound to the emulator."""
        if self._sub is None:
            transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self.host))
            self._sub = pubsub_v1.SubscriberClient(transport=transport)
        return self._sub

    def close(self) -> None:
        """Close the clients' channels."""
        if self._pub is not None:
            self._pub.stop()
            self._pub.transport.close()
        if self._sub is not None:
            self._sub.close()
        self._pub = self._sub = None

    def topic_path(self, topic: str) -> str:
        """`projects/P/topics/T`."""
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, sub: str) -> str:
        """`projects/P/subscriptions/S`."""
        return f"projects/{self.project}/subscriptions/{sub}"

    def create_topic(self, topic: str) -> str:
        """Create the topic if missing; return its path."""
        path = self.topic_path(topic)
        try:
            self.publisher.create_topic(request={"name": path}, timeout=10)
        except gexc.AlreadyExists:
            pass
        return path

    def _create_sub(self, request: dict) -> str:
        try:
            self.subscriber.create_subscription(request=request, timeout=10)
        except gexc.AlreadyExists:
            pass
        return request["name"]

    def create_pull_subscription(self, sub: str, topic: str, ack_deadline: int = 10) -> str:
        """Create a pull subscription to `topic` if missing; return its path."""
        return self._create_sub({
            "name": self.subscription_path(sub),
            "topic": self.topic_path(topic),
            "ack_deadline_seconds": ack_deadline,
        })

    def create_push_subscription(
        self,
        sub: str,
        topic: str,
        endpoint: str,
        *,
        ack_deadline: int = 10,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        min_backoff_s: float | None = None,
        max_backoff_s: float | None = None,
    ) -> str:
        """Create a push subscription delivering to `endpoint` (http URL); return its path.

        `dead_letter_topic` (a topic name) adds a dead-letter policy; either backoff adds a
        retry policy.
        """
        req: dict = {
            "name": self.subscription_path(sub),
            "topic": self.topic_path(topic),
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": ack_deadline,
        }
        if dead_letter_topic:
            req["dead_letter_policy"] = {
                "dead_letter_topic": self.topic_path(dead_letter_topic),
                "max_delivery_attempts": max_delivery_attempts,
            }
        if min_backoff_s is not None or max_backoff_s is not None:
            req["retry_policy"] = {
                "minimum_backoff": {"seconds": int(min_backoff_s or 10)},
                "maximum_backoff": {"seconds": int(max_backoff_s or 600)},
            }
        return self._create_sub(req)

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message and return its id."""
        return self.publisher.publish(self.topic_path(topic), data, **attributes).result(30)

    def pull(self, sub: str, max_messages: int = 10, timeout: float = 10.0) -> list:
        """Pull and ack up to `max_messages`; return the `PubsubMessage`s (maybe empty)."""
        resp = self.subscriber.pull(
            request={"subscription": self.subscription_path(sub), "max_messages": max_messages},
            timeout=timeout,
        )
        if resp.received_messages:
            self.subscriber.acknowledge(request={
                "subscription": self.subscription_path(sub),
                "ack_ids": [m.ack_id for m in resp.received_messages],
            })
        return [m.message for m in resp.received_messages]


class Emulator(Service):
    """A Pub/Sub emulator on 127.0.0.1:`port` for `project`; `kind` tells which one runs."""

    def __init__(self, port: int, project: str, log_dir: str | Path | None = None) -> None:
        self.port = port
        self.project = project
        self.host = f"{LOCALHOST}:{port}"
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="ess-pubsub-"))
        self.kind: str | None = None
        self._proc: ManagedProcess | None = None
        self._admin: PubSub | None = None

    def env(self) -> dict[str, str]:
        """Environment for clients: `PUBSUB_EMULATOR_HOST` (and `PUBSUB_PROJECT_ID`)."""
        return {"PUBSUB_EMULATOR_HOST": self.host, "PUBSUB_PROJECT_ID": self.project}

    @property
    def admin(self) -> PubSub:
        """Helpers bound to this emulator."""
        if self._admin is None:
            self._admin = PubSub(self.host, self.project)
        return self._admin

    def _ready(self) -> bool:
        probe = PubSub(self.host, self.project)
        try:
            list(probe.publisher.list_topics(request={"project": f"projects/{self.project}"},
                                             timeout=2))
            return True
        finally:
            probe.close()

    def start(self, timeout: float = 60.0) -> Emulator:
        """Start the emulator and wait until it answers gRPC calls."""
        if self._proc is not None and self._proc.running:
            return self
        refuse_if_forbidden("the Pub/Sub emulator")
        self.kind = available_kind()
        env = dict(os.environ)
        if self.kind == "official":
            argv = [str(OFFICIAL_BIN), f"--host={LOCALHOST}", f"--port={self.port}"]
            env.setdefault("JAVA_OPTS", "-Xmx512m")
        else:
            argv = [str(PSTEST_BIN), f"--addr={self.host}"]
        self._proc = ManagedProcess(
            argv, name=f"pubsub-{self.kind}:{self.port}",
            log_path=self.log_dir / f"pubsub-{self.port}.log", env=env,
        ).start()
        self._proc.wait_ready(self.port, timeout=timeout, check=self._ready)
        return self

    def stop(self) -> None:
        """Stop the emulator (and close helper clients)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

