"""Decoder: raw block registers to table rows (sign, scale, range flag, invert, split).

Compiled once per map, then applied to whole batches of frames with numpy: decoder (the
compiled map and its application), words (multi-register values).
"""

from .decoder import DecodeError, Decoder, TableBatch, decoder_for

__all__ = ["DecodeError", "Decoder", "TableBatch", "decoder_for"]
