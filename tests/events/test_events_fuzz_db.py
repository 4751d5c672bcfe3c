"""Random frames of the default map (bit, inverted-bit, PCS and threshold alarms, failed blocks,
gaps, two banks) written by the real writer on three connections at once, shuffled, duplicated
and in batches of random sizes, into TimescaleDB and partitioned PostgreSQL: the events table
is the derivation over all the stored rows at once, and each episode of an alarm without `for`
was raised once. `ess redecode` replaying the archive of those frames changes nothing; into
emptied tables it gives the same episodes again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ess import codec
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.events.episodes import Episode, derive
from ess.events.sql import COLUMNS
from ess_functions.archive.layout import Record, encode_records, object_name
from ess_functions.archive.redecode import redecode
from ess_functions.objstore.local import DirStore
from events_db import M, deliver_concurrently

SITE, T0 = "site-fuzz", 1_750_000_000
# the alarm columns the frames vary (rack alarms: racks 1 and 2); the rest stay quiet
VARIED = ("rack_over_temperature_fault", "master_rack_communication_fault",
          "rack_rack_over_temperature_fault", "rack_cell_temperature_high", "pcs_protection_1_0")
TEMPS = (400, 440, 460, 520)      # x 0.1 °C: clears, holds, raises, raises (45, hysteresis 3)
_US = "(extract(epoch FROM {}) * 1000000)::bigint"


def _registers() -> tuple[dict, dict]:
    """(block -> quiet registers, alarm register -> (block, index)) of the default map."""
    quiet = {b.name: [0] * b.count for b in M.blocks}
    where = {}
    by_name = {a.name: a for a in M.alarms}
    for b in M.blocks:
        for r in b.registers:
            for f in r.fields:
                if f.invert:                        # device polarity: OK = 1
                    quiet[b.name][r.address - b.start] = 1
                where[(f.table, f.column, f.rack)] = (b.name, r.address - b.start, f.invert)
    slots = {}
    for name in VARIED:
        a = by_name[name]
        for rack in ((1, 2) if a.table == "rack" else (None,)):
            slots[(name, rack)] = where[(a.table, a.column, rack)]
    return quiet, slots


QUIET, SLOTS = _registers()


def _frames(rng: random.Random, bank: int, n: int) -> list[Frame]:
    """n polls of one bank, about a second apart with gaps; values that stay a while."""
    state = {k: 0 for k in SLOTS}
    out, t = [], 0
    for seq in range(n):
        t += rng.choice((1, 1, 1, 1, 1, 2, 3, 15))
        for k in state:
            if rng.random() < 0.15:
                state[k] = (rng.choice(TEMPS) if k[0] == "rack_cell_temperature_high"
                            else rng.choice((0, 1)))
        regs = {name: list(v) for name, v in QUIET.items()}
        for k, (block, i, inverted) in SLOTS.items():
            value = state[k]
            regs[block][i] = 1 - value if inverted else value
        blocks = {name: (BlockData(BlockStatus.TIMEOUT) if rng.random() < 0.05
                         else BlockData(registers=Frame.registers_to_bytes(r)))
                  for name, r in regs.items()}
        us = (T0 + t) * 1_000_000
        out.append(Frame(SITE, bank, seq, us, us + 30_000, M.map_id, M.version, blocks))
    return out


def _stored_episodes(conn) -> list[Episode]:
    cur = conn.cursor()
    names = ", ".join(_US.format(n) if n in ("since", "raised", "cleared") else n
                      for n, _ in COLUMNS)
    cur.execute(f"SELECT {names} FROM events WHERE site_id = %s", (SITE,))
    rows = [Episode(*r) for r in cur.fetchall()]
    conn.rollback()
    return sorted(rows, key=_order)


def _derived(conn) -> list[Episode]:
    """Every alarm's episodes derived from all the stored rows at once."""
    cur = conn.cursor()
    out = []
    for table in sorted({a.table for a in M.alarms}):
        alarms = [a for a in M.alarms if a.table == table]
        rack = "rack_id" if table == "rack" else "NULL::smallint"
        cur.execute(f"SELECT bank_id, {rack}, {_US.format('ts')}, "
                    + ", ".join(f"{a.column}::float8" for a in alarms)
                    + f" FROM {table} WHERE site_id = %s ORDER BY 1, 2, 3", (SITE,))
        rows = cur.fetchall()
        for key in sorted({(b, r) for b, r, *_ in rows}, key=lambda k: (k[0], k[1] or 0)):
            mine = np.array([[np.nan if v is None else v for v in row[2:]] for row in rows
                             if (row[0], row[1]) == key], np.float64)
            for i, a in enumerate(alarms):
                out += derive(a, (SITE, *key), mine[:, 0].astype(np.int64), mine[:, i + 1])
    conn.rollback()
    return sorted(out, key=_order)


def _order(e: Episode) -> tuple:
    return (e.bank, e.alarm, e.rack or 0, e.since)


def _archive(root, rng: random.Random, frames: list[Frame]) -> DirStore:
    """The frames as the raw archive holds them: messages of a few frames, shuffled."""
    store = DirStore(root)
    frames = rng.sample(frames, len(frames))
    when = datetime.fromtimestamp(T0 + 600, UTC)
    records = [Record(f"m{i}", when, {}, codec.encode_frames(frames[i:i + 5]))
               for i in range(0, len(frames), 5)]
    for k in range(0, len(records), 8):
        store.put(object_name(when + timedelta(seconds=k)),
                  encode_records(records[k:k + 8]))
    return store


@pytest.mark.parametrize("db", ["timescale_db", "plain_db"])
def test_concurrent_random_deliveries_and_a_replay_give_the_episodes_of_all_stored_rows(
        db, request, needs_service, tmp_path):
    rng = random.Random(1)
    dsn = request.getfixturevalue(db)
    conn = connect_dsn(dsn)
    try:
        migrate(conn, [M])
        frames = _frames(rng, 1, 50) + _frames(rng, 2, 35)
        sent = frames + rng.sample(frames, 15)
        rng.shuffle(sent)
        batches = []
        while sent:
            n = rng.randint(1, 6)
            batches.append(sent[:n])
            sent = sent[n:]
        raised = deliver_concurrently(dsn, [batches[k::3] for k in range(3)])
        want = _derived(conn)
        assert len(want) > 10 and {e.alarm for e in want} >= set(VARIED)
        assert _stored_episodes(conn) == want
        for e in want:
            if not next(a for a in M.alarms if a.name == e.alarm).for_s:
                assert len([r for r in raised if r.key == e.key and r.bank == e.bank
                            and e.since <= r.raised <= e.end]) == 1, e

        store = _archive(tmp_path / "archive", rng, frames)
        since, until = (datetime.fromtimestamp(T0, UTC),
                        datetime.fromtimestamp(T0 + 600, UTC))
        args = dict(update=False, batch=10, progress=False)
        assert redecode(conn, store, since, until, {M.key: M}, **args).raised == 0
        assert _stored_episodes(conn) == want, "a replay of stored rows changes nothing"
        cur = conn.cursor()
        for t in ("events", "bank", "rack", "pcs", "etc", "frames"):
            cur.execute(f"DELETE FROM {t}")
        conn.commit()
        assert redecode(conn, store, since, until, {M.key: M}, **args).raised >= len(want)
        assert _stored_episodes(conn) == want
    finally:
        conn.close()
