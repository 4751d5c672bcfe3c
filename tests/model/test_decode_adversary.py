"""Values a device can send, decoded as docs/data-spec.md says, against a reference written here
from the document with Python's struct, int and float (not the project's code): every type in
every byte order, integer extremes, float NaN/Inf/-0.0/subnormals, scaled values near overflow
and at rounding ties, SunSpec sentinels, and scale-factor registers with extreme exponents.

Frames go through the codec and `Decoder.decode_frames`, the ingest's path, and the row text
the database is written with is read back too."""

from __future__ import annotations

import math
import struct
from itertools import product

import numpy as np
import pytest
from ess.codec import BlockData, Frame, decode_frames, encode_frames
from ess.db.rowtext import key_heads, rows_text
from ess.decode import Decoder
from ess.regmap import parse_map

WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
         "float32": 2, "float64": 4}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
SUNSPEC = {"int16": 0x8000, "uint16": 0xFFFF, "int32": 0x80000000, "uint32": 0xFFFFFFFF,
           "int64": 1 << 63, "uint64": (1 << 64) - 1, "float32": 0x7FC00000}
F32 = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1.401298464324817e-45,
       1.1754942106924411e-38, 1.1754943508222875e-38, 3.4028234663852886e+38, 0.1, -1.5,
       16777217.0)
F64 = (math.nan, math.inf, -math.inf, -0.0, 5e-324, 2.225073858507201e-308,
       2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 0.1, -1.5,
       9007199254740993.0)
VALUES = {
    "int16": (-32768, -32767, -1, 0, 1, 5, 15, 25, 45, 125, 135, 32767),
    "uint16": (0, 1, 5, 45, 32768, 65534, 65535),
    "int32": (-(1 << 31), -1, 0, 1, (1 << 31) - 1, 0x01020304, -0x01020304),
    "uint32": (0, 1, (1 << 31), (1 << 32) - 1, 0x01020304),
    "int64": (-(1 << 63), -1, 0, (1 << 63) - 1, (1 << 53) + 1, 4000000000000002,
              0x0102030405060708, -0x0102030405060708, 548307629320713276),
    "uint64": (0, 1, (1 << 63), (1 << 64) - 1, (1 << 53) + 1, 0x0102030405060708),
    "float32": F32, "float64": F64}
SCALES = {"int16": (0.1, 0.01, 0.001, 0.0001), "uint16": (0.1, 0.0001), "int32": (0.001,),
          "uint32": (0.1,), "int64": (0.001, 0.5), "uint64": (0.001,),
          "float32": (1000.0, 0.001), "float64": (0.5, 0.001, 10.0)}
SF = (-32768, -11, -10, -4, -1, 0, 1, 4, 10, 11, 32767)


def pattern(typ: str, value) -> int:
    """The value's bit pattern, as the device holds it (two's complement, IEEE 754)."""
    if typ.startswith("float"):
        fmt = ">f" if typ == "float32" else ">d"
        return int.from_bytes(struct.pack(fmt, value), "big")
    return value & ((1 << (16 * WIDTH[typ])) - 1)


def registers(typ: str, order: str, bits: int) -> list[int]:
    """The registers a device sends for `bits` in byte order `order` (Telegraf's names)."""
    b = bits.to_bytes(2 * WIDTH[typ], "big")
    words = [b[i:i + 2] for i in range(0, len(b), 2)]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def value_of(typ: str, bits: int):
    if typ.startswith("float"):
        fmt = ">f" if typ == "float32" else ">d"
        return struct.unpack(fmt, bits.to_bytes(WIDTH[typ] * 2, "big"))[0]
    n = 16 * WIDTH[typ]
    return bits - (1 << n) if typ.startswith("int") and bits >> (n - 1) else bits


def reference(typ: str, bits: int, scale=None, sf=None, sentinel=None):
    """The stored value by docs/data-spec.md; None for NULL."""
    if sentinel is not None and bits == sentinel:
        return None
    v = value_of(typ, bits)
    if isinstance(v, float) and math.isnan(v):
        return None
    if scale is not None:
        x = float(v) * scale                   # one double multiplication
        if math.isnan(x):
            return None
        if not abs(x * 1000) < 2.0 ** 52:      # 1000 x is an integer already (or infinite)
            return x
        r = round(x * 1000) / 1000             # rint(1000 x), ties to even; then / 1000
        return math.copysign(r, x) if r == 0 else r    # rint keeps the sign of a zero
    if sf is not None:
        if not -10 <= sf <= 10:
            return None
        return float(v) / float(10 ** -sf) if sf < 0 else float(v) * float(10 ** sf)
    return v


