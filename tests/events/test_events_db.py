"""The events table in real databases (TimescaleDB and plain PostgreSQL): the same frames of
the default map delivered in poll order one at a time, or shuffled, duplicated and in random
batches, give exactly the same episodes; a redelivery changes nothing and raises nothing."""

from __future__ import annotations

import random

import pytest
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from events_db import EXPECTED, FRAMES, SITE, T0, M, deliver, deliver_concurrently


def _events(conn) -> list[tuple]:
    cur = conn.cursor()
    cur.execute("SELECT alarm, rack_id, extract(epoch FROM since)::bigint, "
                "extract(epoch FROM raised)::bigint, raised_value, "
                "extract(epoch FROM cleared)::bigint, cleared_value, severity, site_id, bank_id "
                "FROM events ORDER BY alarm, rack_id, since")
    rows = cur.fetchall()
    conn.rollback()
    assert {(r[7], r[8], r[9]) for r in rows} <= {("fault", SITE, 1), ("warning", SITE, 1)}
    return [(a, rack, s - T0, r - T0, rv, None if c is None else c - T0, cv)
            for a, rack, s, r, rv, c, cv, *_ in rows]


@pytest.mark.parametrize("db", ["timescale_db", "plain_db"])
def test_in_order_shuffled_and_duplicated_deliveries_give_the_same_episodes(db, request,
                                                                            needs_service):
    conn = connect_dsn(request.getfixturevalue(db))
    try:
        migrate(conn, [M])
        raised = []
        for f in FRAMES:                          # live: one poll at a time
            raised += deliver(conn, [f])
        assert _events(conn) == EXPECTED
        assert len(raised) == len(EXPECTED), "one raise per episode"
        assert deliver(conn, FRAMES) == [], "a redelivery raises nothing"
        assert _events(conn) == EXPECTED
        cur = conn.cursor()
        cur.execute("TRUNCATE events")
        for t in ("bank", "rack", "pcs", "etc", "frames"):
            cur.execute(f"DELETE FROM {t}")
        conn.commit()
        rng = random.Random(22)
        late = FRAMES + rng.sample(FRAMES, 12)
        rng.shuffle(late)
        raised = []
        while late:
            n = rng.randint(1, 5)
            raised += deliver(conn, late[:n])
            late = late[n:]
        assert _events(conn) == EXPECTED
        assert {(e.alarm, e.rack) for e in raised} >= {(a, r) for a, r, *_ in EXPECTED}
    finally:
        conn.close()


def test_concurrent_deliveries_give_the_same_episodes_and_raise_each_once(timescale_db):
    """Four connections deliver shuffled, overlapping batches at once (as concurrent ingest
    requests and both writers do): the same episodes, and one raise of each bit alarm's
    episode in all."""
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    conn.close()
    rng = random.Random(7)
    plans = []
    for _ in range(4):
        frames = rng.sample(FRAMES, 28)
        plans.append([frames[k:k + rng.randint(1, 4)] for k in range(0, 28, 4)])
    plans[0] += [[f] for f in FRAMES]              # every frame at least once
    raised = deliver_concurrently(timescale_db, plans)
    conn = connect_dsn(timescale_db)
    try:
        assert _events(conn) == EXPECTED
    finally:
        conn.close()
    bits = sorted((e.alarm, e.rack) for e in raised if e.alarm != "rack_cell_temperature_high")
    assert bits == sorted((a, r) for a, r, *_ in EXPECTED if a != "rack_cell_temperature_high")


def test_migrate_creates_the_table_and_replaces_an_older_lock_function(plain_db):
    from ess.events.sql import LOCK_FUNCTION

    conn = connect_dsn(plain_db)
    try:
        first = migrate(conn, [M])
        assert "create events" in first.description
        cur = conn.cursor()
        cur.execute(f"COMMENT ON FUNCTION {LOCK_FUNCTION} IS 'ess events lock 0'")
        conn.commit()
        again = migrate(conn, [M])
        assert again is not None and again.description == "install the events lock function"
        assert migrate(conn, [M]) is None, "up to date"
        assert deliver(conn, FRAMES[:12]) != [], "the reinstalled function works"
        cur.execute("ALTER TABLE events DROP COLUMN announced")      # a table from before it
        cur.execute(f"COMMENT ON FUNCTION {LOCK_FUNCTION} IS 'ess events lock 8'")
        conn.commit()
        again = migrate(conn, [M])
        assert again.description == "add events.announced; install the events lock function"
        cur.execute("SELECT count(*) FROM events WHERE announced IS DISTINCT FROM raised")
        assert cur.fetchone() == [0]
        conn.rollback()
        deliver(conn, FRAMES[12:])
        assert _events(conn) == EXPECTED
    finally:
        conn.close()


def test_a_batch_of_two_map_versions_of_one_bank_derives_its_episodes(plain_db):
    """One statement with frames of one bank decoded by two versions of its map (a map upgrade
    while older frames wait in the spool): two summaries of one bank in one lock step, each
    with its own keys covered. The bank fault raised at 3 is stored; a batch brings a raise at 1
    (version 1) and one at 5 (version 2, where the episode covers it): the episode starts at 1."""
    from dataclasses import replace

    from events_db import default_frame

    m2 = replace(M, version=M.version + 1)
    conn = connect_dsn(plain_db)
    try:
        migrate(conn, [M, m2])
        assert len(deliver(conn, [default_frame(3, bank_fault=True)])) == 1
        late = default_frame(1, bank_fault=True)
        now = replace(default_frame(5, bank_fault=True), map_version=m2.version)
        assert deliver(conn, [late, now], [M, m2]) == []
        assert [e[:4] for e in _events(conn)] == [("rack_over_temperature_fault", None, 1, 1)]
    finally:
        conn.close()


def test_a_rewrite_to_null_moves_the_raise(plain_db):
    """`ess redecode --map` rewrites rows (ON CONFLICT DO UPDATE): the bank fault's raise at 5
    rewritten to NULL (its block now fails) makes the episode start at 6."""
    from ess.codec import BlockData, BlockStatus
    from ess.db.writer import write_frames
    from events_db import default_frame

    conn = connect_dsn(plain_db)
    try:
        migrate(conn, [M])
        deliver(conn, FRAMES)
        assert EXPECTED[1][:3] == ("rack_over_temperature_fault", None, 5)
        f = default_frame(5)
        f.blocks["BMS2"] = BlockData(BlockStatus.TIMEOUT)
        write_frames(conn, [f], {M.key: M}, on_conflict="update")
        assert _events(conn)[1][:4] == ("rack_over_temperature_fault", None, 6, 6)
    finally:
        conn.close()
