"""Every `ess` command answers a user's mistake with one line naming the problem and the exit code
docs/architecture.md documents ("Exit codes of `ess`"): each row of its table is a case here,
run through the real entry point (`ess.cli.main` with argv, as the `ess` script calls it; one
case also through the installed script). No service: the database is a closed port, the object
store a local HTTP server that refuses every call."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ess.cli import main as ess_main
from ess_local.procs import free_port

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SITES = ("sites:\n  - site_id: site-a\n    devices:\n"
         "      - {host: 127.0.0.1, port: 5020, bank_id: 1}\n")


@dataclass
class Case:
    command: str            # as in the docs' table
    mistake: str            # as in the docs' table
    exit: int
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)   # name -> text, in the case's dir
    stdin: str = ""
    gcs: bool = False       # STORAGE_EMULATOR_HOST -> a server refusing every call


DAY = ["--date", "2024-01-01"]
SINCE = ["--since", "2024-01-01", "--until", "2024-01-02"]
CASES = [
    Case("ess", "no command, an unknown command or an unknown option", 2, ["nosuchcommand"]),
    Case("ess decode", "no such map (`--map nosuchmap`)", 2, ["decode", "--map", "nosuchmap"]),
    Case("ess decode", "a line that is not a frame of the map (told with its line number; the "
         "other lines are decoded)", 1, ["decode"], stdin='{"BMS1": [1, 2]}\n'),
    Case("ess map check", "an invalid map", 2, ["map", "check", "{dir}/m.yaml"],
         files={"m.yaml": "map_id: x\nversion: 1\nblocks: []\n"}),
    Case("ess map import-csv", "no such file", 2, ["map", "import-csv", "{dir}/none.csv"]),
    Case("ess map import-csv", "a header without a required column", 2,
         ["map", "import-csv", "{dir}/m.csv"], files={"m.csv": "name,addr\nBMS1,0\n"}),
    Case("ess map import-csv", "a value that is not a number (told with its line)", 2,
         ["map", "import-csv", "{dir}/m.csv"],
         files={"m.csv": "block,address,table,column,type,scale\nBMS1,x,bank,soc,int16,1\n"}),
    Case("ess map doc", "an unreadable map (a directory)", 2, ["map", "doc", "--map", "{dir}"]),
    Case("ess map doc", "`--out` in a missing directory", 2,
         ["map", "doc", "--out", "{dir}/no/such/dir/spec.md"]),
    Case("ess map bigquery", "no such map", 2,
         ["map", "bigquery", "--map", "nosuchmap", "--out", "{dir}"]),
    Case("ess db migrate", "the database is down", 3, ["db", "migrate", "--dsn", "{down}"]),
    Case("ess db migrate", "no database named (no `--dsn`, no `ESS_DB_DSN`)", 2,
         ["db", "migrate"]),
    Case("ess db migrate", "a DSN that is not `postgresql://`", 2,
         ["db", "migrate", "--dsn", "mysql://db/ess"]),
    Case("ess db migrate", "no such map", 2,
         ["db", "migrate", "--dsn", "{down}", "--map", "nosuchmap"]),
    Case("ess db render", "no such map", 2, ["db", "render", "--map", "nosuchmap"]),
    Case("ess db setup", "the database is down", 3, ["db", "setup", "--dsn", "{down}"]),
    Case("ess db setup", "a missing sites file", 2,
         ["db", "setup", "--dsn", "{down}", "--config", "{dir}/none.yaml"]),
    Case("ess db rollup", "the database is down", 3, ["db", "rollup", "--dsn", "{down}"]),
    Case("ess db rollup", "no such map", 2,
         ["db", "rollup", "--dsn", "{down}", "--map", "nosuchmap"]),
    Case("ess retention", "the database is down", 3,
         ["retention", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--dest", "{dir}"],
         files={"s.yaml": SITES}),
    Case("ess retention", "a missing sites file", 2,
         ["retention", "--dsn", "{down}", "--config", "{dir}/none.yaml", "--dest", "{dir}"]),
    Case("ess retention", "a retention tier out of its bounds (`raw_days: 1`)", 2,
         ["retention", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--dest", "{dir}"],
         files={"s.yaml": SITES + "retention: {raw_days: 1}\n"}),
    Case("ess replay-dead-letters", "a `--route` that is not `SOURCE=TOPIC` with full resource "
         "names", 2, ["replay-dead-letters", "--subscription", "projects/p/subscriptions/dl",
                      "--route", "ingest-main"]),
    Case("ess replay-dead-letters", "no `--subscription`", 2,
         ["replay-dead-letters", "--route",
          "projects/p/subscriptions/a=projects/p/topics/b"]),
    Case("ess status", "the database is down", 3, ["status", "--dsn", "{down}"]),
    Case("ess status", "a missing sites file", 2,
         ["status", "--dsn", "{down}", "--config", "{dir}/none.yaml"]),
    Case("ess status", "an invalid sites file", 2,
         ["status", "--dsn", "{down}", "--config", "{dir}/s.yaml"], files={"s.yaml": "sites: ["}),
    Case("ess status", "`--date` with `--from` or `--to`", 2,
         ["status", "--dsn", "{down}", *DAY, "--from", "2024-01-01"]),
    Case("ess status", "`--from` after `--to`", 2,
         ["status", "--dsn", "{down}", "--from", "2024-01-02", "--to", "2024-01-01"]),
    Case("ess status", "a `--site` the sites file does not list (a typo would pass a loss)", 2,
         ["status", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--site", "site-b"],
         files={"s.yaml": SITES}),
    Case("ess events", "the database is down", 3, ["events", "--dsn", "{down}"]),
    Case("ess events", "an invalid sites file", 2,
         ["events", "--dsn", "{down}", "--config", "{dir}/s.yaml"], files={"s.yaml": "sites: ["}),
    Case("ess events", "`--date` with `--from` or `--to`", 2,
         ["events", "--dsn", "{down}", *DAY, "--from", "2024-01-01"]),
    Case("ess events", "`--from` after `--to`", 2,
         ["events", "--dsn", "{down}", "--from", "2024-01-02", "--to", "2024-01-01"]),
    Case("ess events", "a `--site` the sites file does not list (a typo would pass a fault)", 2,
         ["events", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--site", "site-b"],
         files={"s.yaml": SITES}),
    Case("ess collect", "no sites config", 2, ["collect"]),
    Case("ess collect", "an invalid sites file", 2, ["collect", "--config", "{dir}/s.yaml"],
         files={"s.yaml": "sites: []\n"}),
    Case("ess simulate", "an invalid faults file", 2,
         ["simulate", "--port", "{port}", "--faults", "{dir}/f.yaml"],
         files={"f.yaml": "faults: {}\n"}),
    Case("ess export", "the database is down", 3,
         ["export", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--dest", "{dir}/out", *DAY],
         files={"s.yaml": SITES}),
    Case("ess export", "a missing sites file", 2,
         ["export", "--dsn", "{down}", "--config", "{dir}/none.yaml", "--dest", "{dir}", *DAY]),
    Case("ess export", "a bad date", 2, ["export", "--dsn", "{down}", "--config", "{dir}/s.yaml",
                                         "--dest", "{dir}/out", "--date", "2024-13-01"],
         files={"s.yaml": SITES}),
    Case("ess export", "an unusable destination (`ftp://...`, a file)", 2,
         ["export", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--dest", "{dir}/s.yaml",
          *DAY], files={"s.yaml": SITES}),
    Case("ess export", "an object-store error (the bucket cannot be listed)", 3,
         ["export", "--dsn", "{down}", "--config", "{dir}/s.yaml", "--dest", "gs://csv/daily",
          *DAY], files={"s.yaml": SITES}, gcs=True),
    Case("ess export-migrate", "a destination that is not a directory", 2,
         ["export-migrate", "--dest", "{dir}/f"], files={"f": "x"}),
    Case("ess redecode", "the database is down", 3,
         ["redecode", "--dsn", "{down}", "--source", "{dir}", *SINCE]),
    Case("ess redecode", "a missing sites file", 2,
         ["redecode", "--dsn", "{down}", "--source", "{dir}", "--config", "{dir}/none.yaml",
          *SINCE]),
    Case("ess redecode", "an unreadable map (`--map` a directory)", 2,
         ["redecode", "--dsn", "{down}", "--source", "{dir}", "--map", "{dir}", *SINCE]),
    Case("ess redecode", "a missing source directory", 2,
         ["redecode", "--dsn", "{down}", "--source", "{dir}/none", *SINCE]),
    Case("ess redecode", "an object-store error (the archive cannot be listed)", 3,
         ["redecode", "--dsn", "{down}", "--source", "gs://raw/frames", *SINCE], gcs=True),
    Case("ess redecode", "`--until` not after `--since`", 2,
         ["redecode", "--dsn", "{down}", "--source", "{dir}", "--since", "2024-01-02",
          "--until", "2024-01-01"]),
]


def doc_rows() -> set[tuple[str, str, int]]:
    """(command, mistake, exit) of each row of the docs' table of mistakes."""
    section = DOC.read_text().split("## Exit codes of `ess`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(ess[^`]*)` \| (.+?) \| (\d+) \|$", section, re.M)
    return {(command, mistake, int(code)) for command, mistake, code in rows}


