"""Database connections: a DSN locally, the Cloud SQL connector (IAM auth) on Cloud Run."""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from ..errors import TransientError
from . import pg

TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300", "08000", "08003",
                       "08006", "08001", "08004", "55P03", "58030"}


class DatabaseUnavailable(TransientError):
    """The database cannot be reached right now; retrying later may succeed."""

    reason = "database_unavailable"


def is_transient(exc: BaseException) -> bool:
    """True for errors worth a retry: connection loss, restarts, serialization failures."""
    if isinstance(exc, DatabaseUnavailable | pg.InterfaceError | OSError | TimeoutError):
        return True
    return pg.sqlstate(exc) in TRANSIENT_SQLSTATES


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class TlsSettings:
    """TLS for one DSN, with libpq's meaning of `sslmode` and `sslrootcert`."""

    mode: str
    rootcert: str | None = None    # a CA file, or "system" (the default CA store)


def is_loopback(host: str | None) -> bool:
    """True for this machine: no host, a unix socket directory, localhost or a 127.x/::1 address."""
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_settings(host: str | None, query: str) -> TlsSettings:
    """`?sslmode=&sslrootcert=`; without sslmode: verify-full, or disable for a loopback host."""
    q = parse_qs(query)
    mode = q.get("sslmode", ["disable" if is_loopback(host) else "verify-full"])[0]
    if mode not in SSLMODES:
        raise ValueError(f"unsupported sslmode {mode!r} (one of {', '.join(SSLMODES)})")
    return TlsSettings(mode, q.get("sslrootcert", [None])[0])


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context of a TLS attempt: unverified for allow/prefer and require without a CA;
    the chain checked for verify-ca (and require with sslrootcert, as libpq does), the chain
    and host name for verify-full."""
    verify = tls.mode in ("verify-ca", "verify-full") or (tls.mode == "require" and tls.rootcert)
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return ctx
    cafile = None if tls.rootcert in (None, "system") else tls.rootcert
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = tls.mode == "verify-full"
    return ctx


def _attempts(tls: TlsSettings) -> list:
    """pg8000 `ssl_context` values to try in turn. None is pg8000's own negotiation: TLS when
    the server accepts it, else plaintext, which is libpq's prefer."""
    if tls.mode == "disable":
        return [False]
    if tls.mode == "allow":
        return [False, ssl_context(tls)]
    if tls.mode == "prefer":
        return [None]
    return [ssl_context(tls)]


def connect_dsn(dsn: str, no_delay: bool = True, timeout: float = 10.0,
                read_timeout: float | None = None):
    """Open a pg8000 DB-API connection from `postgresql://user[:pw]@host:port/db[?sslmode=]`.

    TLS follows libpq's sslmode (see `tls_settings`): a non-loopback host gets verify-full unless
    the DSN says otherwise; `sslrootcert=` names the CA file (default: the system CA store).
    """
    u = urlparse(dsn)
    if u.scheme not in ("postgres", "postgresql"):
        raise ValueError("ESS_DB_DSN must start with postgresql://")
    host = u.hostname or "127.0.0.1"
    attempts = _attempts(tls_settings(host, u.query))
    for i, context in enumerate(attempts):
        try:
            conn = pg.connect(
                user=unquote(u.username or "postgres"), password=unquote(u.password or "") or None,
                host=host, port=u.port or 5432,
                database=(u.path or "/postgres")[1:] or "postgres", timeout=timeout,
                application_name="ess", ssl_context=context)
            break
        except (pg.InterfaceError, pg.DatabaseError, OSError) as exc:
            if i + 1 < len(attempts):
                continue        # allow: plaintext failed, try TLS
            if isinstance(exc, pg.DatabaseError):
                raise
            # pg8000 words a refused socket at length; the socket's own reason is clearer
            why = exc.__cause__.strerror if isinstance(exc.__cause__, OSError) else None
            raise DatabaseUnavailable(f"database unavailable: cannot connect to {host}:"
                                      f"{u.port or 5432}: {why or exc}") from exc
    pg.tune(conn, no_delay, read_timeout)
    return conn


_connector = None


def connect_cloudsql(instance: str, db: str, user: str, read_timeout: float | None = None):
    """Connect through the Cloud SQL Python connector with IAM database authentication."""
    global _connector
    from google.cloud.sql.connector import Connector, IPTypes

    if _connector is None:
        _connector = Connector(ip_type=IPTypes.PRIVATE, refresh_strategy="lazy")
    conn = _connector.connect(instance, "pg8000", user=user, db=db, enable_iam_auth=True)
    pg.tune(conn, read_timeout=read_timeout)
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
