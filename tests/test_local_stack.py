"""The local stack runs real services: PostgreSQL+TimescaleDB, Pub/Sub and GCS emulators."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import urlopen

import pytest
from ess_local.functions import FunctionProcess
from ess_local.postgres import connect
from ess_local.procs import ManagedProcess, free_port, port_open
from google.api_core import exceptions as gexc
from google.cloud import storage


def test_timescale_row_roundtrip_and_hypertable(timescale_db):
    con = connect(timescale_db)
    try:
        assert con.run("SELECT current_user")[0][0] == "ess"
        con.run("CREATE TABLE bank (site_id text, bank_id smallint, ts timestamptz NOT NULL,"
                " soc real, UNIQUE (site_id, bank_id, ts))")
        con.run("SELECT create_hypertable('bank', 'ts')")
        con.run("INSERT INTO bank VALUES ('s1', 1, '2025-01-01T00:00:00Z', 55.5)"
                " ON CONFLICT DO NOTHING")
        assert con.run("SELECT site_id, bank_id, soc FROM bank") == [["s1", 1, 55.5]]
        hts = con.run("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert hts == [["bank"]]
    finally:
        con.close()


def test_plain_db_has_no_timescaledb(plain_db, pg_cluster):
    con = connect(plain_db)
    try:
        assert con.run("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'") == []
        assert con.run("SELECT to_regproc('create_hypertable')") == [[None]]
        con.run("CREATE TABLE t (v int)")
        con.run("INSERT INTO t VALUES (7)")
        assert con.run("SELECT v FROM t") == [[7]]
    finally:
        con.close()
    assert pg_cluster.dsn("x").startswith("postgresql://ess@127.0.0.1:")


def test_restart_keeps_data(pg_cluster, timescale_db):
    con = connect(timescale_db)
    con.run("CREATE TABLE kept (v text)")
    con.run("INSERT INTO kept VALUES ('still here')")
    con.close()
    pg_cluster.restart()
    con = connect(timescale_db)
    try:
        assert con.run("SELECT v FROM kept") == [["still here"]]
        assert con.run("SELECT extname FROM pg_extension WHERE extname='timescaledb'")
    finally:
        con.close()


def test_pubsub_publish_then_pull(pubsub_emulator):
    ps = pubsub_emulator.admin
    ps.create_topic("pull-topic")
    ps.create_pull_subscription("pull-sub", "pull-topic")
    mid = ps.publish("pull-topic", b"\x00frame", site_id="site-a")
    got = []
    deadline = time.monotonic() + 15
    while not got and time.monotonic() < deadline:
        got = ps.pull("pull-sub", timeout=5)
    assert [(m.data, m.attributes["site_id"], m.message_id) for m in got] == [
        (b"\x00frame", "site-a", mid)
    ]


class _Endpoint:
    """A tiny local HTTP push endpoint answering `status` and recording the JSON bodies."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.bodies: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.bodies.append(json.loads(body))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/push"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    ep = _Endpoint()
    yield ep
    ep.close()


def test_pubsub_push_delivers_to_local_http(pubsub_emulator, endpoint):
    ps = pubsub_emulator.admin
    ps.create_topic("push-topic")
    ps.create_topic("push-topic-dlq")
    ps.create_push_subscription(
        "push-sub", "push-topic", endpoint.url,
        dead_letter_topic="push-topic-dlq", max_delivery_attempts=5,
        min_backoff_s=1, max_backoff_s=5,
    )
    sub = ps.subscriber.get_subscription(request={"subscription": ps.subscription_path("push-sub")})
    assert sub.push_config.push_endpoint == endpoint.url
    assert sub.dead_letter_policy.max_delivery_attempts == 5
    ps.publish("push-topic", b"pushed", site_id="site-b")
    bodies = endpoint.wait(1, timeout=20)
    assert bodies, "the emulator pushed nothing"
    msg = bodies[0]["message"]
    assert bodies[0]["subscription"] == ps.subscription_path("push-sub")
    assert msg["data"] == "cHVzaGVk"  # base64 of b"pushed"
    assert msg["attributes"] == {"site_id": "site-b"}


