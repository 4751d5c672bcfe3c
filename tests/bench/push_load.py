"""A light Pub/Sub-push load generator for `make bench`.

Pub/Sub's push servers are not on the function's machine; here the load shares 2 cores with
the function and PostgreSQL. So the requests are encoded before the clock starts and sent over
keep-alive HTTP/1.1 connections from one asyncio loop: about 0.2 ms of CPU per request, where
`requests` in threads spends about 1.5 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit


class PushFailed(RuntimeError):
    """The function answered a push with a non-2xx status, or the connection broke."""


def encode_requests(url: str, bodies: list[dict]) -> tuple[str, int, list[bytes]]:
    """(host, port, one complete HTTP/1.1 POST per body)."""
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\n").encode()
    out = []
    for body in bodies:
        data = json.dumps(body).encode()
        out.append(head + b"Content-Length: %d\r\n\r\n" % len(data) + data)
    return parts.hostname or "127.0.0.1", parts.port or 80, out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length) if length else b""
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def _post(host: str, port: int, requests: list[bytes], clients: int) -> float:
    queue = list(reversed(requests))
    errors: list[str] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue and not errors:
                writer.write(queue.pop())
                status, body = await _read_response(reader)
                if not 200 <= status < 300:
                    errors.append(f"{status}: {body[:200]!r}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(repr(exc))
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    if errors:
        raise PushFailed(f"push returned {errors[0]}")
    return elapsed


def post_all(url: str, bodies: list[dict], clients: int) -> float:
    """POST every body, `clients` at a time; return the seconds taken; raise on any non-2xx."""
    host, port, requests = encode_requests(url, bodies)
    return asyncio.run(_post(host, port, requests, clients))
