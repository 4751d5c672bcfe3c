"""Fuzz of the ingest path: seeded mutations of real messages through the in-process Ingestor,
against the real test database, with a local-directory quarantine.

Every input must end stored or quarantined with a reason code, raise nothing untyped, take
under a second, and write nothing unless the whole message is stored (the rows in the database
are exactly those of the stored messages). The golden corpus (tests/golden/fuzz/<reason>-N.bin)
replays interesting inputs found, each expecting the reason in its name.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
from ess.codec import BlockData, BlockStatus, encode_frames
from ess.db.connect import connect_dsn
from ess.frame_checks import POLL_MAX_US, POLL_MIN_US
from ess.sites import parse_sites
from ess_functions.ingest.envelope import Message
from ess_functions.ingest.ingestor import Ingestor
from ess_functions.ingest.pool import Connections
from ess_functions.ingest.quarantine import Quarantine

from .helpers import expected_rows, make_frames, quiet_alarms, stored_rows

N = 20_000
MAX_FRAMES = 8
SITES = ("fuzz", "fuzz2")
CORPUS = Path(__file__).resolve().parents[1] / "golden" / "fuzz"
_BANKS = (0, 1, 2, 3, 99, 32767, 32768, 65535)
_TIMES = ((POLL_MIN_US - 1, -1), (POLL_MIN_US, 1), (POLL_MAX_US, -1), (POLL_MAX_US + 1, 1),
          (-2 ** 63, 1), (2 ** 63 - 1, -1))   # (edge, direction that keeps its side)


@pytest.fixture(scope="module")
def ingestor(stack, tmp_path_factory):
    sites = parse_sites({"sites": [{"site_id": s, "devices": [
        {"host": "127.0.0.1", "port": 17000 + 2 * i + b, "bank_id": b + 1} for b in range(2)]}
        for i, s in enumerate(SITES)]})
    q = Quarantine(str(tmp_path_factory.mktemp("fuzzq")))
    ing = Ingestor(sites, "main", Connections(lambda: connect_dsn(stack.dsn["main"])), q,
                   writers=1, max_frames=MAX_FRAMES)
    return ing


class Mutator:
    """Seeded mutations: bytes (flips, cuts, header counts) and fields (then re-encoded)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.t = 0
        # alarm registers quiet: the fuzz is about the input; random status registers would
        # raise and clear dozens of alarms per poll (tests/events covers episodes)
        self.base = {(s, b): quiet_alarms(make_frames(s, 16, bank=b))
                     for s in SITES for b in (1, 2)}

    def frames(self):
        """1-3 frames of one bank (copies of pre-made ones at new, unique poll times)."""
        rng = self.rng
        self.t += 1
        n = rng.choice((1, 1, 2, 3))
        base = self.base[(rng.choice(SITES), rng.choice((1, 2)))]
        i = rng.randrange(len(base) - n)
        return [replace(f, seq=self.t * 4 + k, poll_start_us=f.poll_start_us + (self.t * 4 + k)
                        * 1_000_000, poll_end_us=f.poll_end_us + (self.t * 4 + k) * 1_000_000,
                        blocks=dict(f.blocks)) for k, f in enumerate(base[i:i + n])]

    def field(self, frames):
        rng, f = self.rng, self.rng.choice(frames)
        kind = rng.randrange(11)
        if kind == 0:
            f.bank_id = rng.choice(_BANKS)
        elif kind == 1:
            edge, away = rng.choice(_TIMES)
            f.poll_start_us = edge + away * self.t   # unique per message
        elif kind == 2:
            f.site_id = rng.choice(("nowhere", "fuzz\n", "f\u00fczz", "x" * 255))
        elif kind == 3:
            f.map_version = rng.choice((0, 2, 65535))
        elif kind == 4:
            f.blocks = {}
        elif kind == 5:
            name = rng.choice(list(f.blocks))
            f.blocks[name + rng.choice(("X", ""))] = BlockData(
                registers=f.blocks.pop(name).registers[:rng.randrange(0, 8) * 2])
        elif kind == 6:
            f.blocks[rng.choice(list(f.blocks))] = BlockData(
                status=rng.choice(list(BlockStatus)), exception_code=rng.randrange(256))
        elif kind == 7:
            frames.extend(replace(f, seq=f.seq + k + 1) for k in range(MAX_FRAMES))
        elif kind == 8:
            f.map_id = rng.choice(("ext", "", "default "))
        elif kind == 9:
            f.seq = rng.choice((2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1))
        else:
            f.poll_end_us = f.poll_start_us + rng.choice((-1, 2 ** 31 - 1, 2 ** 31, 2 ** 62))
        return encode_frames(frames)

    def message(self) -> tuple[bytes, list | None]:
        """(data, frames when the data is their untouched encoding)."""
        rng, frames = self.rng, self.frames()
        data = encode_frames(frames)
        kind = rng.randrange(20)
        if kind == 0:
            return data, frames
        if kind < 6:
            return self.field(frames), None
        buf = bytearray(data)
        if kind < 14:
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind < 17:
            del buf[rng.randrange(len(buf)):]
        elif kind < 19:
            buf[5:7] = rng.randrange(65536).to_bytes(2, "big")
        else:
            buf = bytearray(rng.randbytes(rng.randrange(0, 64)))
        return bytes(buf), None


def _handle(ing: Ingestor, data: bytes, i: int):
    t0 = time.perf_counter()
    out = ing.handle(Message(f"fuzz-{i}", data, {"site_id": "fuzz"}))
    took = time.perf_counter() - t0
    # a stall guard, not a speed figure (make bench measures speed): generous for a loaded CI
    assert took < 10.0, f"message {i} took {took:.2f} s"
    assert out.status in ("stored", "quarantined"), out
    if out.status == "quarantined":
        assert out.reason and out.object, out
    return out


def test_fuzzed_messages_end_stored_or_quarantined(ingestor, stack, monkeypatch):
    monkeypatch.setattr(logging.getLogger("ess.ingest"), "level", logging.CRITICAL)
    from ess.codec import decode_frames

    mut = Mutator(13)
    want: dict = {site: {t: {} for t in ("bank", "rack", "pcs", "etc")} for site in SITES}
    reasons: dict = {}
    t0 = time.perf_counter()
    for i in range(N):
        data, _ = mut.message()
        out = _handle(ingestor, data, i)
        reasons[out.reason or "stored"] = reasons.get(out.reason or "stored", 0) + 1
        if out.status == "stored":   # ON CONFLICT DO NOTHING: the first write of a key wins
            frames = decode_frames(data)
            for table, rows in expected_rows(frames).items():
                for key, row in rows.items():
                    want[key[0]][table].setdefault(key, row)
    took = time.perf_counter() - t0
    print(f"{N} messages in {took:.1f} s: {reasons}")
    assert reasons.get("stored", 0) > N // 50 and len(reasons) >= 12, reasons
    for site in SITES:   # exactly the rows of the stored messages: nothing partial
        assert stored_rows(stack.dsn["main"], site) == want[site]


def test_golden_corpus_replays_with_its_reasons(ingestor):
    files = sorted(CORPUS.glob("*.bin"))
    assert len(files) >= 10
    for i, path in enumerate(files):
        out = _handle(ingestor, path.read_bytes(), 10 ** 6 + i)
        assert out.reason == path.stem.rsplit("-", 1)[0], (path.name, out)