class _Refusing(BaseHTTPRequestHandler):
    """Cloud Storage that answers every call 403 (not retried): a StoreError at once."""

    def _refuse(self):
        body = b'{"error": {"code": 403, "message": "no storage.objects.list access"}}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def refusing_gcs():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def clean_env(monkeypatch):
    """No database, sites config or bucket from the caller's environment; logging restored."""
    for name in ("ESS_DB_DSN", "ESS_DB_INSTANCE", "ESS_SITES_CONFIG", "ESS_EXPORT_BUCKET",
                 "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield monkeypatch
    root.handlers[:], root.level = handlers, level


def run(argv: list[str], capsys) -> tuple[int, str]:
    """`ess ARGV` in-process: its exit code and stderr (an escaping exception fails the test:
    the script would print a traceback)."""
    try:
        code = ess_main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.command}: {c.mistake}"[:60])
def test_a_mistake_is_one_line_and_its_documented_code(case, tmp_path, clean_env, capsys,
                                                       refusing_gcs):
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    subs = {"{dir}": str(tmp_path), "{down}": f"postgresql://ess@127.0.0.1:{free_port()}/ess",
            "{port}": str(free_port())}
    argv = [subs.get(a, a).replace("{dir}", str(tmp_path)) for a in case.argv]
    if case.gcs:
        clean_env.setenv("STORAGE_EMULATOR_HOST", refusing_gcs)
        clean_env.setattr("ess_functions.objstore.gcs._client", None)   # one per process
    clean_env.setattr("sys.stdin", io.StringIO(case.stdin))
    code, err = run(argv, capsys)
    lines = err.splitlines()
    assert code == case.exit, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"{case.command}: "), err


def test_the_docs_table_lists_exactly_the_cases():
    assert doc_rows() == {(c.command, c.mistake, c.exit) for c in CASES}


def test_every_command_has_a_row():
    from ess.cli import build_parser

    parser = build_parser()
    commands = {f"ess {name}" for name, p in _choices(parser).items()
                if not _choices(p)}
    commands |= {f"ess {name} {sub}" for name, p in _choices(parser).items()
                 for sub in _choices(p)}
    assert commands <= {c.command for c in CASES}, commands - {c.command for c in CASES}


def _choices(parser) -> dict:
    import argparse

    return next((a.choices for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)), {})


def test_the_installed_script_says_one_line_too(tmp_path):
    script = Path(sys.executable).parent / "ess"
    proc = subprocess.run([str(script), "decode", "--map", "nosuchmap"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("ess decode: nosuchmap: no such map"), proc.stderr
