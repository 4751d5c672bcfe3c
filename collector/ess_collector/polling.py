"""Per-device polling settings from sites.yaml: framing, pacing, read size, shared connections.

A device's setting comes from the device (`sites[].devices[]`), else from the gateway entry for
its host and port (`collector.gateways[]`), else from the schema default (`$defs` of
schemas/sites.schema.json, the one place the defaults live). Checked here, beyond the schema:
pauses below `interval`; a read size the map's widest value fits in; an RTU unit id a device
can answer (1-247); a gateway entry that names no device; and, for devices sharing a
connection, one framing, pacing and sharing choice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from ess import paths
from ess.plan import read_plan
from ess.sites import SitesConfig

FIELDS = ("shared_connection", "framing", "pause_between_requests", "pause_after_connect",
          "max_registers_per_read")
CONNECTION_FIELDS = ("shared_connection", "framing", "pause_between_requests",
                     "pause_after_connect")


@dataclass(frozen=True)
class DevicePolling:
    """How one device is polled."""

    shared_connection: bool
    framing: str
    pause_between_requests: float
    pause_after_connect: float
    max_registers_per_read: int


@lru_cache(maxsize=1)
def polling_defaults() -> dict:
    """Each polling field's schema default."""
    defs = json.loads(paths.SITES_SCHEMA.read_text())["$defs"]
    return {f: defs[f]["default"] for f in FIELDS}


def _gateways(raw: list, endpoints: set, problems: list[str]) -> dict[tuple, dict]:
    out = {}
    for i, g in enumerate(raw):
        key = (g["host"], g["port"])
        where = f"collector.gateways[{i}]"
        if key in out:
            problems.append(f"{where}: {g['host']}:{g['port']} is listed twice")
        elif key not in endpoints:
            problems.append(f"{where}: no device at {g['host']}:{g['port']}")
        out[key] = {k: v for k, v in g.items() if k in FIELDS}
    return out


def _device_problems(where: str, p: DevicePolling, device, interval: float) -> list[str]:
    problems = [f"{where}.{f}: must be below collector.interval ({interval}), got "
                f"{getattr(p, f)}" for f in ("pause_between_requests", "pause_after_connect")
                if getattr(p, f) >= interval]
    if p.framing == "rtu" and not 1 <= device.unit_id <= 247:
        problems.append(f"{where}.unit_id: must be 1 to 247 with framing rtu, got "
                        f"{device.unit_id} (0 is the broadcast address, which no device "
                        "answers; 248 to 255 are reserved)")
    try:
        read_plan(device.map, p.max_registers_per_read)
    except ValueError as exc:
        problems.append(f"{where}.max_registers_per_read: {exc}")
    return problems


def device_polling(cfg: SitesConfig, gateways: list, interval: float,
                   problems: list[str]) -> dict[str, DevicePolling]:
    """Polling settings by device name; problems are appended to `problems`."""
    docs = [(f"sites[{i}].devices[{j}]", d) for i, s in enumerate(cfg.raw["sites"])
            for j, d in enumerate(s["devices"])]
    gw = _gateways(gateways, {(d["host"], d["port"]) for _, d in docs}, problems)
    defaults = polling_defaults()
    out: dict[str, DevicePolling] = {}
    first: dict[tuple, tuple[str, DevicePolling]] = {}
    for device, (where, doc) in zip(cfg.devices(), docs, strict=True):
        key = (device.host, device.port)
        p = DevicePolling(**{f: doc.get(f, gw.get(key, {}).get(f, defaults[f]))
                             for f in FIELDS})
        problems += _device_problems(where, p, device, interval)
        seen = first.setdefault(key, (where, p))
        if seen[1].shared_connection or p.shared_connection:
            problems += [f"{where}.{f}: {getattr(p, f)!r} differs from {seen[0]} "
                         f"({getattr(seen[1], f)!r}) on the connection they share"
                         for f in CONNECTION_FIELDS if getattr(p, f) != getattr(seen[1], f)]
        out[device.name] = p
    return out
