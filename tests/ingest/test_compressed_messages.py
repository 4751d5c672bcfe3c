"""A compressed message (codec message version 2, the collector's `publish.compress`) and a
plain one, published side by side, are stored alike in both sinks."""

from __future__ import annotations

from ess.codec import encode_frames

from .helpers import attrs, count_rows, expected_rows, make_frames, stored_rows, wait_for


def test_compressed_and_plain_messages_are_stored_alike(stack, pipe):
    plain, packed = make_frames("zipped", 4), make_frames("zipped", 6, start=4)
    pipe.publish(plain)
    pipe.publish_raw(encode_frames(packed, compress=True),
                     **{**attrs(packed), "schema_version": "2"})
    want = expected_rows(plain + packed)
    n = sum(len(t) for t in want.values())
    for sink, dsn in stack.dsn.items():
        wait_for(lambda d=dsn: count_rows(d, "zipped") == n, 30, f"{n} rows in {sink}")
        assert stored_rows(dsn, "zipped") == want, sink
