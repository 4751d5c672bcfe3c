"""Fault injection for the simulator, from a YAML or JSON file.

    faults:
      - kind: slow          # replies delayed by `delay` seconds
        bank: 2             # omitted: every bank
        delay: 0.3
      - kind: timeout       # no reply in time (held for `delay`, default 30 s)
        bank: 3
        block: PCS          # omitted: every block
      - kind: exception     # Modbus exception reply (code 4 = device failure by default)
        bank: 1
        block: PCS
        code: 4
      - kind: drop          # the connection is closed instead of answering
      - kind: wild          # `count` random registers of the block get random values
        count: 3
      - kind: frozen        # the bank keeps serving the values of the window's first second
        start: 10           # window, in seconds since the simulator started (default: always)
        end: 40
        probability: 0.5    # share of seconds (or requests, for drop) affected; default 1
        every: 5            # only every 5th second of the window (its first, sixth, ...)
      - kind: set           # a column served with a value (the value stored, after scale and
        column: rack_rack_over_temperature_fault    # inversion): raises an alarm in the
        rack: 2             # window and clears it after; rack omitted: every rack
        value: 1
        start: 30
        end: 60
      - kind: set           # push a value over a threshold (docs/events.md)
        column: rack_max_cell_temperature
        value: 52.5
      - kind: set           # one bit of an integer column (a SunSpec bitfield): set (value 1)
        column: sunspec_evt1                        # or cleared (value 0)
        bit: 1
        value: 1

Faults are deterministic given the seed and the second, except which request of a second a
`drop` hits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from ess.regmap import RegisterMap

from . import overrides
from .model import _mix, _unit

KINDS = ("slow", "timeout", "exception", "drop", "wild", "frozen", "set")


class FaultError(ValueError):
    """The faults file is invalid."""


@dataclass(frozen=True)
class Fault:
    """One injected fault."""

    kind: str
    bank: int | None = None
    block: str | None = None
    delay: float = 0.0
    code: int = 4
    count: int = 3
    start: float | None = None
    end: float | None = None
    probability: float = 1.0
    every: int | None = None
    column: str | None = None       # set: the column, its rack (None: every rack), the value
    rack: int | None = None
    value: float | None = None
    bit: int | None = None

    def active(self, bank: int, block: str | None, t: int, t0: float, seed: int, salt: int) -> bool:
        """True when this fault hits `bank` (and `block`) during second `t`."""
        if self.bank is not None and self.bank != bank:
            return False
        if self.block is not None and block is not None and self.block != block:
            return False
        rel = t - t0
        if self.start is not None and rel < self.start:
            return False
        if self.end is not None and rel >= self.end:
            return False
        if self.every and int(rel - (self.start or 0)) % self.every:
            return False
        return self.probability >= 1 or _unit(seed, bank, t, salt) < self.probability


def _fault(i: int, doc: object) -> Fault:
    where = f"faults[{i}]"
    if not isinstance(doc, dict):
        raise FaultError(f"{where}: expected a mapping")
    known = set(Fault.__dataclass_fields__)
    extra = sorted(set(doc) - known)
    if extra:
        raise FaultError(f"{where}: unknown field(s) {', '.join(extra)}")
    if doc.get("kind") not in KINDS:
        raise FaultError(f"{where}.kind: must be one of {', '.join(KINDS)}")
    try:
        fault = Fault(**doc)
    except TypeError as exc:
        raise FaultError(f"{where}: {exc}") from exc
    if fault.kind == "timeout" and not fault.delay:
        fault = Fault(**{**doc, "delay": 30.0})
    if not 0 <= fault.probability <= 1:
        raise FaultError(f"{where}.probability: must be within 0..1")
    if fault.kind == "set":
        for key in ("column", "value"):
            if getattr(fault, key) is None:
                raise FaultError(f"{where}.{key}: missing (kind set names a column and a value)")
    return fault


class FaultPlan:
    """The faults of one simulator run; `t0` is the run's start (Unix seconds)."""

    def __init__(self, faults: list[Fault] = (), seed: int = 0, t0: float = 0.0):
        self.faults, self.seed, self.t0 = list(faults), seed, t0
        self._targets: dict[int, list] = {}     # set fault -> its (block, field) pairs

    def check(self, regmap: RegisterMap) -> None:
        """Resolve the `set` faults' columns in the map served; FaultError names a bad one."""
        self._targets = {}
        for i, f in enumerate(self.faults):
            if f.kind != "set":
                continue
            try:
                self._targets[i] = overrides.targets(regmap, f.column, f.rack, f.bit)
            except ValueError as exc:
                raise FaultError(f"faults[{i}]: {exc}") from exc
        self._map = regmap

    def first(self, kind: str, bank: int, block: str | None, t: int) -> Fault | None:
        """The first fault of `kind` active for this bank/block/second."""
        for i, f in enumerate(self.faults):
            if f.kind == kind and f.active(bank, block, t, self.t0, self.seed, i):
                return f
        return None

    def frozen_at(self, bank: int, t: int) -> int:
        """The second whose values bank serves at `t` (itself unless a frozen fault holds it)."""
        f = self.first("frozen", bank, None, t)
        if f is None:
            return t
        return int(self.t0 + f.start) if f.start is not None else int(self.t0)

    def apply_values(self, bank: int, t: int, raw: dict[str, np.ndarray],
                     blocks) -> dict[str, np.ndarray]:
        """Apply `wild` faults to a bank's blocks (name -> registers, or one 0/1 per bit) for
        second `t`; changed blocks are copies."""
        out = raw
        for i, f in enumerate(self.faults):
            if f.kind == "set" and f.active(bank, None, t, self.t0, self.seed, i):
                out = self._set(i, f, raw, out)
            if f.kind != "wild":
                continue
            for b in blocks:
                if not f.active(bank, b.name, t, self.t0, self.seed, i):
                    continue
                if out is raw:
                    out = dict(raw)
                if out[b.name] is raw[b.name]:
                    out[b.name] = raw[b.name].copy()
                for k in range(f.count):
                    h = _mix(self.seed, bank, t, i, k)
                    out[b.name][h % b.count] = (h >> 20) & (1 if b.is_bits else 0xFFFF)
        return out


    def _set(self, i: int, f: Fault, raw: dict, out: dict) -> dict:
        """Apply set fault i (resolved by `check`) to copies of the blocks it writes."""
        if out is raw:
            out = dict(raw)
        for block, field in self._targets[i]:
            if out[block.name] is raw[block.name]:
                out[block.name] = raw[block.name].copy()
            overrides.write(out, block, field, f.value, f.bit, self._map)
        return out


def load_faults(path: str | Path | None, seed: int = 0, t0: float = 0.0) -> FaultPlan:
    """Read a faults file (YAML or JSON); None gives an empty plan."""
    if path is None:
        return FaultPlan([], seed, t0)
    text = Path(path).read_text()
    try:
        doc = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FaultError(f"{path}: cannot parse: {exc}") from exc
    items = doc.get("faults") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise FaultError(f"{path}: expected a list under `faults`")
    return FaultPlan([_fault(i, d) for i, d in enumerate(items)], seed, t0)
