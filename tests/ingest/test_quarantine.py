"""Quarantine keeps a poison message once: a redelivery finds it already kept (412 = success)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ess_functions.ingest.envelope import Message
from ess_functions.ingest.quarantine import Quarantine


def test_a_kept_message_is_not_overwritten_and_counts_as_kept(gcs_emulator, monkeypatch,
                                                              tmp_path):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    bucket = f"ess-test-q-{uuid.uuid4().hex[:8]}"
    gcs_emulator.create_bucket(bucket)
    message = Message("m/1", b"\x00poison", {"site_id": "s"}, datetime(2025, 1, 2, tzinfo=UTC))
    key = "quarantine/main/2025-01-02/m_1.bin"
    for target, uri in ((bucket, f"gs://{bucket}/{key}"),
                        (str(tmp_path / "q"), str(tmp_path / "q" / key))):
        q = Quarantine(target)
        assert q.keep(message, "main", "unknown_site", "first") == uri
        assert q.keep(message, "main", "unknown_site", "second") == uri   # a redelivery
        assert q.store.get(key) == b"\x00poison"
        meta = q.store.stat(key).metadata
        assert meta["detail"] == "first" and meta["reason"] == "unknown_site"
        assert meta["message_id"] == "m/1" and q.store.list("quarantine/") == [key]
