"""Decoder: parametrised golden cases per block, and property tests for sign and scale."""

import math
from pathlib import Path

import numpy as np
import pytest
from ess.decode import DecodeError, Decoder, decoder_for
from ess.regmap import load_map, load_map_file, parse_map
from hypothesis import given
from hypothesis import strategies as st

MAP = load_map("default")
EXTENDED = Path(__file__).parents[1] / "golden" / "maps" / "extended.yaml"
DEC = decoder_for(MAP)


def zero_frame():
    return {b.name: [0] * b.count for b in MAP.blocks}


def decode_one(block: str, address: int, raw: int, rack_rows=False):
    """Decode a frame that is all zeros except one register; return the rows."""
    frame = zero_frame()
    frame[block][address - MAP.block(block).start] = raw
    return DEC.decode(frame, bank_id=7)


def cell(rows, table, column, rack=None):
    for r in rows:
        if r["table"] == table and r.get("rack_id") == rack:
            return r[column], column in r["out_of_range"]
    raise AssertionError(f"no {table} row for rack {rack}")


# (block, address, raw, table, column, rack, expected value, expected out-of-range flag)
CASES = [
    # BMS1 int16 with scale 0.1, range 0..100 (bank_soc)
    ("BMS1", 0, 0, "bank", "bank_soc", None, 0.0, False),
    ("BMS1", 0, 1000, "bank", "bank_soc", None, 100.0, False),        # just inside
    ("BMS1", 0, 1001, "bank", "bank_soc", None, 100.1, True),         # just outside
    ("BMS1", 0, 32767, "bank", "bank_soc", None, 3276.7, True),
    ("BMS1", 0, 32768, "bank", "bank_soc", None, -3276.8, True),      # two's complement
    ("BMS1", 0, 65535, "bank", "bank_soc", None, -0.1, True),         # 2021 design: 65535 kept
    ("BMS1", 3, 35536, "bank", "bank_dc_current", None, -3000.0, False),  # -30000 * 0.1, edge
    ("BMS1", 3, 35535, "bank", "bank_dc_current", None, -3000.1, True),
    ("BMS1", 4, 5000, "bank", "max_cell_voltage_of_bank", None, 5.0, False),
    ("BMS1", 4, 5001, "bank", "max_cell_voltage_of_bank", None, 5.001, True),
    ("BMS1", 6, 65136, "bank", "max_cell_temperature_of_bank", None, -40.0, False),  # -400
    ("BMS1", 6, 65135, "bank", "max_cell_temperature_of_bank", None, -40.1, True),
    # rack slices: rack r starts at 9 + 16 (r - 1)
    ("BMS1", 9, 555, "rack", "rack_soc", 1, 55.5, False),
    ("BMS1", 9 + 16 * 7, 444, "rack", "rack_soc", 8, 44.4, False),
    ("BMS1", 14, 400, "rack", "rack_max_cell_voltage_position", 1, 400, False),
    ("BMS1", 14, 401, "rack", "rack_max_cell_voltage_position", 1, 401, True),
    ("BMS1", 135, 1401, "rack", "rack_cell_temperature_gap", 8, 140.1, True),
    ("BMS1", 136, 1001, "rack", "rack_cell_temperature_average", 8, 100.1, True),
    # BMS2: status integers, not scaled, range 0..3
    ("BMS2", 200, 3, "bank", "rack_temperature_imbalance_warning", None, 3, False),
    ("BMS2", 200, 4, "bank", "rack_temperature_imbalance_warning", None, 4, True),
    ("BMS2", 200, 65535, "bank", "rack_temperature_imbalance_warning", None, -1, True),
    ("BMS2", 234 + 29 * 2, 1, "rack", "rack_discharge_relay_minus_status", 3, 1, False),
    ("BMS2", 465, 2, "rack", "rack_tray_rack_communication_fault", 8, 2, False),
    # inverted registers: 221..229 and 233 swap 0 and 1, other values pass
    ("BMS2", 221, 1, "bank", "rack_n001_master_rack_communication_fault", None, 0, False),
    ("BMS2", 229, 1, "bank", "battery_status_for_run", None, 0, False),
    ("BMS2", 233, 1, "bank", "master_rack_communication_fault", None, 0, False),
    ("BMS2", 233, 2, "bank", "master_rack_communication_fault", None, 2, False),
    ("BMS2", 233, 7, "bank", "master_rack_communication_fault", None, 7, True),
    ("BMS2", 220, 1, "bank", "rack_tray_rack_communication_fault", None, 1, False),  # not inverted
    ("BMS2", 230, 1, "bank", "battery_status_for_charge", None, 1, False),
    # PCS: scaled, no ranges; energy counter halves are uint16
    ("PCS", 500, 65535, "pcs", "pcs_ac_l1_thd", None, -0.1, False),
    ("PCS", 508, 6000, "pcs", "ac_frequency", None, 60.0, False),
    ("PCS", 515, 64536, "pcs", "ac_power_factor", None, -1.0, False),
    ("PCS", 522, 65535, "pcs", "ac_accumulated_discharge_energy_low", None, 65535, False),
    ("PCS", 525, 32768, "pcs", "ac_accumulated_charge_energy_high", None, 32768, False),
    ("PCS", 528, 1, "pcs", "pcs_status_2", None, 1, False),
    # ETC: 603 is dropped; 604 is uint16
    ("ETC", 600, 800, "etc", "sensor1_temperature", None, 80.0, False),
    ("ETC", 600, 801, "etc", "sensor1_temperature", None, 80.1, True),
    ("ETC", 602, 65535, "etc", "inv1_active_power", None, -0.1, True),
    ("ETC", 604, 65535, "etc", "inv1_cumulative_power_generation", None, 65535, False),
]


