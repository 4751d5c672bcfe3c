"""The ingest stack: two TimescaleDB clusters (main, replica), the Pub/Sub emulator pushing to
two functions-framework processes (one per sink), and a GCS emulator for quarantine and archive.

Every test gets its own topic and push subscriptions and uses its own site ids, so the session's
services are shared without interference.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.regmap import load_map
from ess_local.functions import FunctionProcess
from ess_local.gcs import GcsEmulator
from ess_local.postgres import Cluster
from ess_local.procs import free_port
from ess_local.pubsub import Emulator
from google.api_core import exceptions as gexc

from .helpers import attrs, body
from .relay import PushRelay

ROOT = Path(__file__).resolve().parents[2]
SITES = ("exact", "dup", "replica", "restart", "poison", "redecode", "other", "outage", "zipped")
BUCKET = "ess-test-quarantine"
ARCHIVE_BUCKET = "ess-test-raw"
_NOTES: list[str] = []


def _cluster(root: Path, name: str) -> Cluster:
    for _ in range(3):
        c = Cluster(root / name, free_port(), durable=False)
        try:
            return c.start()
        except Exception as exc:  # noqa: BLE001 - a lost port race; retried
            err = exc
            c.stop()
    pytest.fail(f"PostgreSQL cluster {name} could not start: {err}", pytrace=False)


def _database(cluster: Cluster) -> str:
    dsn = cluster.create_database("ess", timescale=True)
    conn = connect_dsn(dsn)
    try:
        migrate(conn, [load_map()])
    finally:
        conn.close()
    return dsn


@dataclass
class Stack:
    """The running services."""

    clusters: dict[str, Cluster]
    dsn: dict[str, str]
    functions: dict[str, FunctionProcess]
    pubsub: Emulator
    gcs: GcsEmulator
    sites_path: Path
    path: str = ""
    notes: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def stack(request, stack_dir: Path, pubsub_emulator: Emulator,
          gcs_emulator: GcsEmulator) -> Iterator[Stack]:
    root = stack_dir / "ingest"
    root.mkdir(exist_ok=True)
    clusters = {s: _cluster(root, f"pg-{s}") for s in ("main", "replica")}
    dsn = {s: _database(c) for s, c in clusters.items()}
    sites = {"sites": [{"site_id": s, "devices": [
        {"host": "127.0.0.1", "port": 15020 + 2 * i + b, "bank_id": b + 1} for b in range(2)]}
        for i, s in enumerate(SITES)]}
    sites_path = root / "sites.yaml"
    sites_path.write_text(yaml.safe_dump(sites))
    gcs_emulator.create_bucket(BUCKET)
    gcs_emulator.create_bucket(ARCHIVE_BUCKET)
    functions = {}
    for sink in ("main", "replica"):
        functions[sink] = FunctionProcess(
            "ingest", ROOT / "functions/ingest/main.py", free_port(),
            signature_type="cloudevent", log_dir=root,
            env={"ESS_DB_DSN": dsn[sink], "ESS_SINK": sink, "ESS_SITES_CONFIG": str(sites_path),
                 "ESS_QUARANTINE_BUCKET": BUCKET, "THREADS": "4", **gcs_emulator.env()},
        ).start()
    path = (f"{pubsub_emulator.kind} Pub/Sub emulator push subscriptions -> "
            "functions-framework")
    _NOTES.append(f"[ingest] delivery path: {path}")
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"\n{_NOTES[-1]}")
    st = Stack(clusters, dsn, functions, pubsub_emulator, gcs_emulator, sites_path, path)
    yield st
    for fn in functions.values():
        fn.stop()
    for c in clusters.values():
        c.stop()


class Pipe:
    """A topic with one subscription per sink pushing to its function (and optionally an
    archive pull subscription). With `relay`, each sink's subscription is a pull subscription
    delivered by a PushRelay (pull-and-post) that honours the 1 s minimum backoff."""

    def __init__(self, stack: Stack, name: str, relay: bool = False):
        self.stack, self.admin = stack, stack.pubsub.admin
        self.topic = name
        self.relays: list[PushRelay] = []
        self.admin.create_topic(name)
        self.dead_letter = None if relay else f"{name}-dead-letter"
        if self.dead_letter:   # as in production: failures end there after 5 deliveries
            self.admin.create_topic(self.dead_letter)
            self.admin.create_pull_subscription(self.dead_letter, self.dead_letter)
        for sink, fn in stack.functions.items():
            if relay:
                path = self.admin.create_pull_subscription(f"{name}-{sink}", name, 10)
                self.relays.append(PushRelay(self.admin, path, fn.url).start())
            else:
                self.admin.create_push_subscription(f"{name}-{sink}", name, fn.url,
                                                    ack_deadline=10, min_backoff_s=1,
                                                    max_backoff_s=2,
                                                    dead_letter_topic=self.dead_letter,
                                                    max_delivery_attempts=5)

    def dead_letters(self) -> list:
        """What reached the dead-letter subscription (nothing should: issue 13)."""
        if not self.dead_letter:
            return []
        try:
            return self.admin.pull(self.dead_letter, max_messages=100, timeout=3)
        except gexc.DeadlineExceeded:
            return []

    def close(self) -> None:
        for r in self.relays:
            r.stop()

    def archive_subscription(self) -> str:
        return self.admin.create_pull_subscription(f"{self.topic}-archive", self.topic,
                                                   ack_deadline=60)

    def publish(self, frames) -> str:
        return self.admin.publish(self.topic, body(frames), **attrs(frames))

    def publish_raw(self, data: bytes, **attributes: str) -> str:
        return self.admin.publish(self.topic, data, **attributes)


def _topic(request) -> str:
    return "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:60]


@pytest.fixture
def pipe(stack: Stack, request) -> Iterator[Pipe]:
    """Push subscriptions on the emulator itself."""
    p = Pipe(stack, _topic(request))
    yield p
    p.close()
    dead = p.dead_letters()
    assert not dead, f"{len(dead)} message(s) reached the dead-letter topic: {dead[:3]}"


@pytest.fixture
def relay_pipe(stack: Stack, request) -> Iterator[Pipe]:
    """Pull-and-post delivery (the emulator's own push redelivers a failure after 1000 s)."""
    p = Pipe(stack, _topic(request), relay=True)
    _NOTES.append(f"[ingest] {request.node.name}: delivery path: pull-and-post relay on the "
                  f"{stack.pubsub.kind} emulator (retry policy honoured: 1 s backoff)")
    yield p
    p.close()


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which delivery path ran."""
    for line in _NOTES:
        terminalreporter.write_line(line)
