"""Quarantine records in-process (ingest/quarantine.py), kept in a local directory store: the
object's name, its metadata within Cloud Storage's limits, the sidecar when the id or the
attributes do not fit, and keeping a redelivered message again is a success."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from ess_functions.ingest.envelope import Message
from ess_functions.ingest.errors import QuarantineError
from ess_functions.ingest.quarantine import (
    ATTRS_META_MAX,
    DETAIL_MAX,
    ID_MAX,
    ID_META_MAX,
    METADATA_MAX,
    Quarantine,
    metadata_size,
    object_name,
    record,
)

WHEN = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))   # 01:30 UTC next day


def msg(mid: str = "m-1", data: bytes = b"\x00poison\xff", **attrs) -> Message:
    return Message(mid, data, attrs or {"site_id": "site-a"}, WHEN)


def test_the_name_is_sink_publish_day_in_utc_and_a_safe_id():
    assert object_name("main", "m-1", WHEN) == "quarantine/main/2026-03-02/m-1.bin"
    assert object_name("replica", "a/b c?é", WHEN) == "quarantine/replica/2026-03-02/a_b_c__.bin"
    assert object_name("main", "", WHEN).endswith("/unknown.bin")


def test_a_long_id_is_cut_and_hashed_so_names_stay_distinct_and_short():
    a, b = "x" * 500 + "a", "x" * 500 + "b"
    name_a, name_b = object_name("main", a, WHEN), object_name("main", b, WHEN)
    assert name_a != name_b
    assert len(name_a.rsplit("/", 1)[1]) == ID_MAX + len(".bin")
    assert len(name_a.encode()) <= 1024


def test_a_record_fits_in_metadata():
    meta, sidecar = record(msg(), "main", "undecodable_frame", "truncated frame")
    assert sidecar is None
    assert meta == {"reason": "undecodable_frame", "detail": "truncated frame", "sink": "main",
                    "message_id": "m-1", "attributes": '{"site_id": "site-a"}',
                    "publish_time": WHEN.isoformat()}


def test_a_long_detail_is_clipped_on_a_character_boundary():
    meta, _ = record(msg(), "main", "bad_payload", "é" * DETAIL_MAX)
    assert len(meta["detail"].encode()) <= DETAIL_MAX
    assert meta["detail"] == "é" * (DETAIL_MAX // 2)


@pytest.mark.parametrize("mid, attrs", [
    ("i" * (ID_META_MAX + 1), {"site_id": "site-a"}),
    ("m-1", {f"k{i}": "v" * 100 for i in range(ATTRS_META_MAX // 100)}),
])
def test_what_does_not_fit_goes_whole_to_the_sidecar(mid, attrs):
    meta, sidecar = record(Message(mid, b"x", attrs, WHEN), "main", "bad_payload", "why")
    assert sidecar == {"reason": "bad_payload", "detail": "why", "sink": "main",
                       "message_id": mid, "attributes": attrs,
                       "publish_time": WHEN.isoformat()}
    assert meta["attributes"] == "" and "sidecar" in meta["truncated"]
    assert len(meta["message_id"].encode()) <= ID_META_MAX
    assert metadata_size(meta) <= METADATA_MAX


def test_keeping_writes_the_bytes_and_the_metadata(tmp_path):
    q = Quarantine(str(tmp_path / "q"))
    uri = q.keep(msg(), "main", "unknown_site", "site-x is not configured")
    assert uri == str(tmp_path / "q" / "quarantine/main/2026-03-02/m-1.bin")
    stored = q.store.stat("quarantine/main/2026-03-02/m-1.bin")
    assert q.store.get("quarantine/main/2026-03-02/m-1.bin") == b"\x00poison\xff"
    assert stored.metadata["reason"] == "unknown_site"
    assert stored.metadata["detail"] == "site-x is not configured"


def test_a_sidecar_is_written_and_named_in_the_metadata(tmp_path):
    q = Quarantine(str(tmp_path / "q"))
    long_id = "i" * 600
    q.keep(Message(long_id, b"x", {"a": "b"}, WHEN), "main", "bad_payload", "why")
    [name] = [n for n in q.store.list("quarantine/") if n.endswith(".bin")]
    meta = q.store.stat(name).metadata
    assert meta["sidecar"] == name + ".meta.json"
    doc = json.loads(q.store.get(meta["sidecar"]))
    assert doc["message_id"] == long_id and doc["attributes"] == {"a": "b"}


def test_a_redelivered_message_is_kept_once(tmp_path):
    q = Quarantine(str(tmp_path / "q"))
    first = q.keep(msg(data=b"first"), "main", "no_blocks", "one")
    again = q.keep(msg(data=b"second"), "main", "no_blocks", "two")
    assert first == again
    name = "quarantine/main/2026-03-02/m-1.bin"
    assert q.store.get(name) == b"first" and q.store.stat(name).metadata["detail"] == "one"


def test_without_a_store_or_when_the_store_fails_the_delivery_fails(tmp_path):
    with pytest.raises(QuarantineError, match="ESS_QUARANTINE_BUCKET is not set"):
        Quarantine(None).keep(msg(), "main", "no_blocks", "x")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(QuarantineError) as err:
        Quarantine(str(tmp_path / "file" / "q")).keep(msg(), "main", "no_blocks", "x")
    assert err.value.transient


def test_a_bucket_name_or_url_is_a_bucket_and_a_path_a_directory(tmp_path):
    assert Quarantine("my-bucket").store.url == "gs://my-bucket"
    assert Quarantine("gs://my-bucket/pre").store.url == "gs://my-bucket/pre"
    assert Quarantine(str(tmp_path)).store.url == str(tmp_path)
    assert Quarantine(None).store is None
