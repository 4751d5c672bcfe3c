"""A map with an alarm of every kind the events derive (test_episodes_wide.py): plain bits,
an inverted register and an inverted bit of a `bits` register, bits of a bitfield with and
without `for`, thresholds above and below with and without hysteresis and `for`, three racks;
three blocks that fail apart; frames of it at half-second polls."""

from __future__ import annotations

from ess.codec import BlockData, BlockStatus, Frame
from ess.regmap import parse_map

U16, I16 = 0xFFFF, 0x8000          # the sentinels: stored as NULL
WIDE = parse_map({
    "map_id": "wide", "version": 1, "sentinels": {"uint16": U16, "int16": I16},
    "blocks": [
        {"name": "S", "start": 0, "count": 4, "scaled": False, "registers": [
            {"address": 0, "table": "bank", "column": "flag", "type": "uint16"},
            {"address": 1, "table": "bank", "column": "inv", "type": "uint16", "invert": True},
            {"address": 2, "table": "bank", "column": "bf", "type": "uint16"},
            {"address": 3, "table": "bank", "type": "bits", "bits": [
                {"bit": 0, "column": "b0"}, {"bit": 2, "column": "b2", "invert": True}]}]},
        {"name": "T", "start": 10, "count": 2, "scaled": True, "registers": [
            {"address": 10, "table": "bank", "column": "temp", "type": "int16", "scale": 0.1},
            {"address": 11, "table": "bank", "column": "low", "type": "int16"}]},
        {"name": "R", "start": 20, "count": 6, "scaled": False, "registers": [
            *({"address": 19 + r, "table": "rack", "column": "rflag", "type": "uint16",
               "rack": r} for r in (1, 2, 3)),
            *({"address": 22 + r, "table": "rack", "column": "rtemp", "type": "int16",
               "rack": r} for r in (1, 2, 3))]}],
    "alarms": [
        {"name": "flag_on", "column": "flag", "severity": "fault"},
        {"name": "inv_on", "column": "inv", "severity": "fault", "for": 2},
        {"name": "bf1", "column": "bf", "severity": "fault", "bit": 1},
        {"name": "bf3", "column": "bf", "severity": "warning", "bit": 3, "for": "1500ms"},
        {"name": "b2_on", "column": "b2", "severity": "warning"},
        {"name": "temp_high", "column": "temp", "severity": "warning", "above": 50,
         "hysteresis": 5, "for": "3s"},
        {"name": "low_v", "column": "low", "severity": "fault", "below": 10},
        {"name": "low_h", "column": "low", "severity": "warning", "below": 20,
         "hysteresis": 4, "for": 1},
        {"name": "low_x", "column": "low", "severity": "warning", "below": 15,
         "hysteresis": 3},
        {"name": "rflag_on", "column": "rflag", "severity": "fault", "for": 2},
        {"name": "rhot", "column": "rtemp", "severity": "fault", "above": 30},
        {"name": "rhot_h", "column": "rtemp", "severity": "warning", "above": 25,
         "hysteresis": 5, "for": 1}]})
BANKS = (("s-a", 1), ("s-a", 2), ("s-b", 1))
T0 = 1_700_000_000 * 1_000_000
HALF_S = 500_000


def wide_frame(site: str, bank: int, t: int, blocks: dict) -> Frame:
    """The poll at half-second t; `blocks`: block name -> registers, or None (it failed)."""
    us = T0 + t * HALF_S
    data = {b.name: (BlockData(BlockStatus.TIMEOUT) if blocks.get(b.name) is None
                     else BlockData(registers=Frame.registers_to_bytes(list(blocks[b.name]))))
            for b in WIDE.blocks}
    return Frame(site, bank, t, us, us + 20_000, WIDE.map_id, WIDE.version, data)
