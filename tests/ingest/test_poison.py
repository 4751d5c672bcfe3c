"""Poison messages are acknowledged, logged with their reason and kept in quarantine."""

from __future__ import annotations

import json
import time

from ess.codec import MAGIC

from .conftest import BUCKET
from .helpers import body, count_rows, expected_rows, log_events, make_frames, stored_rows, wait_for


def test_poison_messages_are_quarantined_and_others_unaffected(stack, pipe):
    good = make_frames("poison", 4)
    whole = body(make_frames("poison", 2, start=100))
    unknown_site = make_frames("nowhere", 1)
    unknown_map = make_frames("poison", 1, start=200)
    unknown_map[0].map_version = 99
    poison = {
        "undecodable_frame": whole[: len(whole) - 7],                 # truncated frame
        "unknown_codec_version": MAGIC + bytes([9]) + whole[5:],      # codec version 9
        "unknown_site": body(unknown_site),
        "unknown_map_version": body(unknown_map),
    }
    garbage_id = pipe.publish_raw(b"\x00garbage\xff" * 5, site_id="poison")
    ids = {pipe.publish_raw(data, site_id="poison"): reason for reason, data in poison.items()}
    ids[garbage_id] = "undecodable_frame"
    pipe.publish(good[:2])
    pipe.publish(good[2:])
    n = 4 * 11
    bucket = stack.gcs.client().bucket(BUCKET)
    for sink, fn in stack.functions.items():
        wait_for(lambda d=stack.dsn[sink]: count_rows(d, "poison") == n, 30, f"rows in {sink}")
        wait_for(lambda f=fn, s=sink: _reasons(f, s, ids) == set(ids), 30, f"{sink} logs")
    time.sleep(1.5)  # a redelivery (not acknowledged) would come after 1 s
    for sink, fn in stack.functions.items():
        events = [e for e in log_events(fn.log_path, sink=sink)
                  if e.get("message_id") in ids and e.get("reason")]
        for e in events:
            assert e["reason"] == ids[e["message_id"]] and e["severity"] == "ERROR"
            assert e["error"] and e["quarantine"].startswith(f"gs://{BUCKET}/quarantine/{sink}/")
            blob = bucket.get_blob(e["quarantine"].split("/", 3)[3])
            assert blob.metadata["reason"] == e["reason"]
            assert blob.metadata["message_id"] == e["message_id"]
            assert json.loads(blob.metadata["attributes"]) == {"site_id": "poison"}
            sent = poison.get(e["reason"]) if e["message_id"] != garbage_id else None
            assert blob.download_as_bytes() == (sent or b"\x00garbage\xff" * 5)
        # acknowledged: no redelivery, so exactly one log line per poison message
        assert sorted(e["message_id"] for e in events) == sorted(ids)
        assert stored_rows(stack.dsn[sink], "poison") == expected_rows(good)
        assert count_rows(stack.dsn[sink], "nowhere") == 0


def _reasons(fn, sink, ids):
    return {e["message_id"] for e in log_events(fn.log_path, sink=sink)
            if e.get("message_id") in ids and e.get("reason")}
