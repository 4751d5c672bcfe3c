"""functions-framework processes: serve one function (HTTP or CloudEvent) on 127.0.0.1:PORT."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .procs import LOCALHOST, ManagedProcess, Service, refuse_if_forbidden

SIGNATURES = ("http", "event", "cloudevent", "typed")


class FunctionError(RuntimeError):
    """The function process could not be started."""


class FunctionProcess(Service):
    """`functions-framework --target T --source S --signature-type K` on 127.0.0.1:`port`.

    `env` is added to this process's environment (e.g. `ESS_DB_DSN`, `PUBSUB_EMULATOR_HOST`).
    """

    def __init__(
        self,
        target: str,
        source: str | Path,
        port: int,
        *,
        signature_type: str = "http",
        env: Mapping[str, str] | None = None,
        log_dir: str | Path | None = None,
        debug: bool = False,
    ) -> None:
        if signature_type not in SIGNATURES:
            raise FunctionError(f"signature_type {signature_type!r} not in {SIGNATURES}")
        self.target = target
        self.source = Path(source).resolve()
        self.port = port
        self.signature_type = signature_type
        self.env = dict(env or {})
        self.debug = debug
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="ess-fn-"))
        self.url = f"http://{LOCALHOST}:{port}/"
        self._proc: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        """The process's combined stdout/stderr log."""
        return self.log_dir / f"{self.target}-{self.port}.log"

    def log_tail(self, n: int = 50) -> str:
        """The last n lines of the log."""
        return self._proc.log_tail(n) if self._proc else ""

    def start(self, timeout: float = 30.0) -> FunctionProcess:
        """Start serving and wait until the port accepts connections."""
        if self._proc is not None and self._proc.running:
            return self
        refuse_if_forbidden(f"functions-framework ({self.target})")
        if not self.source.exists():
            raise FunctionError(f"source {self.source} does not exist")
        argv = [
            sys.executable, "-m", "functions_framework",
            "--target", self.target, "--source", str(self.source),
            "--signature-type", self.signature_type,
            "--host", LOCALHOST, "--port", str(self.port),
        ]
        if self.debug:
            argv.append("--debug")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._proc = ManagedProcess(
            argv, name=f"function {self.target}:{self.port}", log_path=self.log_path,
            env=env, cwd=self.source.parent,
        ).start()
        self._proc.wait_ready(self.port, timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop the function process group."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

