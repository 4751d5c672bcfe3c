"""TLS to the database with libpq's sslmode meanings, against a real TLS-enabled PostgreSQL."""

from __future__ import annotations

import os
import pwd
import ssl
import subprocess
from pathlib import Path

import pytest
from ess.db.connect import (
    DatabaseUnavailable,
    TlsSettings,
    connect_dsn,
    ssl_context,
    tls_settings,
)
from ess_local.postgres import ADMIN_USER, Cluster
from ess_local.procs import free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(d: Path) -> None:
    """A throwaway CA and a server certificate for DNS:localhost (no IP address in it)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=ess-test-ca", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
             "other-ca.crt", "-days", "2", "-subj", "/CN=another-ca", cwd=d)
    os.chmod(d / "server.key", 0o600)
    if os.geteuid() == 0:       # the server runs as the postgres user and reads its key
        pw = pwd.getpwnam(ADMIN_USER)
        for name in ("server.key", "server.crt"):
            os.chown(d / name, pw.pw_uid, pw.pw_gid)


@pytest.fixture(scope="module")
def tls_cluster(stack_dir: Path):
    """A PostgreSQL cluster with ssl=on and a certificate for localhost; yields (cluster, CA)."""
    certs = stack_dir / "tls-certs"
    certs.mkdir()
    os.chmod(certs, 0o755)
    _make_certs(certs)
    settings = {"ssl": "on", "ssl_cert_file": f"'{certs / 'server.crt'}'",
                "ssl_key_file": f"'{certs / 'server.key'}'"}
    cluster = Cluster(stack_dir / "pg-tls", free_port(), durable=False, settings=settings)
    cluster.start()
    yield cluster, certs
    cluster.stop()


def _uses_tls(conn) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    (value,) = cur.fetchone()
    conn.close()
    return value


def _dsn(cluster: Cluster, host: str, query: str) -> str:
    return f"postgresql://{ADMIN_USER}@{host}:{cluster.port}/postgres?{query}"


def test_verify_full_with_the_right_ca_and_host_name_connects(tls_cluster):
    cluster, certs = tls_cluster
    dsn = _dsn(cluster, "localhost", f"sslmode=verify-full&sslrootcert={certs / 'ca.crt'}")
    assert _uses_tls(connect_dsn(dsn))


def test_verify_full_refuses_a_wrong_host_name_and_a_wrong_ca(tls_cluster):
    cluster, certs = tls_cluster
    with pytest.raises(DatabaseUnavailable, match="(?i)certificate|hostname|match"):
        connect_dsn(_dsn(cluster, "127.0.0.1",
                         f"sslmode=verify-full&sslrootcert={certs / 'ca.crt'}"))
    with pytest.raises(DatabaseUnavailable, match="(?i)certificate"):
        connect_dsn(_dsn(cluster, "localhost",
                         f"sslmode=verify-full&sslrootcert={certs / 'other-ca.crt'}"))


def test_verify_ca_checks_the_chain_but_not_the_name(tls_cluster):
    cluster, certs = tls_cluster
    assert _uses_tls(connect_dsn(_dsn(cluster, "127.0.0.1",
                                      f"sslmode=verify-ca&sslrootcert={certs / 'ca.crt'}")))
    with pytest.raises(DatabaseUnavailable):
        connect_dsn(_dsn(cluster, "127.0.0.1",
                         f"sslmode=require&sslrootcert={certs / 'other-ca.crt'}"))


def test_require_and_prefer_encrypt_on_a_tls_server(tls_cluster):
    cluster, _ = tls_cluster
    assert _uses_tls(connect_dsn(_dsn(cluster, "127.0.0.1", "sslmode=require")))
    assert _uses_tls(connect_dsn(_dsn(cluster, "127.0.0.1", "sslmode=prefer")))
    assert not _uses_tls(connect_dsn(_dsn(cluster, "127.0.0.1", "sslmode=disable")))


def test_prefer_and_allow_fall_back_to_plaintext_on_a_server_without_tls(pg_cluster):
    assert not _uses_tls(connect_dsn(_dsn(pg_cluster, "127.0.0.1", "sslmode=prefer")))
    assert not _uses_tls(connect_dsn(_dsn(pg_cluster, "127.0.0.1", "sslmode=allow")))
    with pytest.raises(DatabaseUnavailable, match="refuses SSL"):
        connect_dsn(_dsn(pg_cluster, "127.0.0.1", "sslmode=require"))


@pytest.mark.parametrize("host, mode", [
    ("db.example.com", "verify-full"), ("ess-main.example.aivencloud.com", "verify-full"),
    ("127.0.0.1", "disable"), ("127.5.0.1", "disable"), ("localhost", "disable"),
    ("/var/run/postgresql", "disable"),
])
def test_the_default_is_verify_full_except_on_this_machine(host, mode):
    assert tls_settings(host, "") == TlsSettings(mode)
    assert tls_settings(host, "sslmode=require&sslrootcert=system") == TlsSettings("require",
                                                                                   "system")


def test_contexts_follow_libpq():
    full = ssl_context(TlsSettings("verify-full", "system"))
    assert full.check_hostname and full.verify_mode == ssl.CERT_REQUIRED
    chain = ssl_context(TlsSettings("verify-ca"))
    assert not chain.check_hostname and chain.verify_mode == ssl.CERT_REQUIRED
    bare = ssl_context(TlsSettings("require"))
    assert bare.verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError, match="unsupported sslmode"):
        tls_settings("db.example.com", "sslmode=verify")
