"""Migrating again reads the live column types back as the schema writes them: a map with a
uint64 column (numeric(20), which the catalog spells numeric(20,0)) migrates twice."""

import pytest
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.regmap import load_map

PCS_METER = load_map("examples/pcs-meter")      # uint64 energy counters: numeric(20)


@pytest.mark.parametrize("fixture", ["timescale_db", "plain_db"])
def test_a_map_with_a_uint64_column_migrates_twice(request, fixture, needs_service):
    conn = connect_dsn(request.getfixturevalue(fixture))
    try:
        assert migrate(conn, [PCS_METER]) is not None
        assert migrate(conn, [PCS_METER]) is None
        assert migrate(conn, [load_map("default"), PCS_METER]) is not None   # adds tables
        assert migrate(conn, [load_map("default"), PCS_METER]) is None
    finally:
        conn.close()
