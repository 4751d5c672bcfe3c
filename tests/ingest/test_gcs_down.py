"""The quarantine bucket unreachable (issue 13 item 8): a poison message fails, so Pub/Sub
retries it, well within the function's timeout (gcs.TIMEOUT and gcs.RETRY_DEADLINE), instead
of holding a thread for the client's default two minutes."""

from __future__ import annotations

import time

from ess_functions import gcs
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port

from .conftest import BUCKET, ROOT
from .test_bad_input_table import post, push

BOUND = 45.0   # s: below the ingest function's 60 s request timeout


def test_poison_message_fails_fast_when_the_bucket_is_unreachable(stack, tmp_path):
    assert gcs.RETRY_DEADLINE + gcs.TIMEOUT < BOUND
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"ESS_DB_DSN": stack.dsn["main"], "ESS_SINK": "main",
           "ESS_SITES_CONFIG": str(stack.sites_path), "ESS_QUARANTINE_BUCKET": BUCKET,
           "STORAGE_EMULATOR_HOST": closed}
    with FunctionProcess("ingest", ROOT / "functions/ingest/main.py", free_port(),
                         signature_type="cloudevent", log_dir=tmp_path, env=env) as fn:
        t0 = time.monotonic()
        status = post(fn.url, push(b"ESSM\x01\x00\x00"))   # zero frames: to quarantine
        took = time.monotonic() - t0
    assert status >= 500, status       # not acknowledged: Pub/Sub delivers it again
    assert took < BOUND, took
