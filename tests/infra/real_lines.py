"""Log lines the real components emit, captured from real runs for the log-metric tests.

- ingest (the real Ingestor, in-process, against a test database): a stored message with
  out-of-range values and status registers that raise fault and warning alarms (one event line
  per episode, sink main), its redelivery (all duplicates, no event line), a store failure (a
  dead database port: the outage case) and a poison message quarantined into a local directory;
- the collector (`ess collect` as a subprocess, its JSON lines on stderr): one bank on the
  simulator with a failing block and one frozen for a few seconds (faults file; it freezes and
  thaws), one on a closed port (connect failure), and Pub/Sub pointed at a dead emulator port
  (publish failure), with a spool of ~10 frames (its size bound drops the oldest) that starts
  with one corrupt row (set aside);
- the export (the real HTTP function through functions-framework's test client): a run to
  the GCS emulator and a failure (database down), and a run of a second site whose day has a
  full ledger (two banks; one with a sequence gap of one frame), so the data status lines
  include an incomplete day, a day with loss and a complete day.

Lines are sorted into kinds by their message text (what a reader sees), never by the fields
the metric filters test, so a filter is checked against what the code really writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from ess.codec import BlockData, Frame, encode_frames
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.decode import decoder_for
from ess.logs import setup_logging
from ess.regmap import load_map
from ess_local.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
DEAD_DB = "postgresql://ess@127.0.0.1:{port}/never_used"
FRAMES = 2
# the frames' poll time: noon in Seoul two days ago, a day the export may run for
POLLED = datetime.combine(datetime.now(UTC).date() - timedelta(days=2), datetime.min.time(),
                          UTC) + timedelta(hours=3)

# the second site: a full day of ledger rows (loaded with generate_series), bank 1 missing seq
LEDGER_SITE, LOST_SEQ = "site-b", 4242
# kind -> pattern of the message text; the first that matches names the line. A status line
# whose completeness is below 99.9 % (the default of var.completeness_threshold_percent) is
# `status_incomplete`, one with lost > 0 `status_lost`.
KINDS = [
    # the export function's upkeep tasks (upkeep_lines.py): a persistent refusal of retention
    # is `retention_unexported` (not exported, at least a day past due), any other `kept`
    ("rollup_done", r"^rollups: (done|empty), \d+ minute and \d+ hour rows$"),
    ("rollup_busy", r"^rollups: busy, "),
    ("rollup_held", r"^rollups: .*; watermark held "),
    ("rollup_failure", r"^rollup failed: "),
    ("retention_failure", r"^retention failed: "),
    ("retention_dropped", r"^retention \S+: dropped$"),
    ("retention_unexported", r"^retention \S+: kept, not exported, [1-9]\d* days past due$"),
    ("retention_kept", r"^retention \S+: kept, "),
    ("retention_pruned", r"^rollups pruned: "),
    ("event_fault", r"^\S+/bank\d+(/rack\d+)?: fault \S+ raised at "),
    ("event_warning", r"^\S+/bank\d+(/rack\d+)?: warning \S+ raised at "),
    ("status_incomplete", r"^data status .*: completeness (?!99\.9|100)\d{1,2}(\.\d+)?%"),
    ("status_lost", r"^data status .*, lost [1-9]"),
    ("status", r"^data status "),
    ("frozen", r"^\S+/bank\d+: registers frozen \("),
    ("thawed", r"^\S+/bank\d+: registers changing again$"),
    ("stored_again", r"^stored 0/\d+ rows"),
    ("stored", r"^stored \d+/\d+ rows"),
    ("store_failure", r"^store failed"),
    ("out_of_range", r"^out-of-range values"),
    ("quarantine", r"^quarantined message"),
    ("export_failure", r"^export failed"),
    ("connect_failure", r": cannot connect"),
    ("poll_summary", r": poll summary$"),
    ("poll_recovered", r": all blocks ok again$"),
    ("publish_failure", r"^publish failed"),
    ("publish_stalled", r"^publish stalled for site \S+: no answer"),
    ("publish_summary", r": publish summary$"),
    ("export_manifest", r"^manifest "),
    ("export_file", r"^export \S+: (written|unchanged)$"),
    ("poll_failed_block", r"^\S+/bank\d+: .*(timeout|exception|transport)"),
    ("spool_dropped", r"^spool dropped \d+ frames \("),
    ("spool_corrupt", r"^spool row \d+ of site \S+ is undecodable"),
]


def kind_of(message: str) -> str:
    """The kind of a line, from its message text ("other" for the rest)."""
    return next((k for k, p in KINDS if re.search(p, message)), "other")


def as_entry(payload: dict, resource: dict) -> dict:
    """A JSON line as Cloud Logging stores it: fields under jsonPayload, severity lifted."""
    payload = dict(payload)
    return {"jsonPayload": payload, "severity": payload.pop("severity", "DEFAULT"),
            "resource": resource}


@contextlib.contextmanager
def captured(component: str) -> Iterator[list[dict]]:
    """The JSON lines logged through the real handler while the block runs."""
    stream = io.StringIO()
    setup_logging(component, stream=stream, level="INFO")
    lines: list[dict] = []
    try:
        yield lines
    finally:
        setup_logging("test")
        lines += [json.loads(x) for x in stream.getvalue().splitlines() if x.startswith("{")]


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Environment variables set for the block, restored afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _frames(site: str, start: datetime) -> list[Frame]:
    regmap = load_map()
    out = []
    for i in range(FRAMES):
        regs = {b.name: [65535 if j % 97 == 5 else (i * 31 + j) % 1100 for j in range(b.count)]
                for b in regmap.blocks}
        us = int((start + timedelta(seconds=i)).timestamp() * 1_000_000)
        out.append(Frame(site, 1, i, us, us + 30_000, regmap.map_id, regmap.version,
                         {n: BlockData(registers=Frame.registers_to_bytes(r))
                          for n, r in regs.items()}))
    return out


def expected_values(frames: list[Frame]) -> dict[str, int]:
    """What the stored line of `frames` must report: frames, rows, out-of-range values."""
    tables, oor = decoder_for(load_map()).decode_frames(frames)
    return {"frames": len(frames), "rows": sum(len(t) for t in tables),
            "out_of_range": sum(s["count"] for s in oor)}


def ingest_lines(dsn: str, sites_path: Path, tmp: Path) -> tuple[list[dict], dict]:
    """A stored message, its redelivery, a store failure and a quarantine."""
    from ess.sites import load_sites
    from ess_functions.ingest.envelope import Message
    from ess_functions.ingest.ingestor import Ingestor
    from ess_functions.ingest.pool import Connections
    from ess_functions.ingest.quarantine import Quarantine

    conn = connect_dsn(dsn)
    migrate(conn, [load_map()])
    conn.close()
    sites = load_sites(str(sites_path))
    frames = _frames("site-a", POLLED)
    good = Message("m-good", encode_frames(frames), {"site_id": "site-a"})
    dead = DEAD_DB.format(port=free_port())
    with captured("ingest") as lines:
        ing = Ingestor(sites, "main", Connections(lambda: connect_dsn(dsn)),
                       Quarantine(str(tmp / "quarantine")))
        assert ing.handle(good).status == "stored"
        assert ing.handle(good).status == "stored"          # a redelivery: all duplicates
        assert ing.handle(Message("m-poison", b"not frames")).status == "quarantined"
        down = Ingestor(sites, "main", Connections(lambda: connect_dsn(dead, timeout=2)),
                        Quarantine(str(tmp / "quarantine")))
        try:
            down.handle(Message("m-down", encode_frames(frames), {"site_id": "site-a"}))
            raise AssertionError("a store with the database down must raise")
        except Exception as exc:  # noqa: BLE001 - any transient error is the point
            assert not isinstance(exc, AssertionError), exc
    conn = connect_dsn(dsn)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM events WHERE site_id = 'site-a'")
    episodes = cur.fetchone()[0]
    conn.close()
    return lines, {**expected_values(frames), "episodes": episodes}


def collector_lines(tmp: Path, emulator_port: int) -> list[dict]:
    """`ess collect` for 12 ticks: a failing block, a bank frozen for the simulator's first 8 s
    (frozen_after 1 s: it freezes, then thaws), a closed port, Pub/Sub unreachable (each
    publish stalls for 0.5 s, then fails after its 1 s budget)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "collector"))
    from collector_support import CollectorProcess, start_simulator, write_config

    sim = start_simulator(2, tmp, faults=[{"kind": "exception", "bank": 1, "block": "PCS"},
                                          {"kind": "frozen", "bank": 2, "end": 8}])
    try:
        cfg = write_config(tmp, sim, "projects/ess-local-test/topics/none", stats_interval=2,
                           publish={"timeout": 1, "max_latency": 0.2, "stall_after": 0.5},
                           frozen_after=1, spool={"max_mb": 0.01})
        _corrupt_spool_row(tmp / "spool.sqlite")
        doc = yaml.safe_load(cfg.read_text())
        doc["sites"][0]["devices"].append({"host": "127.0.0.1", "port": free_port(),
                                           "bank_id": 3})
        cfg.write_text(yaml.safe_dump(doc))
        proc = CollectorProcess(cfg, f"127.0.0.1:{emulator_port}", tmp / "collector.log",
                                ticks=12).start()
        try:
            proc.wait(60)
        finally:
            proc.stop()
        return proc.events()
    finally:
        sim.stop()


