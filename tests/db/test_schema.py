"""Schema from the map, migrations and idempotent writes, on TimescaleDB and plain PostgreSQL."""

import copy

import numpy as np
import pytest
import yaml
from ess import paths
from ess.codec import BlockData, BlockStatus, Frame
from ess.db import rowtext
from ess.db.connect import connect_dsn
from ess.db.migrate import MIGRATIONS_TABLE, migrate, mode_of
from ess.db.quote import UnsafeIdentifier, ident
from ess.db.schema import render_schema
from ess.db.writer import write_frames
from ess.docgen import render_data_spec
from ess.regmap import load_map, parse_map

M = load_map("default")
T0 = 1_764_100_000_000_000  # an instant in 2025, whole second, in microseconds


def frames(n, site="site-a", bank=1, seed=0, start=T0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
            rng.integers(0, 1200, b.count).tolist())) for b in M.blocks}
        out.append(Frame(site, bank, i, start + i * 1_000_000, start + i * 1_000_000 + 30_000,
                         "default", 1, blocks))
    return out


def rows(conn, table):
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {ident(table)} ORDER BY site_id, bank_id, "
                + ("rack_id, " if table == "rack" else "") + "ts")
    out = cur.fetchall()
    conn.rollback()
    return out


def count(conn, sql, *args):
    cur = conn.cursor()
    cur.execute(sql, args)
    n = cur.fetchone()[0]
    conn.rollback()
    return n


@pytest.fixture(params=["timescale", "partitioned"])
def db(request, needs_service):
    dsn = request.getfixturevalue("timescale_db" if request.param == "timescale" else "plain_db")
    conn = connect_dsn(dsn)
    yield request.param, conn
    conn.close()


