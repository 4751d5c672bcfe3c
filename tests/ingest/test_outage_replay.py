"""A sink down longer than its retry budget loses nothing: its messages go to the dead-letter
topic, and the documented recovery (`ess replay-dead-letters` with the routes Terraform prints)
sends each back to that sink only (issue 21, item 1).

The budget is compressed: 5 delivery attempts (Pub/Sub's minimum) 1 s apart instead of 100 up
to 600 s apart. Delivery is pull-and-post (relay.py: the emulator's own push ignores the retry
policy); the emulator counts the attempts and dead-letters with the real
`CloudPubSubDeadLetterSourceSubscription` attribute. Each sink also has its replay topic and a
subscription to it delivering to the same function, as infra/replay.tf deploys them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta

from ess.cli import main as ess_main
from ess.codec import encode_frames
from google.api_core import exceptions as gexc

from .helpers import count_rows, make_frames, wait_for
from .relay import PushRelay

SITE = "outage"
ATTEMPTS = 5
ROWS_PER_FRAME = 11      # bank, 8 racks, pcs, etc


class OutagePipe:
    """Frames topic, one subscription per sink with a dead-letter policy, the dead-letter topic
    and its pull subscription, and a replay topic per sink; relays deliver every subscription."""

    def __init__(self, stack, name: str):
        self.admin, self.stack = stack.pubsub.admin, stack
        a = self.admin
        self.topic, self.dead = name, f"{name}-dl"
        for t in (name, self.dead, *(f"{name}-replay-{s}" for s in stack.functions)):
            a.create_topic(t)
        self.dead_sub = a.create_pull_subscription(self.dead, self.dead, ack_deadline=30)
        self.relays: dict[str, PushRelay] = {}
        self.routes: list[str] = []
        for sink, fn in stack.functions.items():
            for sub, topic in ((f"{name}-{sink}", name),
                               (f"{name}-replay-{sink}", f"{name}-replay-{sink}")):
                path = a.subscription_path(sub)
                a.subscriber.create_subscription(request={
                    "name": path, "topic": a.topic_path(topic), "ack_deadline_seconds": 10,
                    "dead_letter_policy": {"dead_letter_topic": a.topic_path(self.dead),
                                           "max_delivery_attempts": ATTEMPTS}}, timeout=10)
                self.relays[sub] = PushRelay(a, path, fn.url).start()
                self.routes += ["--route", f"{sub}={a.topic_path(f'{name}-replay-{sink}')}"]

    def publish(self, frames) -> None:
        for i in range(0, len(frames), 2):
            part = frames[i:i + 2]
            self.admin.publish(self.topic, encode_frames(part), site_id=SITE,
                               frame_count=str(len(part)))

    def dead_letters_left(self) -> int:
        try:
            resp = self.admin.subscriber.pull(
                request={"subscription": self.dead_sub, "max_messages": 100}, timeout=5)
        except gexc.DeadlineExceeded:
            return 0
        return len(resp.received_messages)

    def close(self) -> None:
        for r in self.relays.values():
            r.stop()


def _status(dsn: str, stack, frames, capsys) -> dict:
    day0 = (frames[0].poll_start - timedelta(days=1)).date()
    capsys.readouterr()
    ess_main(["status", "--dsn", dsn, "--sites", str(stack.sites_path), "--site", SITE,
              "--from", str(day0), "--to", str((frames[-1].poll_start + timedelta(days=1)).date()),
              "--json"])
    doc = json.loads(capsys.readouterr().out)
    days = [d for d in doc["days"] if d["bank_id"] == 1]
    return {"stored": sum(d["stored"] for d in days), "lost": sum(d["lost"] for d in days)}


def test_a_sink_down_past_its_retry_budget_recovers_by_replay(stack, capsys):
    pipe = OutagePipe(stack, f"t-outage-{uuid.uuid4().hex[:8]}")
    frames = make_frames(SITE, 40)
    dsn, n = stack.dsn, ROWS_PER_FRAME
    try:
        pipe.publish(frames[:10])
        for sink in dsn:
            wait_for(lambda s=sink: count_rows(dsn[s], SITE) == 10 * n, 30, f"{sink}: 10 frames")
        stack.clusters["replica"].stop()
        try:
            pipe.publish(frames[10:30])          # 10 messages the replica cannot store
            wait_for(lambda: count_rows(dsn["main"], SITE) == 30 * n, 30, "main: 30 frames")
            relay = pipe.relays[f"{pipe.topic}-replica"]
            wait_for(lambda: relay.failures >= 10 * ATTEMPTS, 60,
                     "every message failing its 5 deliveries on the replica")
            wait_for(lambda: _quiet(relay), 30,
                     "the replica's subscription giving up (dead-lettering)")
        finally:
            stack.clusters["replica"].start()
        pipe.publish(frames[30:])
        wait_for(lambda: count_rows(dsn["replica"], SITE) == 20 * n, 30, "replica: 20 frames")
        assert _status(dsn["replica"], stack, frames, capsys) == {"stored": 20, "lost": 20}

        # the documented recovery: the routes of every subscription, as Terraform prints them
        env = {**os.environ, **stack.pubsub.env()}
        done = subprocess.run([sys.executable, "-m", "ess.cli", "replay-dead-letters",
                               "--subscription", pipe.dead_sub, "--pull-timeout", "2",
                               *pipe.routes], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        # to the replica's replay topic only: the 10 messages it failed, each once (Pub/Sub
        # forwards at least once; a copy is acknowledged, not replayed). A message of the last
        # 10 frames may also have been dead-lettered after a slow success: replayed, a duplicate.
        replay_replica = f"{stack.pubsub.admin.topic_path(pipe.topic)}-replay-replica"
        m = re.fullmatch(rf"ess replay-dead-letters: replayed (\d+) to {re.escape(replay_replica)}"
                         r"(; skipped \d+ copies for \S+ \(a letter forwarded more than once\))?\n",
                         done.stdout)
        assert m and 10 <= int(m[1]) <= 15, done.stdout
        wait_for(lambda: count_rows(dsn["replica"], SITE) == 40 * n, 60, "replica: all frames")
    finally:
        pipe.close()
    for sink in dsn:
        assert _status(dsn[sink], stack, frames, capsys) == {"stored": 40, "lost": 0}, sink
        assert count_rows(dsn[sink], SITE) == 40 * n, sink
    assert pipe.dead_letters_left() == 0


def _quiet(relay: PushRelay) -> bool:
    """No post for 3 s (the subscription has nothing left to deliver)."""
    import time

    before = relay.posts
    time.sleep(3)
    return relay.posts == before
