"""Frames, expected rows and stored rows for the ingest tests."""

from __future__ import annotations

import json
import random
import time

import pg8000.native
from ess.codec import BlockData, Frame, encode_frames
from ess.decode import decoder_for
from ess.regmap import RegisterMap, load_map
from ess_local.postgres import connect

TABLES = ("bank", "rack", "pcs", "etc")
_T0 = int(time.time()) * 1_000_000 - 3600 * 1_000_000  # an hour ago, whole seconds


def make_frames(site: str, n: int, *, bank: int = 1, start: int = 0, seed: int = 0,
                regmap: RegisterMap | None = None) -> list[Frame]:
    """`n` one-second polls of one bank with random registers (some out of range)."""
    regmap = regmap or load_map()
    rng = random.Random(f"{site}/{bank}/{seed}")
    frames = []
    for i in range(start, start + n):
        blocks = {}
        for b in regmap.blocks:
            regs = [rng.randrange(0, 1200) if rng.random() < 0.97 else rng.randrange(65536)
                    for _ in range(b.count)]
            blocks[b.name] = BlockData(registers=Frame.registers_to_bytes(regs))
        t = _T0 + i * 1_000_000
        frames.append(Frame(site, bank, i, t, t + 40_000, regmap.map_id, regmap.version, blocks))
    return frames


def quiet_alarms(frames: list[Frame], regmap: RegisterMap | None = None) -> list[Frame]:
    """The frames with every register an alarm of the map reads set to "no alarm" (a bit
    alarm's register to 0, inverted ones to 1; a threshold's to 0), other registers as they
    were: random registers otherwise raise and clear dozens of alarms every poll."""
    regmap = regmap or load_map()
    columns = {(a.table, a.column) for a in regmap.alarms}
    quiet = {(f.block, f.address): int(f.invert) for f in regmap.fields()
             if (f.table, f.column) in columns}
    out = []
    for frame in frames:
        blocks = {}
        for b in regmap.blocks:
            regs = list(memoryview(frame.blocks[b.name].registers).cast("B"))
            words = [regs[i] << 8 | regs[i + 1] for i in range(0, len(regs), 2)]
            for (block, address), value in quiet.items():
                if block == b.name:
                    words[address - b.start] = value
            blocks[b.name] = BlockData(registers=Frame.registers_to_bytes(words))
        out.append(Frame(frame.site_id, frame.bank_id, frame.seq, frame.poll_start_us,
                         frame.poll_end_us, frame.map_id, frame.map_version, blocks))
    return out


def body(frames: list[Frame]) -> bytes:
    """A message body."""
    return encode_frames(frames)


def attrs(frames: list[Frame]) -> dict[str, str]:
    """The collector's message attributes."""
    return {"site_id": frames[0].site_id, "schema_version": "1",
            "frame_count": str(len(frames))}


def expected_rows(frames: list[Frame], regmap: RegisterMap | None = None) -> dict:
    """{table: {key: row}} exactly as the decoder produces them."""
    regmap = regmap or load_map()
    tables, _ = decoder_for(regmap).decode_frames(frames)
    out: dict = {t: {} for t in TABLES}
    for tb in tables:
        for i, row in zip(tb.frame.tolist(), tb.rows(), strict=True):
            f = frames[i]
            row.pop("table")
            row["out_of_range"] = row["out_of_range"] or None
            key = (f.site_id, f.bank_id, row.get("rack_id"), f.poll_start_us)
            out[tb.table][key] = {"site_id": f.site_id, "bank_id": f.bank_id, **row}
    return out


def stored_rows(dsn: str, site: str) -> dict:
    """{table: {key: row}} as stored (values via jsonb: shortest exact text of each number)."""
    con = connect(dsn)
    try:
        out: dict = {}
        for t in TABLES:
            rows = con.run(f"SELECT (extract(epoch FROM ts) * 1000000)::bigint, "
                           f"to_jsonb(x) - 'ts' FROM {t} x WHERE site_id = :s", s=site)
            out[t] = {}
            for us, doc in rows:
                doc = json.loads(doc) if isinstance(doc, str) else doc
                key = (doc["site_id"], doc["bank_id"], doc.get("rack_id"), us)
                assert key not in out[t], f"duplicate row {t} {key}"
                out[t][key] = doc
        return out
    finally:
        con.close()


def count_rows(dsn: str, site: str) -> int:
    """Rows of `site` in all tables (0 when the database is down)."""
    try:
        con = connect(dsn)
    except (pg8000.native.InterfaceError, OSError):
        return -1
    try:
        return sum(con.run(f"SELECT count(*) FROM {t} WHERE site_id = :s", s=site)[0][0]
                   for t in TABLES)
    finally:
        con.close()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll `predicate()` until truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def log_events(path, **match) -> list[dict]:
    """Structured log lines of a function process whose fields equal `match`."""
    out = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if all(doc.get(k) == v for k, v in match.items()):
            out.append(doc)
    return out
