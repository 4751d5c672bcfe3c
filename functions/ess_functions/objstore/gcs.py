"""The process's one Cloud Storage client, and the time limits of every call made with it."""

from __future__ import annotations

import threading

# Every GCS call gets an explicit timeout and a retry whose deadline stays below the shortest
# function timeout (ingest: 60 s), so a stalled call fails the request instead of outliving it.
TIMEOUT = 10.0         # s per HTTP request
RETRY_DEADLINE = 30.0  # s for all retries of one call

_lock = threading.Lock()
_client = None


def client():
    """One google-cloud-storage client per process, created on first use.

    It honours STORAGE_EMULATOR_HOST (the local stack's fake-gcs-server).
    """
    global _client
    with _lock:
        if _client is None:
            from google.cloud import storage

            _client = storage.Client()
        return _client


def retry(seconds: float = RETRY_DEADLINE):
    """The retry policy of every call: storage's default predicate, at most `seconds` (and
    RETRY_DEADLINE) overall."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(min(seconds, RETRY_DEADLINE))