def _cells(sentinels: bool) -> list[dict]:
    """One column per type, order and scaling (scale factor: the register at 0)."""
    cells = []
    for typ in WIDTH:
        orders = ORDERS if WIDTH[typ] > 1 else (None,)
        for order, scaling in product(orders, [None, *SCALES[typ], "sf"]):
            if scaling is not None and order not in (None, "ABCD", "DCBA"):
                continue
            cells.append({"typ": typ, "order": order, "scale": scaling})
    if sentinels:
        cells = [c for c in cells if c["scale"] in (None, "sf") and c["order"] in (
            None, "ABCD", "CDAB")]
    return cells


def _map(cells: list[dict], sentinels: bool):
    regs, address = [{"address": 0, "unused": True}], 1
    for i, c in enumerate(cells):
        r = {"address": address, "table": "pcs", "column": _column(i, sentinels),
             "type": c["typ"]}
        if c["order"]:
            r["byte_order"] = c["order"]
        if c["scale"] == "sf":
            r["scale_factor"] = 0
        elif c["scale"] is not None:
            r["scale"] = c["scale"]
        regs.append(r)
        address += WIDTH[c["typ"]]
    doc = {"map_id": _map_id(sentinels), "version": 1, "blocks": [
        {"name": "D", "function": "holding", "start": 0, "count": address, "scaled": True,
         "registers": regs}]}
    if sentinels:
        doc["sentinels"] = "sunspec"
    return parse_map(doc)


def _column(i: int, sentinels: bool) -> str:
    return f"{'s' if sentinels else 'c'}{i}"


def _map_id(sentinels: bool) -> str:
    return "adv-decode-s" if sentinels else "adv-decode"


def _frames(cells: list[dict], n: int, sentinels: bool):
    """`n` frames; in frame k, cell i holds value (k + i) of its type's list, the scale factor
    SF[k]; and the reference value of every cell."""
    frames, want = [], []
    for k in range(n):
        words, expected, sf = [SF[k % len(SF)] & 0xFFFF], [], SF[k % len(SF)]
        for i, c in enumerate(cells):
            typ = c["typ"]
            values = VALUES[typ] + ((value_of(typ, SUNSPEC[typ]),) if typ in SUNSPEC else ())
            bits = pattern(typ, values[(k + i) % len(values)])
            words += registers(typ, c["order"] or "ABCD", bits)
            scale = c["scale"] if c["scale"] != "sf" else None
            expected.append(reference(typ, bits, scale, sf if c["scale"] == "sf" else None,
                                      SUNSPEC.get(typ) if sentinels else None))
        regs = struct.pack(f">{len(words)}H", *words)
        frames.append(Frame("site-x", 1 + sentinels, k + 1,
                            1_700_000_000_000_000 + k * 1_000_000,
                            1_700_000_000_000_000 + k * 1_000_000 + 5000, _map_id(sentinels),
                            1, {"D": BlockData(registers=regs)}))
        want.append(expected)
    return decode_frames(encode_frames(frames)), want


def _same(got, want) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, int):
        return type(got) is int and got == want
    return got == want and math.copysign(1, got) == math.copysign(1, want)


def _decoded(sentinels: bool):
    """The cells, the frames, the reference values and the decoded table batch."""
    cells = _cells(sentinels)
    frames, want = _frames(cells, 3 * len(SF), sentinels)
    (tb,), _ = Decoder(_map(cells, sentinels)).decode_frames(frames)
    return cells, frames, want, tb


@pytest.mark.filterwarnings("error::RuntimeWarning")     # an infinity is a value, not an error
@pytest.mark.parametrize("sentinels", [False, True])
def test_every_value_decodes_as_the_data_spec_says(sentinels):
    cells, _frames_, want, tb = _decoded(sentinels)
    bad = []
    for k, row in enumerate(tb.row_lists()):
        for i, (got, w) in enumerate(zip(row, want[k])):
            if not _same(got, w):
                c = cells[i]
                bad.append(f"frame {k} {c['typ']} {c['order']} {c['scale']}: {got!r}, "
                           f"expected {w!r}")
    assert not bad, f"{len(bad)} wrong:\n" + "\n".join(bad[:40])


@pytest.mark.parametrize("sentinels", [False, True])
def test_the_row_text_written_to_the_database_reads_back_as_the_value(sentinels):
    """(These values are beyond the digit tables: repr writes them; the tables are checked
    below with values they take.)"""
    cells, frames, want, tb = _decoded(sentinels)
    for k, line in enumerate(rows_text(tb, key_heads(frames)).split("\n")):
        for i, (text, w) in enumerate(zip(line.split(",")[4:], want[k])):
            got = None if text == "" else int(text) if isinstance(w, int) else float(text)
            assert _same(got, w), (k, cells[i], text, w)


def _head(tb, n: int):
    from dataclasses import replace

    return replace(tb, frame=tb.frame[:n], values=tb.values[:n],
                   out_of_range=tb.out_of_range[:n],
                   exact={j: c[:n] for j, c in (tb.exact or {}).items()} or None)