@pytest.mark.slow
def test_pubsub_push_failures_go_to_dead_letter_topic(pubsub_emulator, endpoint):
    endpoint.status = 500
    ps = pubsub_emulator.admin
    ps.create_topic("dl-topic")
    ps.create_topic("dl-topic-dlq")
    ps.create_pull_subscription("dl-topic-dlq-pull", "dl-topic-dlq")
    ps.create_push_subscription(
        "dl-push", "dl-topic", endpoint.url,
        dead_letter_topic="dl-topic-dlq", max_delivery_attempts=5,
        min_backoff_s=1, max_backoff_s=2,
    )
    ps.publish("dl-topic", b"poison")
    dead = []
    deadline = time.monotonic() + 60
    while not dead and time.monotonic() < deadline:
        dead = ps.pull("dl-topic-dlq-pull", timeout=5)
    assert [m.data for m in dead] == [b"poison"]
    assert dead[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert len(endpoint.bodies) == 5


def test_gcs_roundtrip_and_generation_precondition(gcs_emulator, monkeypatch):
    bucket = gcs_emulator.create_bucket("ess-test-bucket")
    blob = bucket.blob("exports/a.csv")
    blob.upload_from_string(b"ts,v\n1,2\n", if_generation_match=0)
    assert blob.generation
    assert bucket.blob("exports/a.csv").download_as_bytes() == b"ts,v\n1,2\n"
    with pytest.raises(gexc.PreconditionFailed) as exc:
        bucket.blob("exports/a.csv").upload_from_string(b"again", if_generation_match=0)
    assert exc.value.code == 412
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("exports/a.csv").upload_from_string(
            b"stale", if_generation_match=blob.generation + 1
        )
    bucket.blob("exports/a.csv").upload_from_string(b"v2", if_generation_match=blob.generation)
    # The app's way: a default client configured only by STORAGE_EMULATOR_HOST.
    for k, v in gcs_emulator.env().items():
        monkeypatch.setenv(k, v)
    client = storage.Client()
    assert client.bucket("ess-test-bucket").blob("exports/a.csv").download_as_bytes() == b"v2"
    assert [b.name for b in client.list_blobs("ess-test-bucket")] == ["exports/a.csv"]


@pytest.mark.usefixtures("needs_service")
def test_function_process_serves_http(tmp_path):
    src = tmp_path / "main.py"
    src.write_text(
        "import os\nimport functions_framework\n\n"
        "@functions_framework.http\n"
        "def hello(request):\n    return 'hi ' + os.environ['GREETING']\n"
    )
    with FunctionProcess("hello", src, free_port(), env={"GREETING": "ess"}) as fn:
        assert urlopen(fn.url, timeout=10).read() == b"hi ess"
        port = fn.port
    assert not port_open(port)


def test_managed_process_stops_whole_group(tmp_path):
    p = ManagedProcess(["sh", "-c", "sleep 300 & sleep 300"], name="sleepers",
                       log_path=tmp_path / "log").start()
    pgid = p.proc.pid
    p.stop(grace=2)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # no process of the group is left


def _ledger_frames(site: str, start_s: int, ticks: int, skip: set[int]) -> list:
    from ess.codec import BlockData, Frame
    from ess.regmap import load_map

    m = load_map("default")
    out, seq = [], 1
    for i in range(ticks):
        if i in skip:
            continue
        us = (start_s + i) * 1_000_000
        blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
            [(i + k) % 1000 for k in range(b.count)])) for b in m.blocks}
        out.append(Frame(site, 1, seq, us, us + 20_000, "default", 1, blocks))
        seq += 1
    return out


