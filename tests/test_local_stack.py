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
