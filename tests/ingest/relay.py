"""Pull-and-post: deliver a pull subscription to an HTTP endpoint as Pub/Sub push would.

The official emulator extends a message's deadline by a fixed 1000 s after a failed push
(PushLoop.dispatchMessages) and ignores the subscription's retry policy, so a sink that is down
for more than a few seconds would not see its messages again for ~17 minutes. The failover tests
therefore pull from the same emulator and post the push envelope themselves, nacking failures
with the retry policy's minimum backoff, exactly as Pub/Sub does.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from google.api_core import exceptions as gexc


def envelope(message, subscription: str) -> dict:
    """The JSON body Pub/Sub pushes for `message` (a PubsubMessage)."""
    return {"message": {"data": base64.b64encode(message.data).decode(),
                        "attributes": dict(message.attributes),
                        "messageId": message.message_id,
                        "publishTime": message.publish_time.isoformat().replace("+00:00", "Z")},
            "subscription": subscription}


class PushRelay:
    """Pulls `subscription` and posts each message to `endpoint`; acks on 2xx, else nacks."""

    def __init__(self, admin, subscription: str, endpoint: str, min_backoff_s: int = 1,
                 workers: int = 4):
        self.admin, self.subscription, self.endpoint = admin, subscription, endpoint
        self.backoff = min_backoff_s
        self.pool = ThreadPoolExecutor(workers)
        self.http = requests.Session()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.posts = 0
        self.failures = 0

    def start(self) -> PushRelay:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True)

    def _deliver(self, rm) -> None:
        sub = self.admin.subscriber
        try:
            resp = self.http.post(self.endpoint, json=envelope(rm.message, self.subscription),
                                  timeout=30)
            ok = 200 <= resp.status_code < 300
        except requests.RequestException:
            ok = False
        self.posts += 1
        if ok:
            sub.acknowledge(request={"subscription": self.subscription, "ack_ids": [rm.ack_id]})
        else:
            self.failures += 1
            sub.modify_ack_deadline(request={"subscription": self.subscription,
                                             "ack_ids": [rm.ack_id],
                                             "ack_deadline_seconds": self.backoff})

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                resp = self.admin.subscriber.pull(
                    request={"subscription": self.subscription, "max_messages": 8}, timeout=2)
            except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                continue
            futures = [self.pool.submit(self._deliver, rm) for rm in resp.received_messages]
            for f in futures:
                f.result()
            if not futures:
                self.stop_event.wait(0.1)