@pytest.mark.parametrize("block,address,raw,table,column,rack,value,flag", CASES)
def test_golden_register(block, address, raw, table, column, rack, value, flag):
    got, got_flag = cell(decode_one(block, address, raw), table, column, rack)
    assert got == value and type(got) is type(value)
    assert got_flag is flag


def test_zero_frame_layout():
    rows = DEC.decode(zero_frame(), bank_id=3)
    assert [(r["table"], r.get("rack_id")) for r in rows] == (
        [("bank", None)] + [("rack", r) for r in range(1, 9)] + [("pcs", None), ("etc", None)])
    assert all(r["bank_id"] == 3 for r in rows)
    assert len(rows[0]) == 2 + 43 + 1 and len(rows[1]) == 3 + 45 + 1
    assert len(rows[9]) == 2 + 89 + 1 and len(rows[10]) == 2 + 4 + 1
    # raw 0 at an inverted register decodes as 1 ("fault" in the stored polarity)
    assert rows[0]["master_rack_communication_fault"] == 1
    assert rows[0]["out_of_range"] == []


def test_unused_register_is_dropped():
    rows = decode_one("ETC", 603, 12345)
    assert list(rows[-1]) == ["table", "bank_id", "sensor1_temperature", "sensor1_humidity",
                              "inv1_active_power", "inv1_cumulative_power_generation",
                              "out_of_range"]
    assert 12345 not in rows[-1].values()


def test_out_of_range_names_are_sorted():
    frame = zero_frame()
    frame["BMS1"][1] = 2000
    frame["BMS1"][0] = 2000
    assert DEC.decode(frame)[0]["out_of_range"] == ["bank_soc", "bank_soh"]


@pytest.mark.parametrize("mutate,message", [
    (lambda f: f.pop("PCS"), "missing block PCS"),
    (lambda f: f["BMS2"].pop(), "block BMS2: expected 266 registers, got 265"),
    (lambda f: f["ETC"].__setitem__(1, 65536), "block ETC: register 1 (address 601) is 65536"),
    (lambda f: f["ETC"].__setitem__(0, -1), "register 0 (address 600) is -1"),
    (lambda f: f["ETC"].__setitem__(0, "7"), "register 0 (address 600) is '7'"),
    (lambda f: f.__setitem__("XYZ", []), "unknown block(s) XYZ"),
])
def test_malformed_frames_raise(mutate, message):
    frame = zero_frame()
    mutate(frame)
    with pytest.raises(DecodeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DEC.decode(frame)


def test_failed_block_gives_nulls_and_keeps_others():
    frame = zero_frame()
    frame["PCS"] = None
    frame["BMS1"][0] = 500
    rows = DEC.decode(frame)
    assert [r["table"] for r in rows] == ["bank"] + ["rack"] * 8 + ["etc"]
    assert rows[0]["bank_soc"] == 50.0


def test_batch_equals_single_frames():
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 65536, size=(20, DEC.width), dtype=np.uint16)
    tables = DEC.decode_batch(raw)
    bank = tables[0].rows()
    for i in (0, 7, 19):
        blocks = {name: raw[i, DEC.block_offset[name]:DEC.block_offset[name] + size].tolist()
                  for name, size in zip(DEC.block_names, DEC.block_sizes)}
        single = DEC.decode(blocks)[0]
        assert single == {"table": "bank", "bank_id": 1, **{k: v for k, v in bank[i].items()
                                                             if k != "table"}}


def spec_reference(raw: int, signed: bool, scale: float) -> float:
    """What the spec says: two's complement for int16, times scale, rounded to 3 decimals."""
    v = raw - 65536 if signed and raw >= 32768 else raw
    return round(v * scale, 3)


@given(raw=st.integers(0, 65535), scale=st.sampled_from([1, 0.1, 0.01, 0.001, 0.5, 2, 10]),
       signed=st.booleans())
def test_sign_and_scale_property(raw, scale, signed):
    m = parse_map({"map_id": "p", "version": 1, "blocks": [{
        "name": "B", "start": 0, "count": 1, "scaled": True, "registers": [{
            "address": 0, "table": "etc", "column": "x", "type": "int16" if signed else "uint16",
            "scale": scale}]}]})
    (row,) = Decoder(m).decode({"B": [raw]})
    assert math.isclose(row["x"], spec_reference(raw, signed, scale), rel_tol=0, abs_tol=1e-9)
    assert row["x"] == spec_reference(raw, signed, scale)


@given(raw=st.integers(0, 65535))
def test_int16_sign_is_exact(raw):
    got, _ = cell(decode_one("BMS2", 200, raw), "bank", "rack_temperature_imbalance_warning")
    assert got == (raw - 65536 if raw >= 32768 else raw)
    assert -32768 <= got <= 32767


def test_32bit_float_and_bit_fields():
    m = load_map_file(EXTENDED)
    import struct
    hi, lo = struct.unpack(">HH", struct.pack(">f", 12.5))
    (row,) = Decoder(m).decode({"DEV": [0x0001, 0x0002, lo, hi, 0xFFFF, 0xFC18, 0b1001]})
    assert row["energy"] == 65538
    assert row["power"] == 12.5
    assert row["total"] == -10.0 and row["out_of_range"] == ["total"]
    assert row["running"] == 1 and row["alarm"] == 0