def _corrupt_spool_row(path: Path) -> None:
    """One frame of site-a bank 1 in the spool, its checksum broken (the sender sets it aside)."""
    from ess_collector.spool import Spool

    spool = Spool(path)
    (row_id, _, body), = [(x.id, x.frame, x.body) for x in spool.append(
        _frames("site-a", datetime.now(UTC))[:1])]
    spool.db.execute("UPDATE frames SET body = ? WHERE id = ?",
                     (body[:-1] + bytes([body[-1] ^ 0xFF]), row_id))
    spool.close()


def export_env(dsn: str, sites_path: Path, gcs_env: dict, bucket: str) -> dict:
    """The export function's environment: the sites file, the bucket, the database."""
    return {**gcs_env, "ESS_SITES_CONFIG": str(sites_path), "ESS_EXPORT_BUCKET": bucket,
            "ESS_DB_DSN": dsn}


def export_app():
    """The real export function (functions/export/main.py) behind Flask's test client."""
    import functions_framework

    return functions_framework.create_app(
        target="export", source=str(ROOT / "functions" / "export" / "main.py")).test_client()


def export_lines(app, env: dict) -> list[dict]:
    """One export run of the ingested day to the GCS emulator, and one with the DB down."""
    day = POLLED.date()   # 12:00 in Seoul, the site's timezone
    with environ(**env):
        with captured("export") as lines:
            assert app.post("/", json={"date": str(day), "site": "site-a"}).status_code == 200
            assert app.post("/", json={"date": str(day), "site": LEDGER_SITE}).status_code == 200
            os.environ["ESS_DB_DSN"] = DEAD_DB.format(port=free_port())
            assert app.post("/", json={"date": str(day), "site": "site-a"}).status_code == 500
    return lines


