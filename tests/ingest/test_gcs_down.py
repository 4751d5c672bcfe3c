"""The quarantine bucket unreachable (issue 13 item 8): a poison message fails, so Pub/Sub
retries it, well within the function's timeout (gcs.TIMEOUT and gcs.RETRY_DEADLINE), instead
of holding a thread for the client's default two minutes. One deadline (KEEP_DEADLINE) covers
all of keep(), so a message kept with a sidecar (two writes) is no slower."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.error
import urllib.request

from ess_functions.ingest.quarantine import ID_META_MAX, KEEP_DEADLINE
from ess_functions.objstore import gcs
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port

from .conftest import BUCKET, ROOT
from .test_bad_input_table import push

BOUND = 45.0   # s: below the ingest function's 60 s request timeout


def _post(url: str, body: bytes) -> int:
    """POST with a client timeout far above BOUND (a slow answer is measured, not cut off)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3 * BOUND) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _post_unreachable(stack, tmp_path, body: bytes, gcs_url: str) -> tuple[int, float]:
    """Status and seconds of one push to an ingest function whose GCS is at `gcs_url`."""
    env = {"ESS_DB_DSN": stack.dsn["main"], "ESS_SINK": "main",
           "ESS_SITES_CONFIG": str(stack.sites_path), "ESS_QUARANTINE_BUCKET": BUCKET,
           "STORAGE_EMULATOR_HOST": gcs_url}
    with FunctionProcess("ingest", ROOT / "functions/ingest/main.py", free_port(),
                         signature_type="cloudevent", log_dir=tmp_path, env=env) as fn:
        t0 = time.monotonic()
        status = _post(fn.url, body)
        return status, time.monotonic() - t0


def test_poison_message_fails_fast_when_the_bucket_is_unreachable(stack, tmp_path):
    assert gcs.RETRY_DEADLINE + gcs.TIMEOUT < BOUND
    closed = f"http://127.0.0.1:{free_port()}"
    status, took = _post_unreachable(stack, tmp_path, push(b"ESSM\x01\x00\x00"),  # zero frames
                                     closed)
    assert status >= 500, status       # not acknowledged: Pub/Sub delivers it again
    assert took < BOUND, took


class _SlowBucket(http.server.BaseHTTPRequestHandler):
    """GCS that never answers a write of the quarantined object and answers the sidecar's only
    on its third attempt, 8 s late: the slowest a sidecar write can succeed (~30 s)."""

    sidecar_tries = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if re.search(rb'"name":\s*"[^"]*\.meta\.json"', body):   # (the object names it too)
            type(self).sidecar_tries += 1
            if type(self).sidecar_tries >= 3:
                time.sleep(8.0)
                doc = json.dumps({"name": "x.meta.json", "bucket": BUCKET, "generation": "1",
                                  "metageneration": "1", "size": "1"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                self.wfile.write(doc)
                return
        time.sleep(gcs.TIMEOUT + 1)    # the client has given up: no answer
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_poison_message_with_a_sidecar_has_one_deadline(stack, tmp_path):
    """Sidecar and object each with RETRY_DEADLINE of retries: a sidecar written after ~30 s,
    then an object write failing after ~33 s more, outlived the function's 60 s. Within one
    KEEP_DEADLINE, the object's write gets only the time left."""
    assert KEEP_DEADLINE + gcs.TIMEOUT < BOUND
    mid = "m" * (ID_META_MAX + 1)      # too long for metadata: the record goes to a sidecar
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowBucket)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, took = _post_unreachable(stack, tmp_path, push(b"ESSM\x01\x00\x00", mid=mid),
                                         f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert _SlowBucket.sidecar_tries == 3, _SlowBucket.sidecar_tries   # the sidecar was kept
    assert status >= 500, status
    assert took < BOUND, took
