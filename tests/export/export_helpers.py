"""Export test helpers: a two-site config, frames around day boundaries, CSV/DB comparison."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from ess.codec import BlockData, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.schema import table_specs
from ess.db.writer import write_frames

SEOUL = ZoneInfo("Asia/Seoul")
NY = ZoneInfo("America/New_York")
SITES_YAML = """\
sites:
  - site_id: site-a
    timezone: Asia/Seoul
    devices:
      - {host: 127.0.0.1, port: 1502, bank_id: 1}
      - {host: 127.0.0.1, port: 1503, bank_id: 2}
  - site_id: site-b
    timezone: America/New_York
    devices:
      - {host: 127.0.0.1, port: 1504, bank_id: 1}
"""


def export_day() -> date:
    """A settled past day (three days ago in Seoul)."""
    return datetime.now(SEOUL).date() - timedelta(days=3)


def local(day: date, h: int, m: int = 0, s: int = 0, us: int = 0, tz=SEOUL) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, s, us, tzinfo=tz)


def frame(site: str, bank: int, when: datetime, seq: int, regmap) -> Frame:
    rnd = random.Random(f"{site}/{bank}/{when.isoformat()}")
    us = int(when.timestamp() * 1_000_000)
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
        [rnd.randrange(0, 1200) for _ in range(b.count)])) for b in regmap.blocks}
    return Frame(site, bank, seq, us, us + 20_000, regmap.map_id, regmap.version, blocks)


def polls(day: date) -> dict[str, list[datetime]]:
    """Poll times per site: the day's edges plus the neighbouring days' edges."""
    a = [local(day, 0), local(day, 0, 0, 0, 500_000), local(day, 12, 30, 15, 250_000),
         local(day, 23, 59, 59), local(day - timedelta(days=1), 23, 59, 59),
         local(day + timedelta(days=1), 0)]
    b = [local(day, 0, tz=NY), local(day, 23, 59, 59, tz=NY), local(day, 9, tz=NY),
         local(day + timedelta(days=1), 0, tz=NY)]
    return {"site-a": a, "site-b": b}


def load_db(dsn: str, sites, day: date, mode: str = "auto"):
    """Migrate and insert the test frames; return an open connection."""
    conn = connect_dsn(dsn)
    maps = sites.maps()
    migrate(conn, list(maps.values()), mode=mode)
    regmap = next(iter(maps.values()))
    frames, seq = [], 0
    for site in sites.sites:
        for when in polls(day)[site.site_id]:
            for d in site.devices:
                seq += 1
                frames.append(frame(site.site_id, d.bank_id, when, seq, regmap))
    write_frames(conn, frames, maps)
    return conn


def db_rows(conn, sites, site_id: str, table: str, start: datetime, end: datetime) -> list[tuple]:
    """The table's rows of one site-day, in export order, as Python values."""
    spec = table_specs(list(sites.maps().values()))[table]
    keys = [k for k in ("site_id", "bank_id", "rack_id") if k in spec.key_names]
    cols = keys + ["ts"] + list(spec.value_names)
    order = "ts, bank_id" + (", rack_id" if table == "rack" else "")
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE site_id = %s AND ts >= %s "
                f"AND ts < %s ORDER BY {order}", (site_id, start, end))
    rows = cur.fetchall()
    conn.rollback()
    return cols, [dict(zip(cols, r, strict=True)) for r in rows], dict(spec.keys + spec.values)


def parse_csv(data: bytes) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(data.decode()))
    return reader.fieldnames, list(reader)


def same_value(text: str, value, typ: str) -> bool:
    if value is None:
        return text == ""
    if typ == "text[]":
        return text.split(";") == list(value)
    if typ == "timestamptz":
        return datetime.fromisoformat(text) == value
    if typ == "real":
        return np.float32(text) == np.float32(value)
    if typ == "double precision":
        return float(text) == value
    if typ == "text":
        return text == value
    return int(text) == value


def assert_csv_matches(data: bytes, conn, sites, site_id: str, table: str, day: date):
    tz = sites.site(site_id).tz
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    cols, rows, types = db_rows(conn, sites, site_id, table, start, end)
    header, got = parse_csv(data)
    assert header == cols
    assert len(got) == len(rows), (site_id, table)
    for g, r in zip(got, rows, strict=True):
        for c in cols:
            assert same_value(g[c], r[c], types[c]), (site_id, table, c, g[c], r[c])
    offset = start.strftime("%z")
    for g in got:
        assert g["ts"].endswith(f"{offset[:3]}:{offset[3:]}"), g["ts"]
    return got


