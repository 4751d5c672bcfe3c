"""Shared fixtures: the real local services (no mocks), each started lazily on a free port,
and the two test tiers.

Session-scoped: `pg_cluster` (PostgreSQL + TimescaleDB), `pubsub_emulator`, `gcs_emulator`.
Function-scoped: `timescale_db` and `plain_db` (throwaway databases; yield their DSN).
A service that is missing or does not start FAILS the tests that need it (never skips);
`make system-deps` (infra/local/install.sh) installs them.

Tiers: every service fixture depends on `needs_service`, so a test whose fixtures (direct or
indirect) include it is marked `service` at collection. `make test-unit` runs the rest
(`-m "not service"`): there `needs_service` fails instead of starting anything, and
`ESS_NO_SERVICES` makes the local stack refuse to start a service (ess_local.procs), also in a
child process. A test that starts a service itself (e.g. a FunctionProcess) requests
`needs_service` (`@pytest.mark.usefixtures("needs_service")`), as does a fixture that needs a
tool `make install` does not install (checkov, the provider schema).
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
from ess_local.procs import NO_SERVICES, free_port
from ess_local.pubsub import Emulator

T = TypeVar("T")
SERVICE = "service"   # the marker of the full tier's tests
UNIT_TIER_EXPR = f"not {SERVICE}"
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


def unit_tier(config: pytest.Config) -> bool:
    """True when this run selects only the tests that need no service (`make test-unit`)."""
    return " ".join((config.getoption("markexpr") or "").split()) == UNIT_TIER_EXPR


def pytest_configure(config: pytest.Config) -> None:
    if unit_tier(config):
        os.environ[NO_SERVICES] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `service` every test whose fixture closure holds `needs_service`."""
    for item in items:
        if "needs_service" in getattr(item, "fixturenames", ()):
            item.add_marker(SERVICE)


@pytest.fixture(scope="session")
def needs_service(request: pytest.FixtureRequest) -> None:
    """The full tier's token: what depends on it starts a service or needs a tool that
    `make install` does not provide. Fails loudly in the unit tier (a test that reaches it
    there asked for a service at run time, e.g. via request.getfixturevalue)."""
    if unit_tier(request.config):
        pytest.fail("this test needs a service, but the unit tier starts none: request "
                    "`needs_service` (or a service fixture) in its signature or in its "
                    "fixtures' so that it is marked `service`", pytrace=False)


@pytest.fixture(scope="session")
def stack_dir(needs_service: None) -> Iterator[Path]:
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
