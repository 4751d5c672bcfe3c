"""Partitioned mode (plain PostgreSQL, as on Cloud SQL) keeps its partitions by itself.

The database is left as `ess db migrate` left it ten days ago (partitions from the day before
to seven days after), then the real Ingestor stores frames of every day since, with nobody
running migrate in between: every row lands in its own day's partition, no default partition
exists, and the export returns what it returns in hypertable mode.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from ess.cli import main as ess_main
from ess.codec import BlockData, Frame, encode_frames
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.partitions import DEFAULTS_SQL, ensure_days
from ess.db.quote import ident
from ess.db.writer import write_frames
from ess.regmap import load_map
from ess.sites import load_sites
from ess_functions.ingest.envelope import Message
from ess_functions.ingest.ingestor import Ingestor
from ess_functions.ingest.pool import Connections
from ess_functions.ingest.quarantine import Quarantine

M = load_map("default")
DAYS = 10
SITES_YAML = """\
sites:
  - site_id: long-a
    timezone: UTC
    devices:
      - {host: 127.0.0.1, port: 1502, bank_id: 1}
      - {host: 127.0.0.1, port: 1503, bank_id: 2}
"""


def _frame(bank: int, when: datetime, seq: int) -> Frame:
    us = int(when.timestamp() * 1_000_000)
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
        [(seq * 7 + i) % 1100 for i in range(b.count)])) for b in M.blocks}
    return Frame("long-a", bank, seq, us, us + 25_000, M.map_id, M.version, blocks)


def _messages(first: date) -> list[list[Frame]]:
    """One message per day and bank (midnight, noon, the last second), and one per day that
    spans midnight (23:59:59.5 and the next day's 00:00:00.5)."""
    out, seq = [], 0
    for d in range(DAYS + 1):
        day = datetime.combine(first + timedelta(days=d), datetime.min.time(), UTC)
        for bank in (1, 2):
            times = [day, day + timedelta(hours=12), day + timedelta(seconds=86399)]
            out.append([_frame(bank, t, seq := seq + 1) for t in times])
        if d < DAYS:
            edge = day + timedelta(days=1)
            out.append([_frame(1, edge - timedelta(seconds=0.5), seq := seq + 1),
                        _frame(1, edge + timedelta(seconds=0.5), seq := seq + 1)])
    return out


def _query(conn, sql: str, *args) -> list:
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall()
    conn.rollback()
    return rows


def _partitions(conn) -> list[str]:
    return [r[0] for r in _query(conn, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                                       "ON c.oid = i.inhrelid WHERE c.relkind = 'r' ORDER BY 1")]


def _as_migrated_on(conn, day: date) -> None:
    """Leave only the partitions a migration on `day` made (day - 1 .. day + 7)."""
    cur = conn.cursor()
    for (name,) in _query(conn, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                                "ON c.oid = i.inhrelid WHERE c.relkind = 'r'"):
        cur.execute(f"DROP TABLE {ident(name)}")
    conn.commit()
    ensure_days(conn, [day + timedelta(days=d) for d in range(-1, 8)])


def _ingest(dsn: str, sites_path: Path, quarantine: Path, messages: list[list[Frame]]) -> None:
    ing = Ingestor(load_sites(str(sites_path)), "main", Connections(lambda: connect_dsn(dsn)),
                   Quarantine(str(quarantine)))
    for n, frames in enumerate(messages):
        out = ing.handle(Message(f"m{n}", encode_frames(frames), {"site_id": "long-a"}))
        assert out.status == "stored", out


@pytest.fixture
def sites_path(tmp_path: Path) -> Path:
    p = tmp_path / "sites.yaml"
    p.write_text(SITES_YAML)
    return p


def _export(dsn: str, sites_path: Path, first: date, last: date, out: Path) -> dict[str, bytes]:
    argv = ["export", "--from", str(first), "--to", str(last), "--dest", str(out),
            "--dsn", dsn, "--config", str(sites_path), "--quiet"]
    assert ess_main(argv) == 0
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv*"))}


def test_ten_days_past_the_migration_without_migrate(plain_db, timescale_db, sites_path,
                                                     tmp_path):
    today = datetime.now(UTC).date()
    first = today - timedelta(days=DAYS + 1)      # the migration's day; frames up to yesterday
    messages = _messages(first)
    files = {}
    for mode, dsn in (("partitioned", plain_db), ("timescale", timescale_db)):
        conn = connect_dsn(dsn)
        assert migrate(conn, [M], mode=mode).mode == mode
        if mode == "partitioned":
            _as_migrated_on(conn, first)
            assert f"bank_p{first + timedelta(days=8):%Y%m%d}" not in _partitions(conn)
        _ingest(dsn, sites_path, tmp_path / f"q-{mode}", messages)
        files[mode] = _export(dsn, sites_path, first, first + timedelta(days=DAYS),
                              tmp_path / f"out-{mode}")
        if mode == "partitioned":
            _check_partitions(conn, first, today, sum(len(m) for m in messages))
        conn.close()
    assert files["partitioned"] == files["timescale"]
    assert len(files["timescale"]) >= DAYS * 4
    assert not list(tmp_path.glob("q-*/**/*.bin"))


def _check_partitions(conn, first: date, today: date, frames: int) -> None:
    assert not _query(conn, DEFAULTS_SQL)
    assert not [p for p in _partitions(conn) if p.endswith("_default")]
    for table in ("bank", "rack", "pcs", "etc"):
        placed = _query(conn, f"SELECT tableoid::regclass::text, "
                              f"to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDD'), count(*) "
                              f"FROM {ident(table)} GROUP BY 1, 2")
        assert placed and all(part.strip('"') == f"{table}_p{day}" for part, day, _ in placed)
        days = {day for _, day, _ in placed}
        assert days == {f"{first + timedelta(days=d):%Y%m%d}" for d in range(DAYS + 1)}, table
    (banks,) = _query(conn, "SELECT count(*) FROM bank")
    assert banks[0] == frames
    assert f"bank_p{today:%Y%m%d}" not in _partitions(conn)   # made only when a row needs it


def test_migrate_drains_a_default_partition_left_by_older_versions(plain_db):
    conn = connect_dsn(plain_db)
    migrate(conn, [M])
    cur = conn.cursor()
    for table in _parents(conn):          # as versions before the upkeep made them
        cur.execute(f"CREATE TABLE {ident(table + '_default')} PARTITION OF {ident(table)} "
                    "DEFAULT")
    conn.commit()
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    batch = [_frame(1, old + timedelta(days=d // 3, seconds=d), d) for d in range(9)]
    stored = write_frames(conn, batch, {M.key: M})
    assert stored.inserted["bank"] == 9
    (in_default,) = _query(conn, "SELECT count(*) FROM bank_default")
    assert in_default[0] == 9
    m = migrate(conn, [M])
    assert m is not None and "drain bank_default" in m.description
    assert not _query(conn, DEFAULTS_SQL)
    placed = _query(conn, "SELECT tableoid::regclass::text, to_char(ts AT TIME ZONE 'UTC', "
                          "'YYYYMMDD') FROM bank")
    assert len(placed) == 9 and all(p == f"bank_p{d}" for p, d in placed)
    (racks,) = _query(conn, "SELECT count(*) FROM rack")
    assert racks[0] == 9 * 8
    assert migrate(conn, [M]) is None
    conn.close()


def test_concurrent_writers_to_a_new_day_create_its_partitions_once(plain_db):
    conn = connect_dsn(plain_db)
    migrate(conn, [M])
    conn.close()
    new_day = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    errors: list[BaseException] = []

    def write(bank: int) -> None:
        c = connect_dsn(plain_db)
        try:
            write_frames(c, [_frame(bank, new_day + timedelta(seconds=s), s) for s in range(3)],
                         {M.key: M})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=write, args=(b,)) for b in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = connect_dsn(plain_db)
    (n,) = _query(conn, "SELECT count(*) FROM bank")
    assert n[0] == 18
    made = [p for p in _partitions(conn) if p.endswith(f"_p{new_day:%Y%m%d}")]
    assert sorted(made) == sorted(f"{t}_p{new_day:%Y%m%d}" for t in _parents(conn))
    conn.close()


def _parents(conn) -> list[str]:
    return [r[0] for r in _query(conn, "SELECT c.relname FROM pg_partitioned_table p "
                                       "JOIN pg_class c ON c.oid = p.partrelid")]
