"""Decoder: raw block registers to table rows (sign, scale, range flag, invert, split).

Compiled once per map, then applied to whole batches of frames with numpy: decoder (the
compiled map and its application), words (multi-register values), grouped (frames of several
maps decoded in one call, for the writer).
"""

from .decoder import DecodeError, Decoder, TableBatch, decoder_for
from .grouped import Decoded, decode_for_write

__all__ = ["DecodeError", "Decoded", "Decoder", "TableBatch", "decode_for_write", "decoder_for"]