def test_make_run_status_counts_run_completeness_and_lost(timescale_db, tmp_path):
    """The status line and SUMMARY fields of `make run` (ess_local.status) on a real ledger:
    ticks 5..7 never polled (missed), the frame of tick 12 deleted (lost). The run's figure is
    `run_completeness`, never plain `completeness` (the day's figure of ess status)."""
    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate
    from ess.db.writer import write_frames
    from ess.regmap import load_map
    from ess.sites import load_sites
    from ess_local.status import exit_code, run_status, status_line, summary_fields

    sites = tmp_path / "sites.yaml"
    sites.write_text("sites:\n" + "".join(
        f"  - {{site_id: {s}, timezone: UTC, devices: [{{host: 127.0.0.1, port: {5020 + k}, "
        "bank_id: 1}]}\n" for k, s in enumerate(("site-a", "site-b"))))
    m = load_map("default")
    conn = connect_dsn(timescale_db)
    migrate(conn, [m])
    frames = _ledger_frames("site-a", int(time.time()) - 60, 20, {5, 6, 7})
    write_frames(conn, frames, {m.key: m})
    cur = conn.cursor()
    cur.execute("DELETE FROM frames WHERE site_id = 'site-a' AND seq = %s", (frames[9].seq,))
    conn.commit()
    conn.close()
    status = run_status(timescale_db, load_sites(sites))
    assert status["site-a"] == {"stored": 16, "ticks": 20, "run_completeness": 0.8, "lost": 1}
    assert status["site-b"] == {"stored": 0, "ticks": 0, "run_completeness": 0.0, "lost": 0}
    assert status_line(status) == "run completeness 80.000% lost 1"
    fields = summary_fields(status)
    assert fields == {"lost_frames": 1, "run_completeness": {"site-a": 0.8, "site-b": 0.0}}
    rows = {"bank": 15}
    assert exit_code({"rows_main": rows, "rows_replica": rows, **fields}) == 1
    assert exit_code({"rows_main": rows, "rows_replica": rows, "lost_frames": 0}) == 0
    assert exit_code({"rows_main": rows, "rows_replica": {"bank": 14}, "lost_frames": 0}) == 1


@pytest.mark.slow
def test_make_run_summary_has_lost_frames_and_run_completeness(stack_dir):
    """A short `make run` (python -m ess_local.run): status lines with the run's completeness
    and lost, SUMMARY with lost_frames 0 and run_completeness per site; exit 0. Afterwards the
    run's folder keeps the exported files, and its databases open again (make run-db)."""
    import subprocess
    import sys

    run_dir = stack_dir / "make-run"
    out = subprocess.run([sys.executable, "-m", "ess_local.run", "--duration", "15",
                          "--sites", "2", "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=300)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    status = [ln for ln in lines if ln.startswith("status:")]
    assert status and all(" | run completeness " in ln and " lost 0" in ln
                          for ln in status), status
    [summary] = [json.loads(ln[len("SUMMARY "):]) for ln in lines if ln.startswith("SUMMARY ")]
    assert summary["lost_frames"] == 0 and "completeness" not in summary
    assert set(summary["run_completeness"]) == {"site-a", "site-b"}
    assert all(0.9 <= c <= 1.0 for c in summary["run_completeness"].values()), summary
    _the_run_is_kept(run_dir, summary)
    # the export on exit wrote the type-first layout (issue 16) and the day's manifest aside
    import re

    files = [n for n in summary["objects"] if not n.startswith("_manifests/")]
    layout = re.compile(
        r"type=(bank|rack|pcs|etc|events)/date=\d{4}-\d{2}-\d{2}/site=(site-[ab])\.csv")
    assert files and all(layout.fullmatch(n) for n in files), summary["objects"]
    assert {layout.fullmatch(n).groups() for n in files} == {
        (t, s) for t in ("bank", "rack", "pcs", "etc", "events") for s in ("site-a", "site-b")}
    days = {n.split("/")[1] for n in files}
    assert {f"_manifests/{d}/manifest.json" for d in days} == \
        set(summary["objects"]) - set(files), summary["objects"]
    # the rollup and retention tasks ran on exit, as the scheduler runs them (issue 23)
    rollups = [ln for ln in lines if ln.startswith("run: rollup ")]
    assert rollups and re.match(r"run: rollup [1-9]\d* minute and [1-9]\d* hour rows",
                                rollups[-1]), rollups
    assert any(re.match(r"run: retention \d+ raw range", ln) for ln in lines), lines[-20:]


def _the_run_is_kept(run_dir, summary: dict) -> None:
    """The export bucket's objects in <run>/export (the emulator is gone), the raw archive in
    <run>/archive, and the cluster opens again with the rows SUMMARY counted."""
    from ess_local.kept import describe
    from ess_local.postgres import Cluster, connect

    export = run_dir / "export"
    kept = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
    assert kept == summary["objects"]
    assert summary["kept"]["export/"] == len(kept) and summary["kept"]["archive/"] > 0
    assert list((run_dir / "archive" / "frames").rglob("*.avro"))
    with Cluster((run_dir / "pg" / "data").resolve(), free_port()) as cluster:
        assert any("ess_main" in line for line in describe(run_dir, cluster))
        con = connect(cluster.dsn("ess_main"))
        try:
            assert {t: con.run(f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608 - our names
                    for t in summary["rows_main"]} == summary["rows_main"]
        finally:
            con.close()
