"""ess.wire: one owner per wire contract (time, register CRC), exact, and no second owner."""

from __future__ import annotations

import ast
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.ledger import crc_of
from ess.frame_checks import POLL_MAX_US, POLL_MIN_US
from ess.wire.crc import as_int4, registers_crc
from ess.wire.times import EPOCH, US_MAX, US_MIN, iso, iso_z, to_datetime, to_us
from ess_collector.frozen import FrozenWatch

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["schemas/ess", "collector/ess_collector", "functions/ess_functions"]


@pytest.mark.parametrize("us", [0, 1, -1, 1_764_000_000_123_456, 1_999_999_999_999_999,
                                US_MIN, US_MAX, 2 ** 53 + 1])
def test_time_conversions_are_exact(us):
    assert to_us(to_datetime(us)) == us
    assert to_datetime(us) == EPOCH + timedelta(microseconds=us)
    assert iso(us) == (EPOCH + timedelta(microseconds=us)).isoformat()
    assert iso_z(us) == iso(us).replace("+00:00", "Z")


def test_the_years_a_timestamptz_holds():
    assert to_datetime(US_MIN) == datetime(1, 1, 1, tzinfo=UTC)
    assert to_datetime(US_MAX) == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert (POLL_MIN_US, POLL_MAX_US) == (-62135596800000000, 253402300799999999)


def test_a_naive_datetime_is_utc():
    t = datetime(2026, 11, 25, 1, 2, 3, 999999)
    assert to_us(t) == to_us(t.replace(tzinfo=UTC)) == 1_795_568_523_999_999


def _blocks(*regs: bytes | None) -> dict[str, BlockData]:
    return {f"b{i}": BlockData(BlockStatus.OK, r) if r is not None
            else BlockData(BlockStatus.TIMEOUT, b"") for i, r in enumerate(regs)}


def test_the_register_crc_runs_over_every_block_in_order():
    blocks = _blocks(b"\x00\x01\xff\xfe", b"\x80\x00")
    assert registers_crc(blocks) == zlib.crc32(b"\x00\x01\xff\xfe\x80\x00")
    assert registers_crc(_blocks(b"\x00\x01", None)) is None
    assert registers_crc({}) is None
    assert as_int4(0xFFFFFFFF) == -1 and as_int4(0x7FFFFFFF) == 0x7FFFFFFF


def test_the_collector_and_the_ledger_agree_on_the_crc():
    """The frozen watch and `frames.crc` must see the same runs (ess status finds them)."""
    blocks = _blocks(b"\x01\x01\x02\x03", b"\x12\x34")
    frame = Frame("s", 1, 1, 0, 1, "m", 1, blocks)
    watch = FrozenWatch(frozen_after=1.0)
    watch.update(blocks, 0.0)
    assert watch.crc is not None and crc_of(frame) == as_int4(watch.crc)
    assert crc_of(frame) < 0     # this one is above 2**31: stored as a negative int4


def _second_owners(path: Path) -> list[str]:
    """Places outside ess.wire that define the epoch or compute a CRC over registers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            text = ast.unparse(node)
            if text.startswith("datetime(1970") or (
                    text.startswith("zlib.crc32(") and "registers" in text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def test_no_second_owner_of_a_wire_contract():
    found = []
    for base in PRODUCT:
        for path in sorted((ROOT / base).rglob("*.py")):
            if "wire" not in path.relative_to(ROOT).parts:
                found += _second_owners(path)
    assert not found, "use ess.wire instead:\n" + "\n".join(found)


def test_the_owner_check_finds_a_second_owner(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("import zlib\nfrom datetime import datetime\n_E = datetime(1970, 1, 1)\n"
                   "c = zlib.crc32(b.registers, 0)\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert len(_second_owners(bad)) == 2
    finally:
        ROOT = old
