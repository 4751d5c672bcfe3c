"""Site configuration (sites.yaml): which banks exist, their maps and time zones."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from . import paths
from .errors import PermanentError
from .regmap import MapError, RegisterMap, load_map
from .regmap.load import yaml_problem

DEFAULT_TIMEZONE = "Asia/Seoul"


class ConfigError(PermanentError):
    """The sites configuration is invalid; `problems` names each bad field."""

    reason = "bad_config"

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: invalid configuration\n" + "\n".join(f"  - {p}"
                                                                           for p in problems))


@dataclass(frozen=True)
class Device:
    """One bank's Modbus TCP server."""

    site_id: str
    host: str
    port: int
    unit_id: int
    bank_id: int
    map: RegisterMap = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.site_id}/bank{self.bank_id}"


@dataclass(frozen=True)
class Site:
    """A site: its id, time zone and devices."""

    site_id: str
    timezone: str
    devices: tuple[Device, ...]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class SitesConfig:
    """The whole configuration; `raw` keeps the document for component-specific sections."""

    sites: tuple[Site, ...]
    raw: dict
    source: str = "<memory>"

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.site_id == site_id:
                return s
        raise KeyError(site_id)

    def devices(self) -> list[Device]:
        return [d for s in self.sites for d in s.devices]

    def maps(self) -> dict[tuple[str, int], RegisterMap]:
        """Every map in use, by (map_id, version) (built once; do not modify)."""
        return self._maps

    @cached_property
    def _maps(self) -> dict[tuple[str, int], RegisterMap]:
        return {d.map.key: d.map for d in self.devices()}

    @cached_property
    def site_ids(self) -> frozenset[str]:
        """Every configured site id."""
        return frozenset(s.site_id for s in self.sites)


def _path(err: jsonschema.ValidationError) -> str:
    out = ""
    for p in err.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "top level"


@lru_cache(maxsize=64)
def _anchored(pattern: str) -> re.Pattern:
    """A schema pattern as ECMA-262 reads it: a final `$` is the end of the text (Python's `$`
    also matches before a trailing newline, which would let 'site-a\\n' through)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _anchored(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator():
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
    return strict(json.loads(paths.SITES_SCHEMA.read_text()))


def parse_sites(doc: object, source: str = "<memory>", base_dir: Path | None = None) -> SitesConfig:
    """Validate a configuration document; raise ConfigError naming every bad field."""
    problems = []
    for err in sorted(_validator().iter_errors(doc), key=lambda e: _path(e)):
        if err.validator == "required":
            problems.append(f"{_path(err)}: missing field {err.message.split(chr(39))[1]}")
        elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
            where = _path(err)
            prefix = "" if where == "top level" else f"{where}."
            problems += [f"{prefix}{k}: unknown field" for k in
                         sorted(set(err.instance) - set(err.schema.get("properties", {})))]
        else:
            problems.append(f"{_path(err)}: {err.message}")
    if problems:
        raise ConfigError(source, problems)
    sites, seen_sites, seen_endpoints = [], set(), {}
    for i, s in enumerate(doc["sites"]):  # type: ignore[index]
        where = f"sites[{i}]"
        if s["site_id"] in seen_sites:
            problems.append(f"{where}.site_id: duplicate site {s['site_id']!r}")
        seen_sites.add(s["site_id"])
        tz = s.get("timezone", DEFAULT_TIMEZONE)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{where}.timezone: unknown time zone {tz!r}")
        devices, banks = [], set()
        for j, d in enumerate(s["devices"]):
            dwhere = f"{where}.devices[{j}]"
            if d["bank_id"] in banks:
                problems.append(f"{dwhere}.bank_id: duplicate bank {d['bank_id']} in site "
                                f"{s['site_id']!r}")
            banks.add(d["bank_id"])
            endpoint = (d["host"], d["port"], d.get("unit_id", 1))
            if endpoint in seen_endpoints:
                problems.append(f"{dwhere}: same host, port and unit_id as "
                                f"{seen_endpoints[endpoint]}")
            seen_endpoints[endpoint] = dwhere
            ref = d.get("map", "default")
            if base_dir and ("/" in ref or ref.endswith((".yaml", ".yml", ".json"))):
                ref = str((base_dir / ref).resolve())
            try:
                regmap = load_map(ref)
            except MapError as exc:
                problems.append(f"{dwhere}.map: {exc}")
                continue
            devices.append(Device(s["site_id"], d["host"], d["port"], d.get("unit_id", 1),
                                  d["bank_id"], regmap))
        sites.append(Site(s["site_id"], tz, tuple(devices)))
    if problems:
        raise ConfigError(source, problems)
    return SitesConfig(tuple(sites), doc, source)  # type: ignore[arg-type]


def load_sites(path: str | Path) -> SitesConfig:
    """Load sites.yaml from a local path, or from gs://bucket/object."""
    text_source = str(path)
    if text_source.startswith("gs://"):
        from google.cloud import storage

        bucket, _, name = text_source[5:].partition("/")
        text = storage.Client().bucket(bucket).blob(name).download_as_text()
        base = None
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(text_source, [f"cannot read: {exc.strerror or exc}"]) from exc
        base = Path(path).resolve().parent
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(text_source, [yaml_problem(exc)]) from exc
    return parse_sites(doc, text_source, base)
