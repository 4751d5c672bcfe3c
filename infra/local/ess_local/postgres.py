"""Throwaway or long-lived PostgreSQL (+ TimescaleDB) clusters run as managed processes.

As root the server runs as the `postgres` OS user (PostgreSQL refuses root) and the data
directory is owned by it; otherwise it runs as the current user. Auth is `trust`, on 127.0.0.1
only, no Unix socket. The app connects as `ess`, a superuser role.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pg8000.native
from ess.db.quote import ident

from .procs import LOCALHOST, ManagedProcess, Service, refuse_if_forbidden

APP_USER = "ess"
ADMIN_USER = "postgres"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The PostgreSQL cluster could not be set up, started or used."""


class TimescaleUnavailable(PostgresError):
    """TimescaleDB is not installed for this PostgreSQL major version."""


@dataclass(frozen=True)
class PgInstall:
    """One installed PostgreSQL major version."""

    major: int
    bindir: Path
    timescale: bool


def _extension_dirs(major: int, bindir: Path) -> list[Path]:
    return [Path(f"/usr/share/postgresql/{major}/extension"), bindir.parent / "share/extension"]


def find_install(major: int | None = None) -> PgInstall:
    """The PostgreSQL to use: `major`, else the newest with TimescaleDB, else the newest."""
    found = []
    for postgres in glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        bindir = Path(postgres).parent
        try:
            m = int(bindir.parent.name)
        except ValueError:
            continue
        ts = any((d / "timescaledb.control").exists() for d in _extension_dirs(m, bindir))
        found.append(PgInstall(m, bindir, ts))
    if major is not None:
        found = [i for i in found if i.major == major]
    if not found:
        raise PostgresError(
            f"PostgreSQL {major or ''} not found under /usr/lib/postgresql; "
            "run `make system-deps` (infra/local/install.sh)"
        )
    return max(found, key=lambda i: (i.timescale, i.major))


def connect(dsn: str) -> pg8000.native.Connection:
    """A pg8000 native connection from `postgresql://USER[:PW]@HOST:PORT/DB` (caller closes it)."""
    u = urlsplit(dsn)
    if u.scheme not in ("postgresql", "postgres"):
        raise PostgresError(f"not a postgresql:// DSN: {dsn!r}")
    return pg8000.native.Connection(
        unquote(u.username or ADMIN_USER),
        password=unquote(u.password) if u.password else None,
        host=u.hostname or LOCALHOST,
        port=u.port or 5432,
        database=unquote(u.path.lstrip("/")) or None,
        timeout=30,
    )


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise PostgresError(f"bad database name {name!r} (want [a-z_][a-z0-9_]*)")
    return name



def server_user() -> str | None:
    """The OS user the server runs as: postgres when we are root (it refuses root), else us."""
    return ADMIN_USER if os.geteuid() == 0 else None


def unsearchable_parent(path: Path) -> Path | None:
    """The first parent of `path` the server's OS user cannot pass through, or None."""
    user = server_user()
    if user is None:
        return None
    uid = pwd.getpwnam(user).pw_uid
    for parent in path.parents:
        st = parent.stat()
        if not st.st_mode & 0o001 and st.st_uid != uid:
            return parent
    return None


