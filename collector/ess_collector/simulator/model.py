"""Deterministic LFP bank model: the registers a bank serves at a given whole second.

Everything is a closed-form function of (seed, bank, t), so tests can recompute what the simulator
served for any second. Power follows two sinusoids (positive = discharge); SOC is their exact
integral, so it moves with power. Voltages, currents and temperatures follow from SOC and power;
cell min/max/gap/average are consistent after rounding; positions are cell indices (1..240).
Status registers are mostly 0, with rare warning episodes (about one a day per bank). Registers the
map inverts (BMS2 221..229, 233) are served in the device's polarity (OK = 1). Negative values
are two's complement.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from ess.regmap import RegisterMap, load_map

CELLS_PER_RACK = 240
# Warnings come in episodes: per warning register, each WARNING_WINDOW s holds one episode of
# 30..300 s with WARNING_PROBABILITY (about one a day per bank of the default map, so a short
# run rarely sees one; the faults file's `set` raises one on purpose).
WARNING_WINDOW = 21600
WARNING_PROBABILITY = 0.0035
_EPOCH = 1_600_000_000        # counters grow from this instant


def _mix(*parts: int) -> int:
    """A stable 64-bit hash of small ints (splitmix64 over the parts)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
        x = x * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def _unit(*parts: int) -> float:
    """A stable pseudo-random number in [0, 1)."""
    return (_mix(*parts) >> 11) / float(1 << 53)