def test_migrate_twice_is_a_noop(db):
    mode, conn = db
    first = migrate(conn, [M])
    assert first.version == 1 and first.mode == mode
    assert migrate(conn, [M]) is None
    assert count(conn, f"SELECT count(*) FROM {ident(MIGRATIONS_TABLE)}") == 1
    assert mode_of(conn) == mode
    if mode == "timescale":
        assert count(conn, "SELECT count(*) FROM timescaledb_information.hypertables") == 5
    else:
        assert count(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") == 0
        assert count(conn, "SELECT count(*) FROM pg_inherits "
                           "WHERE inhparent = 'rack'::regclass") >= 9  # default + days ahead


def test_insert_same_key_twice_stores_one_row(db):
    _, conn = db
    migrate(conn, [M])
    batch = frames(3)
    first = write_frames(conn, batch, {M.key: M})
    assert first.inserted == {"bank": 3, "rack": 24, "pcs": 3, "etc": 3}
    again = write_frames(conn, batch + batch[:1], {M.key: M})
    assert sum(again.inserted.values()) == 0 and again.duplicates == 44
    assert len(rows(conn, "rack")) == 24


def test_hypertable_and_partitioned_modes_return_the_same_rows(timescale_db, plain_db):
    results = []
    for dsn in (timescale_db, plain_db):
        conn = connect_dsn(dsn)
        migrate(conn, [M])
        batch = frames(4, seed=3)
        batch[1].blocks["PCS"] = BlockData(BlockStatus.TIMEOUT)
        write_frames(conn, batch, {M.key: M})
        results.append({t: rows(conn, t) for t in ("bank", "rack", "pcs", "etc")})
        conn.close()
    assert results[0] == results[1]
    assert len(results[0]["pcs"]) == 3 and len(results[0]["bank"]) == 4


def test_rows_equal_the_decoder_output(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    batch = frames(2, seed=9)
    write_frames(conn, batch, {M.key: M})
    stored = rows(conn, "bank")
    from ess.decode import decoder_for
    expected = decoder_for(M).decode({n: b.values() for n, b in batch[0].blocks.items()})[0]
    names = ["ts", "site_id", "bank_id", *M.columns("bank"), "out_of_range"]
    got = dict(zip(names, stored[0]))
    for column in M.columns("bank"):
        assert got[column] == expected[column], column
    assert sorted(got["out_of_range"] or []) == expected["out_of_range"]
    conn.close()


def test_every_table_equals_the_decoder_output_on_both_formatting_paths(timescale_db):
    """20 frames: rack (7,200 values) is formatted with numpy, etc (80) in Python."""
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    batch = frames(20, seed=11)
    batch[4].blocks["BMS2"] = BlockData(BlockStatus.TIMEOUT)     # NULLs in some racks
    assert len(batch) * 8 * len(M.columns("rack")) >= rowtext._VECTOR_MIN_CELLS
    assert len(batch) * len(M.columns("etc")) < rowtext._VECTOR_MIN_CELLS
    write_frames(conn, batch, {M.key: M})
    from ess.decode import decoder_for
    expected: dict[tuple, dict] = {}
    for f in batch:
        blocks = {n: b.values() if b.ok else None for n, b in f.blocks.items()}
        for row in decoder_for(M).decode(blocks):
            expected[(row["table"], f.poll_start_us, row.get("rack_id"))] = row
    for table in ("bank", "rack", "pcs", "etc"):
        names = ["ts", "site_id", "bank_id", *(["rack_id"] if table == "rack" else []),
                 *M.columns(table), "out_of_range"]
        stored = rows(conn, table)
        assert len(stored) == sum(1 for k in expected if k[0] == table)
        for values in stored:
            got = dict(zip(names, values, strict=True))
            us = round(got["ts"].timestamp() * 1_000_000)
            want = expected[(table, us, got.get("rack_id"))]
            assert {c: got[c] for c in M.columns(table)} == {
                c: want[c] for c in M.columns(table)}, (table, us)
            assert sorted(got["out_of_range"] or []) == want["out_of_range"]
    conn.close()


@pytest.mark.parametrize("values, lines", [
    ([[1.5, 0.0, -0.25, 65535.0, 0.001]], ["1.5,0,-0.25,65535,0.001"]),
    ([[-6553.5, 12.0, 100.1], [np.nan, 3.0, np.nan]], ["-6553.5,12,100.1", ",3,"]),
    ([[-0.5, 0.999, 1.01]], ["-0.5,0.999,1.01"]),
    ([[0.1 + 0.2]], None),                       # not the decoder's rounding: Python path
    ([[65536.0]], None),                         # beyond the digit table
    ([[float(np.float32(0.001))]], None),        # a float32 register, not 0.001
    ([[np.inf, 1.0]], None),                     # a float32 register holding infinity
])
def test_numpy_value_formatting(values, lines):
    assert rowtext.values_lines(np.array(values, dtype=np.float64)) == lines


def test_adding_a_register_yields_a_new_migration(db):
    _, conn = db
    migrate(conn, [M])
    write_frames(conn, frames(2), {M.key: M})
    doc = yaml.safe_load((paths.MAPS_DIR / "default.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["version"] = 2
    etc = next(b for b in doc["blocks"] if b["name"] == "ETC")
    etc["registers"] = [r for r in etc["registers"] if r["address"] != 603] + [
        {"address": 603, "table": "etc", "column": "sensor2_temperature", "type": "int16",
         "scale": 0.1, "min": -40, "max": 80}]
    m2 = parse_map(doc)
    step = migrate(conn, [M, m2])
    assert step.version == 2 and step.description == "add etc.sensor2_temperature"
    assert any("ADD COLUMN" in s for s in step.statements)
    assert migrate(conn, [M, m2]) is None
    assert len(rows(conn, "etc")) == 2              # existing rows kept
    later = frames(1, start=T0 + 3_600_000_000)
    for f in later:
        f.map_version = 2
    write_frames(conn, later, {M.key: M, m2.key: m2})
    assert count(conn, "SELECT count(sensor2_temperature) FROM etc") == 1


@pytest.mark.parametrize("bad", ["Bank", "bank; drop table x", 'a"b', "", "1abc", None, "x" * 64])
def test_quoting_helper_refuses_unsafe_names(bad):
    with pytest.raises(UnsafeIdentifier):
        ident(bad)


def test_generated_files_are_fresh():
    """docs/data-spec.md and schemas/sql/*.sql derive from the map; regenerate with
    `ess map doc --out docs/data-spec.md` and `ess db render --mode ... > schemas/sql/...`."""
    root = paths.SCHEMAS_DIR.parent
    assert (root / "docs" / "data-spec.md").read_text() == render_data_spec(M)
    for mode in ("timescale", "partitioned"):
        assert (paths.SQL_DIR / f"{mode}.sql").read_text() == render_schema([M], mode), mode
