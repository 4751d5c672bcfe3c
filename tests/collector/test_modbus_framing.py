"""The pure layers of our Modbus client: CRC-16, bit layouts, MBAP/RTU frame cutting and the
strict check of a reply against its request."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ess.wire import bits
from ess.wire.crc16 import crc16, crc_ok, with_crc
from ess_collector.modbus.errors import MismatchedReply
from ess_collector.modbus.framing import MbapFraming, RtuFraming
from ess_collector.modbus.pdu import Request, check_reply
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

READ = Request(unit=1, function=4, address=500, count=3)


def test_crc16_known_vectors():
    assert crc16(b"123456789") == 0x4B37                     # CRC-16/MODBUS check value
    frame = bytes.fromhex("0104020005") + bytes.fromhex("7933")
    assert crc_ok(frame) and with_crc(frame[:-2]) == frame
    assert not crc_ok(frame[:-1] + b"\x34")


@given(st.binary(min_size=1, max_size=64))
def test_crc16_agrees_with_pymodbus(data):
    assert with_crc(data)[-2:] == FramerRTU.compute_CRC(data).to_bytes(2, "big")


@given(st.lists(st.integers(0, 1), min_size=1, max_size=70), st.integers(0, 40))
def test_bit_layouts_round_trip(values, offset):
    words = bits.pack_words([0] * offset + values)
    assert bits.unpack_words(words, offset + len(values)).tolist()[offset:] == values
    frame = bytearray(2 * bits.word_count(offset + len(values)))
    bits.set_frame_bits(frame, offset, values)
    assert list(struct.unpack(f">{len(frame) // 2}H", frame)) == words
    wire = bits.to_reply_bytes(values)
    assert bits.from_reply_bytes(wire, len(values)) == values
    assert bits.reply_padding_ok(wire, len(values))
    for k in range(len(values)):
        word, pos = bits.bit_position(offset + k)
        assert words[word] >> pos & 1 == values[k]


def test_mbap_frames_are_cut_exactly_by_length():
    a = struct.pack(">HHHB", 7, 0, 9, 1) + bytes([4, 6]) + b"\x00\x01\x00\x02\x00\x03"
    b = struct.pack(">HHHB", 8, 0, 3, 1) + bytes([0x84, 2])
    buf = bytearray(a + b[:4])
    first = MbapFraming.cut(buf)
    assert (first.tid, first.unit, first.pdu) == (7, 1, a[7:])
    assert MbapFraming.cut(buf) is None and bytes(buf) == b[:4]     # incomplete: kept
    buf += b[4:]
    second = MbapFraming.cut(buf)
    assert (second.tid, second.pdu) == (8, bytes([0x84, 2])) and not buf


@pytest.mark.parametrize("head", [struct.pack(">HHHB", 1, 1, 3, 1),      # protocol id 1
                                  struct.pack(">HHHB", 1, 0, 1, 1),      # length 1
                                  struct.pack(">HHHB", 1, 0, 300, 1)])   # longer than Modbus
def test_mbap_garbage_is_refused(head):
    with pytest.raises(MismatchedReply):
        MbapFraming.cut(bytearray(head + b"\x04\x02\x00\x00"))


def test_rtu_frames_are_cut_by_their_header_and_crc_checked():
    reply = with_crc(bytes([1, 4, 6, 0, 1, 0, 2, 0, 3]))
    exc = with_crc(bytes([1, 0x84, 2]))
    buf = bytearray(reply + exc)
    got = RtuFraming.cut(buf)
    assert (got.unit, got.pdu, got.crc_ok) == (1, reply[1:-2], True)
    assert RtuFraming.cut(buf).pdu == bytes([0x84, 2]) and not buf
    broken = bytearray(reply[:-1] + bytes([reply[-1] ^ 1]))
    assert RtuFraming.cut(broken).crc_ok is False
    assert RtuFraming.cut(bytearray(reply[:5])) is None
    with pytest.raises(MismatchedReply):
        RtuFraming.cut(bytearray(bytes([1, 0x2B, 0, 0, 0])))
    assert RtuFraming.request(0, READ) == with_crc(bytes([1, 4, 0x01, 0xF4, 0, 3]))


def test_a_reply_is_accepted_only_when_it_answers_the_request():
    data = b"\x00\x01\x00\x02\x00\x03"
    assert check_reply(READ, bytes([4, 6]) + data).data == data
    assert check_reply(READ, bytes([0x84, 4])).exception == 4
    for pdu, what in [(bytes([3, 6]) + data, "function code 3"),
                      (bytes([4, 4]) + data, "byte count 4 but 6"),
                      (bytes([4, 4]) + data[:4], "2 registers for a read of 3"),
                      (bytes([4, 8]) + data + b"\0\0", "4 registers for a read of 3"),
                      (bytes([0x84, 4, 0]), "exception reply of 3 bytes"),
                      (bytes([4]), "without a byte count"), (b"", "empty")]:
        with pytest.raises(MismatchedReply, match=what):
            check_reply(READ, pdu)


def test_bit_replies_are_checked_to_the_bit():
    coils = Request(unit=2, function=1, address=10, count=10)
    assert check_reply(coils, bytes([1, 2, 0b10100101, 0b10])).bits == (1, 0, 1, 0, 0, 1, 0, 1,
                                                                        0, 1)
    with pytest.raises(MismatchedReply, match="bits beyond"):
        check_reply(coils, bytes([1, 2, 0xFF, 0b110]))
    with pytest.raises(MismatchedReply, match="byte count"):
        check_reply(coils, bytes([1, 1, 0xFF]))


def test_requests_are_validated():
    for bad in [dict(unit=1, function=5, address=0, count=1),
                dict(unit=1, function=4, address=0, count=126),
                dict(unit=1, function=1, address=0, count=2001),
                dict(unit=256, function=4, address=0, count=1),
                dict(unit=1, function=4, address=65535, count=2)]:
        with pytest.raises(ValueError):
            Request(**bad)
    assert Request(1, 2, 0, 2000).byte_count == 250
    assert np.array_equal(bits.unpack_words([0b101], 3), [1, 0, 1])
