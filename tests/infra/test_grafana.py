"""infra/grafana/ess-fleet.json: every panel's and variable's SQL runs against a real database
after a `make run`-sized load (3 simulated sites of 1 bank: 10 minutes at 1 Hz, and a frame an
hour for the week before), over a short range (1-minute rollups) and a long one (1-hour), with
Grafana's macros expanded as its PostgreSQL data source expands them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ess.codec import BlockData, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.rollup import run_rollups
from ess.db.writer import write_frames
from ess.regmap import load_map
from ess.sites import parse_sites
from ess.status.report import export_day
from ess_collector.simulator.model import registers_at

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "ess-fleet.json"
M = load_map("default")
SITES = ("site-a", "site-b", "site-c")
NOW = datetime.now(UTC).replace(microsecond=0)


def _macros(sql: str, start: datetime, end: datetime, variables: dict[str, str]) -> str:
    """Grafana's expansion (pkg/tsdb/grafana-postgresql-datasource/macros.go and the
    `sqlstring` variable format) of the macros and variables the dashboard uses."""
    def stamp(t: datetime) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    sql = re.sub(r"\$__timeFilter\(([^)]*)\)",
                 lambda m: f"{m.group(1).strip()} BETWEEN '{stamp(start)}' AND '{stamp(end)}'",
                 sql)
    sql = sql.replace("$__timeFrom()", f"'{stamp(start)}'")
    sql = sql.replace("$__timeTo()", f"'{stamp(end)}'")
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
        sql = sql.replace(f"${{{name}}}", value)
    assert "$" not in sql, sql
    return sql


def _queries(doc: dict) -> list[tuple[str, str, str]]:
    """(title, format, SQL) of every panel target, then of every query variable."""
    out = []
    for p in doc["panels"]:
        assert p["datasource"]["uid"] == "${DS_ESS}", p["title"]
        for t in p["targets"]:
            assert t["rawQuery"] and t["format"] in ("table", "time_series"), p["title"]
            out.append((p["title"], t["format"], t["rawSql"]))
    out += [(v["name"], "variable", v["query"]) for v in doc["templating"]["list"]
            if v["type"] == "query"]
    return out


def _frame(site: int, t: int, seq: int) -> Frame:
    regs = registers_at(site + 1, t)
    blocks = {name: BlockData(registers=Frame.registers_to_bytes(r)) for name, r in regs.items()}
    return Frame(SITES[site], 1, seq, t * 1_000_000, t * 1_000_000 + 30_000, M.map_id,
                 M.version, blocks)


@pytest.fixture(scope="module")
def loaded(pg_cluster):
    """A migrated plain database (as on Cloud SQL) with the load, its rollups and data status."""
    dsn = pg_cluster.create_database("grafana_panels")
    conn = connect_dsn(dsn)
    migrate(conn, [M])
    end = int(NOW.timestamp())
    seconds = [end - 600 + k for k in range(600)]
    hourly = [end - 7 * 86400 + 3600 * k for k in range(7 * 24 - 1)]
    for s in range(len(SITES)):
        frames = [_frame(s, t, n) for n, t in enumerate(hourly + seconds)]
        for k in range(0, len(frames), 100):
            write_frames(conn, frames[k:k + 100], {M.key: M})
    assert run_rollups(conn, [M]).complete
    config = parse_sites({"sites": [{"site_id": s, "timezone": "Asia/Seoul", "devices": [
        {"host": "127.0.0.1", "port": 1502 + k, "bank_id": 1}]} for k, s in enumerate(SITES)]})
    for site in config.sites:
        export_day(conn, site, NOW.astimezone(site.tz).date())
    conn.commit()
    yield conn
    conn.close()
    pg_cluster.drop_database("grafana_panels")


@pytest.mark.parametrize("span", [timedelta(minutes=30), timedelta(days=7)],
                         ids=["1-minute", "1-hour"])
def test_every_panel_runs_and_returns_rows(loaded, span):
    doc = json.loads(DASHBOARD.read_text())
    variables = {"site": "site-b", "bank": "1", "poll_s": "1"}
    cur = loaded.cursor()
    seen = set()
    for title, fmt, sql in _queries(doc):
        cur.execute(_macros(sql, NOW - span, NOW + timedelta(minutes=1), variables))
        rows = cur.fetchall()
        names = [d[0] for d in cur.description]
        assert rows, f"{title}: no rows over {span}"
        if fmt == "time_series":
            assert names[0] == "time" and all(r[0] is not None for r in rows), title
            assert all(v is not None for r in rows for v in r[1:]), title
        seen.add(title)
        if title == "Bank SOC":
            assert all(0 <= r[1] <= r[2] <= r[3] <= 100 for r in rows)
        if title == "Data completeness" and span < timedelta(days=1):
            assert max(r[1] for r in rows) == 100 and min(r[1] for r in rows) > 0
        if title == "Fleet: last hour":
            assert [r[:2] for r in rows] == [[s, 1] for s in SITES]
        if title == "Rack extremes":
            assert [r[0] for r in rows] == list(range(1, 9))
        if title == "Cell voltage spread":
            assert all(r[2] <= r[1] and r[3] >= 0 for r in rows)
    loaded.rollback()
    assert {"Bank SOC", "Bank power", "Cell voltage spread", "Cell temperature spread",
            "Rack extremes", "Data completeness", "site", "bank"} <= seen


def test_panels_read_only_rollups_and_data_status():
    doc = json.loads(DASHBOARD.read_text())
    for title, _, sql in _queries(doc):
        tables = set(re.findall(r"\bFROM\s+([a-z_0-9]+)", sql))
        assert tables and tables <= {"bank_1m", "bank_1h", "rack_1m", "rack_1h",
                                     "data_status"}, (title, tables)