class Cluster(Service):
    """A PostgreSQL cluster in `datadir` listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        datadir: str | Path,
        port: int,
        *,
        durable: bool = True,
        major: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`durable=False` turns fsync off: for throwaway test clusters only.

        `settings` are extra postgresql.conf lines, e.g. {"track_commit_timestamp": "on"}.
        """
        self.settings = dict(settings or {})
        self.datadir = Path(datadir).resolve()
        self.port = port
        self.durable = durable
        self.install = find_install(major)
        self.major = self.install.major
        self.timescale = self.install.timescale
        self.os_user = server_user()
        self._proc: ManagedProcess | None = None

    # -- setup -----------------------------------------------------------------------------
    def _run(self, *argv: str) -> None:
        kw = {}
        if self.os_user:
            kw = {"user": self.os_user, "group": self.os_user, "extra_groups": []}
        res = subprocess.run(
            argv, capture_output=True, text=True, cwd="/", check=False, **kw
        )
        if res.returncode != 0:
            raise PostgresError(f"{' '.join(argv)} failed:\n{res.stdout}{res.stderr}")

    @property
    def initialized(self) -> bool:
        """True when the data directory holds a cluster."""
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> Cluster:
        """Create the cluster (no-op when it exists) and write its settings."""
        if self.initialized:
            return self
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            blocked = unsearchable_parent(self.datadir)
            if blocked:
                raise PostgresError(
                    f"{blocked} is not searchable by the {self.os_user} user; "
                    "put the data directory under a world-searchable directory (chmod o+x)"
                )
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.datadir, 0o700)
        self._run(
            str(self.install.bindir / "initdb"), "-D", str(self.datadir), "-U", ADMIN_USER,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        conf = {
            "listen_addresses": f"'{LOCALHOST}'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "100",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
        }
        if self.timescale:
            conf["shared_preload_libraries"] = "'timescaledb'"
            conf["timescaledb.telemetry_level"] = "off"
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        lines = "".join(f"{k} = {v}\n" for k, v in conf.items())
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# ess_local\n" + lines)
        return self

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.running

    def start(self, timeout: float = 30.0) -> Cluster:
        """Start the server (initializing first if needed) and wait until it accepts logins."""
        if self.running:
            return self
        refuse_if_forbidden("PostgreSQL")
        self.init()
        self._proc = ManagedProcess(
            # -p: a kept cluster opened again gets a fresh port (the conf has its first one)
            [str(self.install.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)],
            name=f"postgres-{self.major}:{self.port}",
            log_path=self.datadir.parent / f"{self.datadir.name}.log",
            cwd="/",
            user=self.os_user,
            stop_signal=signal.SIGINT,  # fast shutdown: clean checkpoint, clients cut off
        )
        self._proc.start()
        self._proc.wait_ready(self.port, timeout=timeout, check=self._ping)
        self._ensure_app_role()
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then kill the process group if it lingers."""
        if self._proc is not None:
            self._proc.stop(grace=15.0)
            self._proc = None

    def restart(self) -> Cluster:
        """Stop and start again; data persists."""
        self.stop()
        return self.start()


    def destroy(self) -> None:
        """Stop the server and delete the data directory."""
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    # -- SQL -------------------------------------------------------------------------------
    def connect(self, dbname: str = "postgres", user: str = ADMIN_USER) -> pg8000.native.Connection:
        """A pg8000 native connection (caller closes it)."""
        return pg8000.native.Connection(
            user, host=LOCALHOST, port=self.port, database=dbname, timeout=30
        )

    def _ping(self) -> bool:
        self.connect().close()
        return True

    def _ensure_app_role(self) -> None:
        con = self.connect()
        try:
            if not con.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=APP_USER):
                con.run(f"CREATE ROLE {ident(APP_USER)} LOGIN SUPERUSER")
        finally:
            con.close()

    def dsn(self, dbname: str = "postgres") -> str:
        """`postgresql://ess@127.0.0.1:PORT/DBNAME`."""
        return f"postgresql://{APP_USER}@{LOCALHOST}:{self.port}/{dbname}"

    def create_database(self, name: str, timescale: bool = False) -> str:
        """Create database `name` owned by `ess` (+ timescaledb extension); return its DSN."""
        _check_name(name)
        if timescale and not self.timescale:
            raise TimescaleUnavailable(
                f"TimescaleDB is not installed for PostgreSQL {self.major}; "
                "run `make system-deps` (infra/local/install.sh)"
            )
        con = self.connect()
        try:
            con.run(f"CREATE DATABASE {ident(name)} OWNER {ident(APP_USER)}")
        finally:
            con.close()
        if timescale:
            con = self.connect(name)
            try:
                con.run("CREATE EXTENSION IF NOT EXISTS timescaledb")
            finally:
                con.close()
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, cutting off its sessions."""
        _check_name(name)
        con = self.connect()
        try:
            con.run(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
        finally:
            con.close()

    def describe(self) -> str:
        """E.g. `PostgreSQL 15 + TimescaleDB 2.19.3 on 127.0.0.1:5432`."""
        ts = "without TimescaleDB"
        if self.timescale:
            con = self.connect()
            try:
                rows = con.run(
                    "SELECT default_version FROM pg_available_extensions WHERE name='timescaledb'"
                )
            finally:
                con.close()
            ts = f"+ TimescaleDB {rows[0][0]}" if rows else "(TimescaleDB not loadable)"
        return f"PostgreSQL {self.major} {ts} on {LOCALHOST}:{self.port}"
