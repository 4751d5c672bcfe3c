"""The README's error policy, made executable: each bad input is posted to the real ingest
function (functions-framework), and the status, the rows written and the quarantine object with
its reason are checked. A second test checks that the README lists exactly the reason codes
the code defines."""

from __future__ import annotations

import base64
import importlib
import json
import pkgutil
import re
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from ess.codec import BlockData, encode_frames
from ess.errors import EssError
from ess.regmap import load_map_file
from ess_functions.ingest.envelope import body_id
from ess_functions.ingest.quarantine import METADATA_MAX, metadata_size, object_name
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port

from .conftest import ROOT
from .helpers import count_rows, make_frames

SITE, EXT_SITE = "badin", "badin-ext"
MAX_BYTES, MAX_FRAMES = 200_000, 50
EXTENDED = ROOT / "tests" / "golden" / "maps" / "extended.yaml"
# Half an hour after the test frames' polls (helpers.make_frames: an hour ago): within the poll
# window, so only the case that moves its polls away is poll_time_far_from_publish.
PUBLISHED = (datetime.now(UTC) - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def badfn(stack, tmp_path_factory):
    """An ingest function of its own: sites `badin` (banks 1, 2) and `badin-ext` (the extended
    map), small limits, its own quarantine bucket."""
    root = tmp_path_factory.mktemp("badin")
    sites = {"sites": [
        {"site_id": SITE, "devices": [{"host": "127.0.0.1", "port": 16001 + b, "bank_id": b}
                                      for b in (1, 2)]},
        {"site_id": EXT_SITE, "devices": [{"host": "127.0.0.1", "port": 16010, "bank_id": 1,
                                           "map": str(EXTENDED)}]}]}
    (root / "sites.yaml").write_text(yaml.safe_dump(sites))
    bucket = f"ess-test-badin-{uuid.uuid4().hex[:6]}"
    stack.gcs.create_bucket(bucket)
    fn = FunctionProcess(
        "ingest", ROOT / "functions/ingest/main.py", free_port(), signature_type="cloudevent",
        log_dir=root, env={"ESS_DB_DSN": stack.dsn["main"], "ESS_SINK": "main",
                           "ESS_SITES_CONFIG": str(root / "sites.yaml"),
                           "ESS_QUARANTINE_BUCKET": bucket, "ESS_MAX_FRAMES": str(MAX_FRAMES),
                           "ESS_MAX_MESSAGE_BYTES": str(MAX_BYTES), **stack.gcs.env()}).start()
    yield fn, stack.gcs.client().bucket(bucket)
    fn.stop()


def push(payload: bytes | None = None, mid: str | None = None, **message) -> bytes:
    """A raw Pub/Sub push body."""
    msg = {"messageId": mid or uuid.uuid4().hex, "publishTime": PUBLISHED,
           "attributes": {"site_id": SITE}}
    if payload is not None:
        msg["data"] = base64.b64encode(payload).decode()
    msg.update(message)
    return json.dumps({"message": msg, "subscription": "projects/p/subscriptions/s"}).encode()


def post(url: str, body: bytes, content_type: str = "application/json") -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _frames(n=1, start=0, **change):
    frames = make_frames(SITE, n, start=start)
    for f in frames:
        for k, v in change.items():
            setattr(f, k, v)
    return frames


def _message_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (message data, reason)."""
    ext = load_map_file(EXTENDED)
    wrong_map = make_frames(SITE, 1, start=30, regmap=ext)
    ext_ok = make_frames(SITE, 1, start=33, regmap=ext)
    no_blocks, unknown_blocks, short = _frames(start=40), _frames(start=41), _frames(start=42)
    no_blocks[0].blocks = {}
    unknown_blocks[0].blocks = {"NOPE": BlockData(registers=b"\x00\x01")}
    first = next(iter(short[0].blocks))
    short[0].blocks[first] = BlockData(registers=b"\x00\x01")
    whole = encode_frames(_frames(2, start=50))
    return {
        "zero frames": (b"ESSM\x01\x00\x00", "empty_message"),
        "empty data": (b"", "empty_message"),
        "truncated": (whole[:-7], "undecodable_frame"),
        "codec version 9": (b"ESSM\x09" + whole[5:], "unknown_codec_version"),
        "bank 0": (encode_frames(_frames(start=10, bank_id=0)), "bank_id_out_of_range"),
        "bank 40000": (encode_frames(_frames(start=11, bank_id=40000)), "bank_id_out_of_range"),
        "bank 99": (encode_frames(_frames(start=12, bank_id=99)), "unknown_bank"),
        "year 10000": (encode_frames(_frames(start=13, poll_start_us=2 ** 62)),
                       "poll_time_out_of_range"),
        "year 0": (encode_frames(_frames(start=14, poll_start_us=-2 ** 62)),
                   "poll_time_out_of_range"),
        "poll of an hour": (encode_frames(_frames(start=17, poll_end_us=_frames()[0].poll_start_us
                                                  + 3600 * 10 ** 6)), "poll_time_out_of_range"),
        "seq 2^64-1": (encode_frames(_frames(start=18, seq=2 ** 64 - 1)), "seq_out_of_range"),
        "polled 8 days before its publish": (encode_frames(_frames(
            start=19, poll_start_us=_frames()[0].poll_start_us - 8 * 86_400_000_000,
            poll_end_us=_frames()[0].poll_start_us - 8 * 86_400_000_000 + 20_000)),
            "poll_time_far_from_publish"),
        "polled in year 9999": (encode_frames(_frames(start=20, poll_start_us=253_402_200_000
                                                      * 10 ** 6, poll_end_us=253_402_200_000
                                                      * 10 ** 6 + 1)),
                                "poll_time_far_from_publish"),
        "unknown site": (encode_frames(_frames(start=15, site_id="nowhere")), "unknown_site"),
        "unknown map version": (encode_frames(_frames(start=16, map_version=99)),
                                "unknown_map_version"),
        "another site's map": (encode_frames(wrong_map), "wrong_device_map"),
        "good frames, then one of another site's map": (
            encode_frames(_frames(2, start=32) + ext_ok + _frames(start=34)), "wrong_device_map"),
        "good frame, then bank 99": (encode_frames(_frames(start=35) + _frames(
            start=36, bank_id=99)), "unknown_bank"),
        "no blocks": (encode_frames(no_blocks), "no_blocks"),
        "unknown blocks": (encode_frames(unknown_blocks), "unknown_blocks"),
        "short block": (encode_frames(short), "registers_do_not_fit_map"),
        "too many frames": (encode_frames(_frames(MAX_FRAMES + 1, start=100)), "too_many_frames"),
        "too many bytes": (b"ESSM\x01" + bytes(MAX_BYTES), "message_too_large"),
    }


def _body_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (raw push body, content type); each is bad_payload unless named otherwise."""
    ok = base64.b64encode(encode_frames(_frames(start=60))).decode()
    msg = {"messageId": "x", "data": ok}
    body = {
        "not JSON": b"\x00not json{",
        "JSON array": b"[1, 2]",
        "no message": json.dumps({"subscription": "s"}).encode(),
        "no data": json.dumps({"message": {"messageId": "nodata", "publishTime": PUBLISHED,
                                           "attributes": {"site_id": SITE}}}).encode(),
        "data not base64": push(mid="nob64", **{"data": "!!not base64!!"}),
        "data a number": push(mid="dnum", **{"data": 12}),
        "message a string": json.dumps({"message": "hello"}).encode(),
        "attributes a list": push(encode_frames(_frames(start=61)), attributes=["a"]),
        "publishTime a number": push(encode_frames(_frames(start=62)), publishTime=5),
        "JSON nested 50,000 deep": b'{"message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    }
    out = {k: (v, "application/json") for k, v in body.items()}
    out["structured CloudEvent, message a string"] = (json.dumps({
        "specversion": "1.0", "id": "ce-1", "source": "//pubsub.googleapis.com/x",
        "type": "google.cloud.pubsub.topic.v1.messagePublished", "data": {"message": msg[
            "data"]}}).encode(), "application/cloudevents+json")
    return out


def _kept(bucket, name: str):
    blob = bucket.get_blob(name)
    assert blob is not None, f"no quarantine object {name}"
    return blob


def test_every_bad_message_is_quarantined_with_its_reason(badfn, stack):
    fn, bucket = badfn
    day = datetime.fromisoformat(PUBLISHED.replace("Z", "+00:00"))
    for case, (data, reason) in _message_cases().items():
        mid = f"msg-{re.sub(r'[^a-z0-9]+', '-', case)}"
        assert post(fn.url, push(data, mid=mid)) == 200, case
        blob = _kept(bucket, object_name("main", mid, day))
        assert blob.metadata["reason"] == reason, (case, blob.metadata)
        assert blob.download_as_bytes() == data, case
        assert json.loads(blob.metadata["attributes"]) == {"site_id": SITE}
    good = _frames(3, start=200)
    assert post(fn.url, push(encode_frames(good))) == 200
    assert count_rows(stack.dsn["main"], SITE) == 3 * 11   # only the good message: no partials
    assert count_rows(stack.dsn["main"], EXT_SITE) == 0


def test_a_replayed_message_is_judged_by_its_first_publish_time(badfn, stack):
    """Frames polled 8 days ago, sent back by `ess replay-dead-letters` now: their first
    publish time (an hour after the polls) is within the window, so they are stored."""
    from ess.replay import FIRST_PUBLISH

    fn, _ = badfn
    frames = _frames(2, start=400)
    for f in frames:
        f.poll_start_us -= 8 * 86_400_000_000
        f.poll_end_us -= 8 * 86_400_000_000
    first = datetime.fromtimestamp(frames[0].poll_start_us / 1e6 + 3600, UTC)
    rows = count_rows(stack.dsn["main"], SITE)
    body = push(encode_frames(frames), mid="replayed-1",
                attributes={"site_id": SITE, FIRST_PUBLISH: first.isoformat()})
    assert post(fn.url, body) == 200
    assert count_rows(stack.dsn["main"], SITE) == rows + 2 * 11


# Valid ISO 8601 times whose instant UTC cannot represent (before year 1, after year 9999)
OUT_OF_UTC = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")


def test_publish_times_outside_utc_count_as_missing(badfn, stack):
    """Such a publishTime is no crash (500, redelivery, dead letter): it counts as missing, so a
    poison message is filed under today and a good one is stored."""
    fn, bucket = badfn
    for i, when in enumerate(OUT_OF_UTC):
        days = {datetime.now(UTC).strftime("%Y-%m-%d")}
        bad_body = push(mid=f"oututc-body-{i}", data=12, publishTime=when)
        bad = {f"oututc-frame-{i}": ("undecodable_frame", b"\x00garbage", ""),  # missing
               f"oututc-body-{i}": ("bad_payload", bad_body, "now")}          # now instead
        rows = count_rows(stack.dsn["main"], SITE)
        assert post(fn.url, push(b"\x00garbage", mid=f"oututc-frame-{i}", publishTime=when)) \
            == 200, when
        assert post(fn.url, bad_body) == 200, when
        assert post(fn.url, push(encode_frames(_frames(start=300 + i)), publishTime=when)) == 200
        assert count_rows(stack.dsn["main"], SITE) == rows + 11, when
        days.add(datetime.now(UTC).strftime("%Y-%m-%d"))
        for mid, (reason, data, published) in bad.items():
            blob = next(b for b in (bucket.get_blob(f"quarantine/main/{d}/{mid}.bin")
                                    for d in sorted(days)) if b is not None)
            assert blob.metadata["reason"] == reason, (when, mid, blob.metadata)
            assert blob.download_as_bytes() == data, (when, mid)
            kept = blob.metadata["publish_time"]
            assert kept == "" if published == "" else kept[:10] in days, (when, mid, kept)


def test_every_bad_push_body_is_kept_byte_for_byte(badfn):
    fn, bucket = badfn
    for case, (body, ctype) in _body_cases().items():
        assert post(fn.url, body, ctype) == 200, case
        names = [b.name for b in bucket.list_blobs(prefix="quarantine/main/")]
        found = [n for n in names if bucket.get_blob(n).download_as_bytes() == body]
        assert len(found) == 1, (case, names)
        blob = bucket.get_blob(found[0])
        assert blob.metadata["reason"] == "bad_payload", case
        if PUBLISHED.encode() in body:
            assert f"/{PUBLISHED[:10]}/" in found[0], case      # filed under the publish day
        if b'"attributes": {"site_id"' in body:
            assert json.loads(blob.metadata["attributes"]) == {"site_id": SITE}, case
    huge = b"x" * (MAX_BYTES * 2)
    assert post(fn.url, huge) == 200
    blob = _kept(bucket, object_name("main", body_id(huge), datetime.now(UTC)))
    assert blob.metadata["reason"] == "message_too_large" and blob.size == len(huge)


def test_long_ids_and_attributes_stay_within_gcs_limits(badfn):
    fn, bucket = badfn
    mid = "m" * 2000
    attrs = {f"a{i:03d}": "v" * 1000 for i in range(100)}
    data = b"\x00garbage"
    assert post(fn.url, push(data, mid=mid, attributes=attrs)) == 200
    name = object_name("main", mid, datetime.fromisoformat(PUBLISHED.replace("Z", "+00:00")))
    assert len(name.encode()) <= 1024
    blob = _kept(bucket, name)
    assert metadata_size(blob.metadata) <= METADATA_MAX
    assert blob.download_as_bytes() == data and blob.metadata["reason"] == "undecodable_frame"
    side = json.loads(_kept(bucket, blob.metadata["sidecar"]).download_as_bytes())
    assert side["message_id"] == mid and side["attributes"] == attrs
    assert len(blob.metadata["sidecar"].encode()) <= 1024


def _reason_codes() -> set[str]:
    import ess
    import ess_collector
    import ess_functions

    for pkg in (ess, ess_functions, ess_collector):
        for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
    bases = {"error", "permanent", "transient"}
    todo, codes = [EssError], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            codes.add(sub.reason)
    return codes - bases


def test_readme_error_policy_lists_exactly_the_reason_codes():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Error policy"):]
    section = section[:section.index("\n## ", 1)]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert listed == _reason_codes(), (sorted(listed - _reason_codes()),
                                       sorted(_reason_codes() - listed))
    tested = {r for _, r in _message_cases().values()} | {"bad_payload"}
    assert tested <= listed

