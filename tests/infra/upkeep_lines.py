"""Log lines of the export function's scheduled upkeep tasks, from real runs (tests/infra).

On the real_lines database (after the export lines), with the same function client: ledger rows
of LEDGER_SITE on three old UTC days, past retention (raw_days 30):

- DROP_DAY, exported (a preparatory export, not captured): kept `rollups behind` by the first
  retention run (no rollup run yet), dropped by the second;
- STUCK_DAY, never exported: kept `not exported` days after it fell due (a refusal that
  persists: the run that first refused it is long past);
- the last UTC day that is due now (FRESH): kept `not exported` at 0 days past due (a first
  refusal).

Then a rollup run that brings the rollups up to date, one that finds another run holding the
lock (`busy`), and a rollup and a retention run with the database down.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from ess.db.connect import connect_dsn
from ess.db.rollup import ROLLUP_LOCK, STATE_NAME
from ess.db.rollup_schema import ROLLUP_STATE
from ess_local.procs import free_port
from real_lines import DEAD_DB, LEDGER_SITE, captured, environ

RAW_DAYS = 30


def old_days(now: datetime) -> dict[str, datetime]:
    """The first ledger time of each old day: DROP_DAY (40 days ago), STUCK_DAY (35), FRESH
    (the hour before the end of the last UTC day that is RAW_DAYS old)."""
    midnight = datetime.combine((now - timedelta(days=RAW_DAYS)).date(), datetime.min.time(), UTC)
    return {"drop": midnight - timedelta(days=10) + timedelta(hours=1),
            "stuck": midnight - timedelta(days=5) + timedelta(hours=1),
            "fresh": midnight - timedelta(hours=1)}


def _ledger_rows(dsn: str, starts: dict[str, datetime]) -> None:
    """Three frames of bank 1 from each start, committed a minute ago (a late arrival's commit
    time, older than the rollup watermark's clock slack), after a rollup run two minutes ago
    (its watermark: the steady state, not a first run's catch-up over the ledger's days)."""
    conn = connect_dsn(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {ROLLUP_STATE.name} (name, watermark, updated) VALUES "
                    "(%s, clock_timestamp() - interval '2 minutes', now())", (STATE_NAME,))
        for start in starts.values():
            cur.execute(
                "INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, poll_us, "
                "published, committed, crc) SELECT %s::timestamptz + s * interval '1 second', "
                "%s, 1, 900000000 + extract(epoch FROM %s::timestamptz)::bigint + s, 'default', "
                "1, 30000, now(), clock_timestamp() - interval '1 minute', s "
                "FROM generate_series(0, 2) s",
                (start, LEDGER_SITE, start))
        conn.commit()
    finally:
        conn.close()


def _after_midnight() -> None:
    """Wait out the last 2 minutes of a UTC day: FRESH is 0 days past due only on its own day."""
    now = datetime.now(UTC)
    left = (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            - now).total_seconds()
    if left < 120:
        time.sleep(left + 1)


def _post(app, body: dict, status: int = 200) -> dict:
    resp = app.post("/", json=body)
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def upkeep_lines(app, dsn: str, env: dict) -> tuple[list[dict], dict[str, date]]:
    """The lines of the rollup and retention runs described in the module docstring, and the
    old days' dates."""
    _after_midnight()
    starts = old_days(datetime.now(UTC))
    _ledger_rows(dsn, starts)
    retention = {"task": "retention", "format": "csv"}
    with environ(**env, ESS_RETENTION_RAW_DAYS=str(RAW_DAYS)):
        _post(app, {"date": str(starts["drop"].date()), "site": LEDGER_SITE})
        with captured("export") as lines:
            assert _post(app, retention)["dropped"] == 0          # rollups behind
            assert _post(app, {"task": "rollup"})["complete"]
            assert _post(app, retention)["dropped"] == 1
            lock = connect_dsn(dsn)
            try:
                lock.cursor().execute("SELECT pg_advisory_lock(%s)", (ROLLUP_LOCK,))
                assert _post(app, {"task": "rollup"})["status"] == "busy"
            finally:
                lock.close()
            with environ(ESS_DB_DSN=DEAD_DB.format(port=free_port())):
                _post(app, {"task": "rollup"}, 500)
                _post(app, retention, 500)
    return lines, {k: v.date() for k, v in starts.items()}
