"""Group commit: concurrent messages share one statement, each keeps its own outcome."""

import threading
import time

import pytest
from ess.codec import BlockData, Frame
from ess.db.connect import DatabaseUnavailable, connect_dsn
from ess.db.migrate import migrate
from ess.db.quote import ident
from ess.regmap import load_map
from ess_functions.ingest.group_commit import GroupWriter

M = load_map("default")
MAPS = {M.key: M}
T0 = 1_764_200_000_000_000


def message(i: int, bank: int = 1) -> list[Frame]:
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes([(i + a) % 1000 for a in
                                                                     range(b.count)]))
              for b in M.blocks}
    return [Frame("site-a", bank, i, T0 + i * 1_000_000, T0 + i * 1_000_000, "default", 1,
                  blocks)]


class Pool:
    """Connections for the writer; `gate` holds the first take() until the test opens it."""

    def __init__(self, dsn: str):
        self.dsn, self.gate, self.taken = dsn, threading.Event(), 0

    def take(self):
        self.taken += 1
        self.gate.wait(10)
        return connect_dsn(self.dsn)

    @staticmethod
    def give(conn):
        conn.close()

    discard = give


def run_all(writer: GroupWriter, messages: list[list[Frame]], pool: Pool, queued: int):
    results, errors = [None] * len(messages), [None] * len(messages)

    def go(k):
        try:
            results[k] = writer.write(messages[k])
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors[k] = exc

    threads = [threading.Thread(target=go, args=(k,)) for k in range(len(messages))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(writer._queue) < queued and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.gate.set()
    for t in threads:
        t.join(30)
    return results, errors


def count(dsn, table):
    conn = connect_dsn(dsn)
    cur = conn.cursor()
    cur.execute(f"SELECT count(*) FROM {ident(table)}")
    n = cur.fetchone()[0]
    conn.close()
    return n


@pytest.fixture
def db(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    conn.close()
    return timescale_db


def test_concurrent_messages_share_statements_and_keep_their_own_counts(db):
    pool = Pool(db)
    writer = GroupWriter(pool.take, pool.give, pool.discard, MAPS)
    msgs = [message(i) for i in range(16)] + [message(3), message(7)]   # two redeliveries
    results, errors = run_all(writer, msgs, pool, queued=14)
    assert errors == [None] * 18
    assert writer.stats["messages"] == 18 and writer.stats["groups"] < 18
    assert count(db, "bank") == 16 and count(db, "rack") == 128
    inserted = [sum(r.inserted.values()) for r in results]
    assert sum(inserted) == 16 * 11
    for k in (3, 7):     # the original and its copy: exactly one of them stored the rows
        assert sorted([inserted[k], inserted[16 + (k == 7)]]) == [0, 11]
    assert all(sum(r.rows.values()) == 11 for r in results)
    assert all(r.duplicates in (0, 11) for r in results)


def test_a_bad_message_fails_alone(db):
    pool = Pool(db)
    writer = GroupWriter(pool.take, pool.give, pool.discard, MAPS)
    msgs = [message(i) for i in range(6)] + [message(99, bank=40000)]  # smallint overflow
    results, errors = run_all(writer, msgs, pool, queued=5)
    assert errors[:6] == [None] * 6
    assert errors[6] is not None and "out of range" in str(errors[6])
    assert count(db, "bank") == 6


def test_a_transient_error_fails_the_whole_group(db):
    def down():
        pool.taken += 1
        pool.gate.wait(10)
        raise DatabaseUnavailable("database restarting")

    pool = Pool(db)
    writer = GroupWriter(down, pool.give, pool.discard, MAPS)
    results, errors = run_all(writer, [message(i) for i in range(5)], pool, queued=4)
    assert all(isinstance(e, DatabaseUnavailable) for e in errors)
    assert pool.taken < 5            # grouped, and not retried message by message
    assert count(db, "bank") == 0


@pytest.mark.parametrize("frames_per_message, writers", [(1, 1), (10, 2)])
def test_a_second_writer_starts_only_for_a_backlog(db, frames_per_message, writers):
    pool = Pool(db)
    writer = GroupWriter(pool.take, pool.give, pool.discard, MAPS, max_writers=2,
                         backlog_frames=40)
    msgs = [[f for k in range(frames_per_message) for f in message(i * 100 + k)]
            for i in range(6)]
    threads = [threading.Thread(target=writer.write, args=(m,)) for m in msgs]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while (writer.stats["messages"] + len(writer._queue) < len(msgs)
           and time.monotonic() < deadline):
        time.sleep(0.01)                # every message is queued or in a group
    time.sleep(0.2)                    # a wrong second writer would have started by now
    assert pool.taken == writers       # the writers wait at the closed gate
    pool.gate.set()
    for t in threads:
        t.join(30)
    assert count(db, "bank") == 6 * frames_per_message
