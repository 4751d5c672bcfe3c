"""Shared fixtures: the real local services (no mocks), each started lazily on a free port.

Session-scoped: `pg_cluster` (PostgreSQL + TimescaleDB), `pubsub_emulator`, `gcs_emulator`.
Function-scoped: `timescale_db` and `plain_db` (throwaway databases; yield their DSN).
A service that is missing or does not start FAILS the tests that need it (never skips);
`make system-deps` (infra/local/install.sh) installs them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from ess_local.gcs import GcsEmulator
from ess_local.postgres import Cluster
from ess_local.procs import free_port
from ess_local.pubsub import Emulator

T = TypeVar("T")
PUBSUB_PROJECT = "ess-local-test"
_STACK_NOTES: list[str] = []


def _note(config: pytest.Config, line: str) -> None:
    _STACK_NOTES.append(line)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"\n[local stack] {line}")


def _start(what: str, factory: Callable[[int], T], attempts: int = 3) -> T:
    """Start a service on a fresh free port (retrying a lost port race); fail clearly."""
    err: Exception | None = None
    for _ in range(attempts):
        svc = factory(free_port())
        try:
            svc.start()
            return svc
        except Exception as e:  # noqa: BLE001 - reported below
            err = e
            try:
                svc.stop()
            except Exception:  # noqa: BLE001
                pass
    pytest.fail(
        f"{what} could not be started ({type(err).__name__}: {err}). "
        "Install the local stack with `make system-deps` (bash infra/local/install.sh).",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A temp dir for the services' data and logs, searchable by the postgres OS user."""
    d = Path(tempfile.mkdtemp(prefix="ess-stack-"))
    os.chmod(d, 0o755)
    yield d
    if not os.environ.get("ESS_KEEP_STACK"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest, stack_dir: Path) -> Iterator[Cluster]:
    """A running TimescaleDB-enabled PostgreSQL cluster (fsync off) for the session."""
    n = iter(range(100))
    cluster = _start(
        "PostgreSQL",
        lambda port: Cluster(stack_dir / f"pg{next(n)}", port, durable=False),
    )
    if not cluster.timescale:
        cluster.stop()
        pytest.fail(
            f"TimescaleDB is not installed for PostgreSQL {cluster.major}: "
            "run `make system-deps` (bash infra/local/install.sh)",
            pytrace=False,
        )
    _note(request.config, cluster.describe())
    yield cluster
    cluster.stop()


def _throwaway_db(cluster: Cluster, timescale: bool) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = cluster.create_database(name, timescale=timescale)
    yield dsn
    cluster.drop_database(name)


@pytest.fixture
def timescale_db(pg_cluster: Cluster) -> Iterator[str]:
    """DSN of a fresh database with the timescaledb extension, dropped afterwards."""
    yield from _throwaway_db(pg_cluster, timescale=True)


@pytest.fixture
def plain_db(pg_cluster: Cluster) -> Iterator[str]:
    """DSN of a fresh plain PostgreSQL database (no timescaledb extension), dropped afterwards."""
    yield from _throwaway_db(pg_cluster, timescale=False)


@pytest.fixture(scope="session")
def pubsub_emulator(request: pytest.FixtureRequest, stack_dir: Path) -> Iterator[Emulator]:
    """A running Pub/Sub emulator: `.host` (`127.0.0.1:PORT`), `.project`, `.kind`, `.admin`."""
    emu = _start(
        "Pub/Sub emulator",
        lambda port: Emulator(port, PUBSUB_PROJECT, log_dir=stack_dir),
    )
    _note(request.config, f"Pub/Sub emulator: {emu.kind} on {emu.host}")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def gcs_emulator(request: pytest.FixtureRequest, stack_dir: Path) -> Iterator[GcsEmulator]:
    """A running fake-gcs-server: `.endpoint` (`http://127.0.0.1:PORT`), `.client()`, `.env()`."""
    emu = _start("GCS emulator", lambda port: GcsEmulator(port, log_dir=stack_dir))
    _note(request.config, f"GCS emulator: fake-gcs-server at {emu.endpoint}")
    yield emu
    emu.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """Repeat which local services (and which Pub/Sub path) the run used."""
    for line in _STACK_NOTES:
        terminalreporter.write_line(f"[local stack] {line}")
