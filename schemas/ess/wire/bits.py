"""Bit packing, the one owner of both layouts a coil or discrete input travels in.

* Frame words (ess.codec): bit k of a bit block is in 16-bit word k // 16 at bit k % 16, least
  significant first; a word travels big-endian, so a frame's bytes hold bit k in byte
  2 (k // 16) + 1 - (k % 16) // 8, at bit k % 8.
* Modbus coil/discrete-input replies (function codes 1 and 2): bit k of the read is in byte
  k // 8 at bit k % 8, least significant first; unused high bits of the last byte are 0.

Collector (reply -> frame), simulator (model -> frame words, request -> reply bytes) and decoder
(frame -> 0/1 per address) all use these functions.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 16


def word_count(bits: int) -> int:
    """Frame words that hold `bits` bits."""
    return -(-bits // WORD_BITS)


def bit_position(k: int) -> tuple[int, int]:
    """(word, bit) of bit k of a block in its frame words."""
    return k // WORD_BITS, k % WORD_BITS


def pack_words(bits) -> list[int]:
    """0/1 values as frame words (ints), the first value in bit 0 of the first word."""
    bits = np.asarray(bits, dtype=np.uint32)
    padded = np.zeros(word_count(len(bits)) * WORD_BITS, dtype=np.uint32)
    padded[:len(bits)] = bits != 0
    return (padded.reshape(-1, WORD_BITS) << np.arange(WORD_BITS, dtype=np.uint32)).sum(1).tolist()


def unpack_words(words, count: int) -> np.ndarray:
    """The first `count` bits of frame words (ints), one 0/1 (uint16) per bit."""
    w = np.asarray(words, dtype=np.uint16)
    k = np.arange(count)
    return (w[k // WORD_BITS] >> (k % WORD_BITS) & 1).astype(np.uint16)


def set_frame_bits(frame: bytearray, offset: int, bits) -> None:
    """OR bits `offset`.. into a block's frame bytes (big-endian words, LSB first per word)."""
    for k, on in enumerate(bits):
        if on:
            pos = offset + k
            frame[2 * (pos // WORD_BITS) + 1 - pos % WORD_BITS // 8] |= 1 << (pos % 8)


def from_reply_bytes(data: bytes, count: int) -> list[int]:
    """The `count` bits of a coil/discrete-input reply's data bytes, one 0/1 each."""
    return [data[k >> 3] >> (k & 7) & 1 for k in range(count)]


def to_reply_bytes(bits) -> bytes:
    """0/1 values as a coil/discrete-input reply's data bytes (ceil(n / 8) bytes)."""
    out = bytearray(-(-len(bits) // 8))
    for k, on in enumerate(bits):
        if on:
            out[k >> 3] |= 1 << (k & 7)
    return bytes(out)


def reply_padding_ok(data: bytes, count: int) -> bool:
    """True when the unused high bits of a bit reply's last byte are 0 (as Modbus requires)."""
    return count % 8 == 0 or not data or data[-1] >> (count % 8) == 0