class BankModel:
    """One simulated bank; `values(t)` gives physical values, `registers(t)` the raw blocks."""

    def __init__(self, bank: int, seed: int = 0, regmap: RegisterMap | None = None):
        self.bank, self.seed = bank, seed
        self.map = regmap or load_map("default")
        self.racks = self.map.racks or 8
        rng = np.random.default_rng([seed & 0xFFFFFFFF, bank])
        self.p1, self.p2 = rng.uniform(400, 600), rng.uniform(60, 150)          # kW
        self.w1 = 2 * math.pi / rng.uniform(3600, 7200)
        self.w2 = 2 * math.pi / rng.uniform(300, 900)
        self.ph1, self.ph2 = rng.uniform(0, 2 * math.pi, 2)
        self.energy = rng.uniform(800, 1200)                                      # kWh
        self.soc0 = rng.uniform(40, 60)
        self.soh = rng.uniform(96, 99)
        self.rack_soc_off = rng.uniform(-0.8, 0.8, self.racks)
        self.rack_soh_off = rng.uniform(-0.5, 0.5, self.racks)
        self.rack_share = 1 + rng.uniform(-0.02, 0.02, self.racks)
        self.rack_share /= self.rack_share.mean()
        self.rack_temp_off = rng.uniform(-1.5, 1.5, self.racks)
        self.spread_ph = rng.uniform(0, 2 * math.pi, self.racks)
        self.amb_ph = rng.uniform(0, 2 * math.pi)
        self.thd = rng.uniform(1.5, 3.0, 3)
        self._layout = _layout(self.map)

    # ---- physics ------------------------------------------------------------------------
    def power(self, t: float) -> float:
        """Bank power in kW at t (positive = discharge)."""
        return (self.p1 * math.sin(self.w1 * t + self.ph1)
                + self.p2 * math.sin(self.w2 * t + self.ph2))

    def soc(self, t: float) -> float:
        """Bank SOC in % at t: the exact integral of -power over the bank's energy."""
        k = 100.0 / (self.energy * 3600.0)
        return self.soc0 + k * (self.p1 / self.w1 * math.cos(self.w1 * t + self.ph1)
                                + self.p2 / self.w2 * math.cos(self.w2 * t + self.ph2))

    def values(self, t: int) -> dict[str, object]:
        """Physical values by column name: a float (bank level) or an array per rack."""
        v, ambient = self._bms_values(t)
        v.update(self._pcs_values(t, v, ambient))
        return v

    def _bms_values(self, t: int) -> tuple[dict[str, object], float]:
        """The BMS blocks' values (bank and racks), and the ambient temperature."""
        r = self.racks
        p, soc = self.power(t), self.soc(t)
        rack_soc = np.clip(soc + self.rack_soc_off, 0, 100)
        ocv = 3.20 + 0.12 * (rack_soc - 50) / 50
        v_bank_est = float(ocv.mean()) * CELLS_PER_RACK
        i_bank = p * 1000.0 / v_bank_est
        i_rack = i_bank / r * self.rack_share
        cell_avg = ocv - i_rack * 0.0008
        spread = 0.018 + 0.008 * np.sin(t / 900 + self.spread_ph)
        vmax = np.round(cell_avg + spread * 0.55, 3)
        vmin = np.round(cell_avg - spread * 0.45, 3)
        vavg = np.round(cell_avg, 3)
        rack_v = cell_avg * CELLS_PER_RACK
        amb = 24 + 4 * math.sin(2 * math.pi * t / 86400 + self.amb_ph)
        heat = 5 * abs(math.sin(self.w1 * t + self.ph1 - 0.3))
        tavg = np.round(amb + heat + self.rack_temp_off, 1)
        tmax = np.round(tavg + 1.5 + 0.5 * np.sin(t / 700 + self.spread_ph), 1)
        tmin = np.round(tavg - 1.2 - 0.4 * np.cos(t / 800 + self.spread_ph), 1)
        pos = [np.array([1 + _mix(self.seed, self.bank, k, rack, t // period) % CELLS_PER_RACK
                         for rack in range(r)]) for k, period in ((1, 600), (2, 600), (3, 900),
                                                                   (4, 900))]
        charging, discharging = p < -5, p > 5
        v: dict[str, object] = {
            "bank_soc": float(rack_soc.mean()), "bank_soh": self.soh,
            "bank_dc_volt": float(rack_v.mean()), "bank_dc_current": i_bank,
            "max_cell_voltage_of_bank": float(vmax.max()),
            "min_cell_voltage_of_bank": float(vmin.min()),
            "max_cell_temperature_of_bank": float(tmax.max()),
            "min_cell_temperature_of_bank": float(tmin.min()), "bank_power": p,
            "rack_soc": rack_soc, "rack_soh": self.soh + self.rack_soh_off,
            "rack_voltage": rack_v, "rack_current": i_rack,
            "rack_max_cell_voltage": vmax, "rack_max_cell_voltage_position": pos[0],
            "rack_min_cell_voltage": vmin, "rack_min_cell_voltage_position": pos[1],
            "rack_cell_voltage_gap": vmax - vmin, "rack_cell_voltage_average": vavg,
            "rack_max_cell_temperature": tmax, "rack_max_cell_temperature_position": pos[2],
            "rack_min_cell_temperature": tmin, "rack_min_cell_temperature_position": pos[3],
            "rack_cell_temperature_gap": tmax - tmin, "rack_cell_temperature_average": tavg,
            # BMS2 status words (device polarity: the map inverts 221..229 and 233, OK = 1)
            "battery_status_for_run": 1, "battery_status_for_charge": 1 if charging else
            (2 if discharging else 0), "battery_status_for_fault": 0,
            "master_rack_communication_fault": 1,
            "rack_discharge_relay_minus_status": np.ones(r), "rack_charge_relay_plus_status":
            np.ones(r), "rack_cell_balance_status": (vmax - vmin > 0.025).astype(float),
            "rack_current_sensor_discharge": np.full(r, float(discharging)),
            "rack_current_sensor_charge": np.full(r, float(charging)),
            "rack_status_for_run": np.ones(r),
        }
        for n in range(1, 9):
            v[f"rack_n{n:03d}_master_rack_communication_fault"] = 1
        return v, amb

    def _pcs_values(self, t: int, bms: dict[str, object], amb: float) -> dict[str, object]:
        """The PCS and ETC values, which follow the bank's (`bms`) and the ambient `amb`."""
        p, i_bank = bms["bank_power"], bms["bank_dc_current"]
        tmax_max, rack_v_mean = bms["max_cell_temperature_of_bank"], bms["bank_dc_volt"]
        s3 = math.sqrt(3)
        i_ac = abs(p) * 1000 / (s3 * 380)
        day = (t + 9 * 3600) % 86400 / 3600.0   # Asia/Seoul hour of day, for the PV inverter
        done_kwh = self.p1 * (2 / math.pi) / 2 / 3600 * (t - _EPOCH)
        v: dict[str, object] = {
            "pcs_ac_l1_thd": self.thd[0], "pcs_ac_l2_thd": self.thd[1], "pcs_ac_l3_thd":
            self.thd[2], "system_temperature_max": tmax_max + 5,
            "dc_voltage_1": rack_v_mean, "dc_voltage_2": rack_v_mean - 0.5,
            "dc_current": i_bank, "dc_power": p,
            "ac_frequency": 60 + 0.02 * math.sin(t / 37), "ac_voltage": 380 + 2 * math.sin(t / 53),
            "ac_current_low": int(i_ac) & 0xFFFF, "ac_current_high": int(i_ac) >> 16,
            "ac_power": p * 0.975, "ac_active_power": p * 0.975,
            "ac_reactive_power": 5 * math.sin(t / 41), "ac_power_factor": 0.99,
            "ac_l1_voltage": 220 + math.sin(t / 31), "ac_l2_voltage": 220 + math.sin(t / 29),
            "ac_l3_voltage": 220 + math.sin(t / 23), "ac_l1_current": i_ac,
            "ac_l2_current": i_ac * 1.01, "ac_l3_current": i_ac * 0.99,
            "pcs_status_0": 1, "pcs_control_0": 1, "set_power": p,
            "set_soc_low_trip_level": 10.0, "set_soc_high_trip_level": 95.0,
            "set_vbat_low_trip_level": 672.0, "set_vbat_high_trip_level": 835.0,
            "sensor1_temperature": amb - 1, "sensor1_humidity": 50 + 8 * math.sin(t / 5000),
            "inv1_active_power": max(0.0, math.sin(math.pi * (day - 6) / 12)) * 250,
            "inv1_cumulative_power_generation": int(12345 + (t - _EPOCH) * 0.02) % 65536,
        }
        for name, kwh in (("discharge", 500_000 + done_kwh), ("charge", 520_000 + done_kwh)):
            v[f"ac_accumulated_{name}_energy_low"] = int(kwh) & 0xFFFF
            v[f"ac_accumulated_{name}_energy_high"] = int(kwh) >> 16
        return v

    def _warning_on(self, addr: int, t: int) -> bool:
        """True while register `addr` is in a warning episode (at most one per window)."""
        w = t // WARNING_WINDOW
        if _unit(self.seed, self.bank, addr, w) >= WARNING_PROBABILITY:
            return False
        h = _mix(self.seed, self.bank, addr, w, 1)
        start = w * WARNING_WINDOW + h % (WARNING_WINDOW - 300)
        return start <= t < start + 30 + (h >> 32) % 271

    def _warnings(self, t: int, raw: np.ndarray) -> None:
        """Occasional warnings: episodes of 30..300 s, rare (see WARNING_WINDOW)."""
        any_bank = False
        for addr, rack in self._layout.warnings:
            if self._warning_on(addr, t):
                raw[addr] = 1
                if rack is None:
                    any_bank = True
                elif self._layout.rack_warning_flag.get(rack) is not None:
                    raw[self._layout.rack_warning_flag[rack]] = 1
        if any_bank and self._layout.bank_warning_flag is not None:
            raw[self._layout.bank_warning_flag] = 1

    def raw(self, t: int) -> np.ndarray:
        """Registers of every address 0..end as uint16 (unused addresses are 0)."""
        lay = self._layout
        vals = self.values(t)
        phys = np.zeros(len(lay.addr), dtype=np.float64)
        for col, (idx, racks) in lay.sources.items():
            if col not in vals:
                continue
            x = vals[col]
            phys[idx] = np.asarray(x, dtype=np.float64)[racks] if racks is not None else x
        scaled = np.rint(phys / lay.scale)
        scaled = np.where(lay.signed, np.clip(scaled, -32768, 32767), np.clip(scaled, 0, 65535))
        out = np.zeros(lay.size, dtype=np.uint16)
        out[lay.addr] = scaled.astype(np.int64).astype(np.uint16)
        self._warnings(t, out)
        return out

    def registers(self, t: int) -> dict[str, list[int]]:
        """The blocks this bank serves during whole second `t`, as lists of ints."""
        raw = self.raw(t)
        return {b.name: raw[b.start:b.end].tolist() for b in self.map.blocks}


class _Layout:
    """Per map: where each column's value goes, its scale and signedness."""

    def __init__(self, regmap: RegisterMap):
        fields = [f for f in regmap.fields() if f.type in ("int16", "uint16")]
        self.size = max(b.end for b in regmap.blocks)
        self.addr = np.array([f.address for f in fields], dtype=np.intp)
        self.scale = np.array([f.scale for f in fields], dtype=np.float64)
        self.signed = np.array([f.type == "int16" for f in fields], dtype=bool)
        groups: dict[str, list[tuple[int, int | None]]] = {}
        for i, f in enumerate(fields):
            groups.setdefault(f.column, []).append((i, f.rack))
        self.sources: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for col, items in groups.items():
            idx = np.array([i for i, _ in items], dtype=np.intp)
            racks = [r for _, r in items]
            rack_idx = None if racks[0] is None else np.array([r - 1 for r in racks], np.intp)
            self.sources[col] = (idx, rack_idx)
        self.warnings = [(f.address, f.rack) for f in fields if f.column.endswith("_warning")
                         and f.table in ("bank", "rack") and "status" not in f.column]
        self.rack_warning_flag = {f.rack: f.address for f in fields
                                  if f.column == "rack_status_for_warning"}
        self.bank_warning_flag = next((f.address for f in fields
                                       if f.column == "battery_status_for_warning"), None)


@lru_cache(maxsize=8)
def _layout(regmap: RegisterMap) -> _Layout:
    return _Layout(regmap)


@lru_cache(maxsize=4096)
def _model(bank: int, seed: int) -> BankModel:
    return BankModel(bank, seed)


def registers_at(bank: int, t: int, seed: int = 0) -> dict[str, list[int]]:
    """What bank `bank` of a fault-free simulator with `seed` serves during second `t`."""
    return _model(bank, seed).registers(int(t))
