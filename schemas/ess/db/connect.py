"""Database connections: a DSN locally, the Cloud SQL connector (IAM auth) on Cloud Run."""

from __future__ import annotations

import os
import socket
import ssl
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.dbapi

from ..errors import TransientError

TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300", "08000", "08003",
                       "08006", "08001", "08004", "55P03", "58030"}


class DatabaseUnavailable(TransientError):
    """The database cannot be reached right now; retrying later may succeed."""

    reason = "database_unavailable"


def is_transient(exc: BaseException) -> bool:
    """True for errors worth a retry: connection loss, restarts, serialization failures."""
    if isinstance(exc, DatabaseUnavailable | pg8000.dbapi.InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, pg8000.dbapi.DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return exc.args[0].get("C") in TRANSIENT_SQLSTATES
    return False


def _tune(conn, no_delay: bool = True, read_timeout: float | None = None) -> None:
    """Socket settings pg8000 does not expose.

    Nagle off: pg8000 writes a small transaction in several packets, and Nagle plus delayed ACKs
    stall each one ~40 ms. `read_timeout`: pg8000 applies its connect timeout to every read, too
    short for a long COPY.
    """
    sock = getattr(conn, "_usock", None)
    if sock is None:
        return
    if no_delay and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if read_timeout is not None:
        sock.settimeout(read_timeout)


def _ssl_context(query: str) -> ssl.SSLContext | None:
    """TLS from `?sslmode=`: require (encrypt), verify-full (encrypt and check the server)."""
    mode = parse_qs(query).get("sslmode", ["disable"])[0]
    if mode in ("disable", "allow", "prefer"):
        return None
    ctx = ssl.create_default_context()
    if mode in ("require", "verify-ca"):
        ctx.check_hostname = False
        if mode == "require":
            ctx.verify_mode = ssl.CERT_NONE
    elif mode != "verify-full":
        raise ValueError(f"unsupported sslmode {mode!r}")
    return ctx


def connect_dsn(dsn: str, no_delay: bool = True, timeout: float = 10.0,
                read_timeout: float | None = None):
    """Open a pg8000 DB-API connection from `postgresql://user[:pw]@host:port/db[?sslmode=]`.

    Use `?sslmode=verify-full` for a database reached over an untrusted network.
    """
    u = urlparse(dsn)
    if u.scheme not in ("postgres", "postgresql"):
        raise ValueError("ESS_DB_DSN must start with postgresql://")
    try:
        conn = pg8000.dbapi.connect(
            user=unquote(u.username or "postgres"), password=unquote(u.password or "") or None,
            host=u.hostname or "127.0.0.1", port=u.port or 5432,
            database=(u.path or "/postgres")[1:] or "postgres", timeout=timeout,
            application_name="ess", ssl_context=_ssl_context(u.query))
    except (pg8000.dbapi.InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {u.hostname}:{u.port}: {exc}") from exc
    _tune(conn, no_delay, read_timeout)
    return conn


_connector = None


def connect_cloudsql(instance: str, db: str, user: str, read_timeout: float | None = None):
    """Connect through the Cloud SQL Python connector with IAM database authentication."""
    global _connector
    from google.cloud.sql.connector import Connector, IPTypes

    if _connector is None:
        _connector = Connector(ip_type=IPTypes.PRIVATE, refresh_strategy="lazy")
    conn = _connector.connect(instance, "pg8000", user=user, db=db, enable_iam_auth=True)
    _tune(conn, read_timeout=read_timeout)
    return conn


def connect(dsn: str | None = None, read_timeout: float | None = None):
    """Connect using `dsn`, else the environment (ESS_DB_DSN, or ESS_DB_INSTANCE on Cloud Run)."""
    # e.g. ESS_DB_DSN=postgresql://ess@127.0.0.1:55432/ess
    dsn = dsn or os.environ.get("ESS_DB_DSN")
    if dsn:
        return connect_dsn(dsn, read_timeout=read_timeout)
    # e.g. ESS_DB_INSTANCE=my-project:asia-northeast3:ess-main
    instance = os.environ.get("ESS_DB_INSTANCE")
    if not instance:
        raise DatabaseUnavailable("set ESS_DB_DSN or ESS_DB_INSTANCE")
    # e.g. ESS_DB_NAME=ess, ESS_DB_USER=ingest-main@my-project.iam
    return connect_cloudsql(instance, os.environ.get("ESS_DB_NAME", "ess"),
                            os.environ["ESS_DB_USER"], read_timeout=read_timeout)