def ledger_day(dsn: str) -> None:
    """A full UTC day of ledger rows for LEDGER_SITE's banks 1 and 2; bank 1 lacks LOST_SEQ."""
    start = datetime.combine(POLLED.date(), datetime.min.time(), UTC)
    conn = connect_dsn(dsn)
    try:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, poll_us, "
            "published, committed, crc) SELECT %s::timestamptz + s * interval '1 second', %s, "
            "b, s, 'default', 1, 30000, %s::timestamptz + s * interval '1 second', "
            "%s::timestamptz + s * interval '1 second', s FROM generate_series(0, 86399) s, "
            "generate_series(1, 2) b WHERE NOT (b = 1 AND s = %s)",
            (start, LEDGER_SITE, start, start, LOST_SEQ))
        conn.commit()
    finally:
        conn.close()


def sites_yaml(path: Path) -> Path:
    """Site-a with one bank and LEDGER_SITE with two, on the default map (the ingest's and the
    export's configuration)."""
    def bank(b: int, port: int) -> dict:
        return {"host": "127.0.0.1", "port": port, "bank_id": b}

    path.write_text(yaml.safe_dump({"sites": [
        {"site_id": "site-a", "timezone": "Asia/Seoul", "devices": [bank(1, 1502)]},
        {"site_id": LEDGER_SITE, "timezone": "UTC", "devices": [bank(1, 1503), bank(2, 1504)]}]}))
    return path


def log_level_quiet() -> None:
    """Keep third-party chatter (google clients) out of the captured lines."""
    for name in ("google", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)
