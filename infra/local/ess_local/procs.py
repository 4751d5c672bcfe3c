"""Managed subprocesses: own process group, readiness by port, guaranteed cleanup."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOCALHOST = "127.0.0.1"
# Set (by the unit test tier, tests/conftest.py) to forbid starting any service in this process
# and its children: PostgreSQL, the emulators and functions-framework refuse with ProcessError.
NO_SERVICES = "ESS_NO_SERVICES"


class ProcessError(RuntimeError):
    """A managed process exited early or did not become ready in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def refuse_if_forbidden(what: str) -> None:
    """Raise ProcessError instead of starting `what` when $ESS_NO_SERVICES is set."""
    if os.environ.get(NO_SERVICES):
        raise ProcessError(f"{what} not started: {NO_SERVICES} is set (the unit test tier "
                           "starts no service)")


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_LIVE: set[ManagedProcess] = set()


class Service:
    """Mixin: `with X(...) as x` starts the service and stops it on the way out."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ManagedProcess(Service):
    """A subprocess in its own process group, with output sent to a log file.

    `stop()` terminates the whole group, then kills it after `grace` seconds. Every process still
    running at interpreter exit is stopped too.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_path = Path(log_path)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        """Start the process (no-op when it is running)."""
        if self.running:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        _LIVE.add(self)
        return self

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        """The last n lines of the process's log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def wait_ready(
        self,
        port: int | None = None,
        *,
        timeout: float = 30.0,
        check: Callable[[], bool] | None = None,
    ) -> None:
        """Wait until `port` accepts connections and `check()` is true; raise ProcessError."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise ProcessError(
                    f"{self.name} exited (code {code}) before it was ready; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            try:
                if (port is None or port_open(port)) and (check is None or check()):
                    return
            except Exception:  # noqa: BLE001 - readiness probes may fail in any way
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(
                    f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the process group, kill it after `grace` seconds; idempotent."""
        _LIVE.discard(self)
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_group(proc, grace, self.stop_signal)



def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_group(proc: subprocess.Popen, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` (SIGTERM: to the group, else to the leader only), SIGKILL the group after `grace`.

    A leader-only signal suits servers that shut their children down themselves (postgres: SIGINT).
    """
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    if sig == signal.SIGTERM:
        _signal_group(pgid, sig)
    else:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.05)
    else:
        _signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@atexit.register
def stop_all() -> None:
    """Stop every managed process still running."""
    for p in list(_LIVE):
        p.stop(grace=2.0)