def test_the_reference_encodes_as_the_data_spec_names_the_orders():
    assert registers("int32", "CDAB", 0x01020304) == [0x0304, 0x0102]
    assert registers("int32", "BADC", 0x01020304) == [0x0201, 0x0403]
    assert registers("uint64", "CDAB", 0x0102030405060708) == [0x0708, 0x0506, 0x0304, 0x0102]
    assert registers("uint64", "DCBA", 0x0102030405060708) == [0x0807, 0x0605, 0x0403, 0x0201]
    assert reference("int16", 45, 0.0001) == 0.005 and reference("int16", 25, 0.0001) == 0.002
    assert reference("int64", 4000000000000002, sf=1) == 40000000000000016.0
    assert np.isinf(reference("float64", pattern("float64", 1.7976931348623157e308), 10.0))


def test_a_zero_keeps_its_sign_in_the_row_text_of_any_batch():
    """A float register's -0.0 (and a negative raw that rounds to zero) is written the same
    whether the batch is formatted with numpy's digit tables (100 cells or more) or repr."""
    cells = [{"typ": "float32", "order": None, "scale": None},
             {"typ": "int16", "order": None, "scale": 0.0001},
             {"typ": "int16", "order": None, "scale": 0.1}]
    regmap = _map(cells, False)
    words = [0] + registers("float32", "ABCD", pattern("float32", -0.0)) + [0xFFFF, 0xFFF6]
    regs = struct.pack(f">{len(words)}H", *words)
    frames = [Frame("site-x", 1, k + 1, 1_700_000_000_000_000 + k, 1_700_000_000_000_001 + k,
                    "adv-decode", 1, {"D": BlockData(registers=regs)}) for k in range(40)]
    (tb,), _ = Decoder(regmap).decode_frames(frames)
    want = [reference("float32", pattern("float32", -0.0)), reference("int16", 0xFFFF, 0.0001),
            reference("int16", 0xFFF6, 0.1)]
    assert [math.copysign(1, w) for w in want] == [-1, -1, -1]
    for part in (tb, _head(tb, 1)):     # 120 cells: digit tables; 3 cells: repr
        for line in rows_text(part, key_heads(frames)).split("\n"):
            fields = line.split(",")[4:]
            assert all(_same(float(t), w) for t, w in zip(fields, want)), (len(part), fields)


def _as_stored(w, sql: str):
    """The reference as the column's SQL type holds it (a `real` keeps the nearest float4)."""
    if w is None or sql != "real":
        return w
    return float(str(np.float32(w)))


def test_the_database_stores_every_value_as_the_data_spec_says(timescale_db):
    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate
    from ess.db.quote import ident
    from ess.db.schema import sql_type
    from ess.db.writer import write_frames

    conn = connect_dsn(timescale_db)
    maps, bad = {}, []
    try:
        for sentinels in (False, True):
            cells = _cells(sentinels)
            regmap = maps[sentinels] = _map(cells, sentinels)
            migrate(conn, list(maps.values()))
            frames, want = _frames(cells, len(SF), sentinels)
            write_frames(conn, frames, {m.key: m for m in maps.values()})
            fields = regmap.table_fields("pcs")
            cur = conn.cursor()
            cur.execute("SELECT " + ", ".join(ident(f.column) for f in fields) + " FROM pcs "
                        "WHERE bank_id = %s ORDER BY ts", (1 + sentinels,))
            for k, row in enumerate(cur.fetchall()):
                for f, c, got, w in zip(fields, cells, row, want[k], strict=True):
                    got = int(got) if isinstance(w, int) and got is not None else got
                    if not _same(got, _as_stored(w, sql_type(f))):
                        bad.append(f"{f.column} {c} frame {k}: {got!r}, expected {w!r}")
            conn.rollback()
    finally:
        conn.close()
    assert not bad, f"{len(bad)} wrong:\n" + "\n".join(bad[:40])


@pytest.mark.parametrize("raw", [548307629320713276, 4503599627370497123, -548307629320713276])
def test_a_scaled_value_past_thousandths_is_stored_as_multiplied(raw):
    """From |1000 x| >= 2^52, 1000 x is an integer already: rint has nothing to round, and
    dividing 1000 x by 1000 again only adds an error (548307629320713276 x 0.001 is
    548307629320713.25, the double nearest the exact 548307629320713.276, not .375)."""
    cells = [{"typ": "int64", "order": None, "scale": 0.001}]
    regmap = _map(cells, False)
    words = [0] + registers("int64", "ABCD", pattern("int64", raw))
    frame = Frame("site-x", 1, 1, 1_700_000_000_000_000, 1_700_000_000_000_001, "adv-decode",
                  1, {"D": BlockData(registers=struct.pack(f">{len(words)}H", *words))})
    (tb,), _ = Decoder(regmap).decode_frames([frame])
    assert tb.row_lists()[0][0] == float(raw) * 0.001
