"""`ess events` against a real database: episodes of local days, --active, --json, and the exit
code (1 while a fault is active, 0 once it cleared; 3 when the database is down)."""

from __future__ import annotations

import contextlib
import io
import json

import yaml
from ess.cli import main
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess_local.procs import free_port
from events_db import FRAMES, SITE, M, default_frame, deliver

# T0 is 2025-06-15 15:06:40 UTC, already 2025-06-16 in Seoul


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["events", *argv])
    return code, out.getvalue()


def test_events_lists_episodes_by_local_day_and_exits_1_while_a_fault_is_active(
        timescale_db, tmp_path):
    conn = connect_dsn(timescale_db)
    try:
        migrate(conn, [M])
        deliver(conn, FRAMES)
        sites = tmp_path / "sites.yaml"
        sites.write_text(yaml.safe_dump({"sites": [{"site_id": SITE, "timezone": "Asia/Seoul",
                                                    "devices": [{"host": "127.0.0.1",
                                                                 "port": 502, "bank_id": 1}]}]}))
        code, text = _run("--dsn", timescale_db, "--date", "2025-06-15", "--json")
        doc = json.loads(text)
        assert code == 1 and doc["active"] == {"fault": 1, "warning": 0} and not doc["ok"]
        assert len(doc["episodes"]) == 4, "UTC days without a sites file"
        code, text = _run("--dsn", timescale_db, "--config", str(sites), "--date", "2025-06-15",
                          "--json")
        assert json.loads(text)["episodes"] == [], "in Seoul it is already the 16th"
        code, text = _run("--dsn", timescale_db, "--config", str(sites), "--from", "2025-06-16",
                          "--to", "2025-06-17", "--active")
        assert code == 1
        assert text.splitlines() == [   # the site's wall time: Seoul
            f"{SITE}/bank1 FAULT rack_over_temperature_fault: raised 2025-06-16 00:07:10+09:00 "
            f"(value 1), ACTIVE for {text.split('ACTIVE for ')[1].split(chr(10))[0]}",
            "1 episode(s) listed; active now: 1 fault(s), 0 warning(s)"]
        deliver(conn, [default_frame(41, bank_fault=False)])
        code, text = _run("--dsn", timescale_db, "--date", "2025-06-15")
        assert code == 0, text
        assert (f"{SITE}/bank1/rack1 WARNING rack_cell_temperature_high: raised "
                "2025-06-15 15:06:53+00:00 (since 2025-06-15 15:06:43+00:00) (value 52), "
                "cleared 2025-06-15 15:07:03+00:00 after 20s (value 41)") in text
        assert "cleared 2025-06-15 15:07:21+00:00 after 11s (value 0)" in text
        sites.write_text("sites: [{site_id: x}]")
        assert _run("--dsn", timescale_db, "--config", str(sites))[0] == 2
    finally:
        conn.close()


def test_events_exits_3_when_the_database_is_down(capsys):
    code, _ = _run("--dsn", f"postgresql://ess@127.0.0.1:{free_port()}/none")
    assert code == 3 and capsys.readouterr().err.startswith("ess events: ")
