"""Benchmarks of the data model: decode throughput and bytes per stored frame."""

from __future__ import annotations

import os
import time

import numpy as np
from ess.codec import BlockData, Frame
from ess.decode import decoder_for
from ess.regmap import RegisterMap, load_map

from .quiet import quiet_alarms


def realistic_raw(m: RegisterMap, n: int, seed: int = 0) -> np.ndarray:
    """n frames of raw registers whose decoded values lie inside their ranges."""
    dec = decoder_for(m)
    rng = np.random.default_rng(seed)
    raw = np.zeros((n, dec.width), dtype=np.uint16)
    for f in m.fields():
        col = dec.block_offset[f.block] + f.address - m.block(f.block).start
        lo, hi = (f.min, f.max) if f.has_range else (0, 100 if f.scale != 1 else 1)
        values = np.round(rng.uniform(lo, min(hi, lo + 3000), n) / f.scale).astype(np.int64)
        raw[:, col] = (values % 65536).astype(np.uint16)
    return raw


class OriginalDecoder:
    """Decoding as the original 2021 design did it: a sign test per register, scales kept as
    strings, rounding through a format string, ranges parsed from "min ~ max" text."""

    def __init__(self, m: RegisterMap):
        self.blocks = []
        for b in m.blocks:
            regs = [r for r in b.registers]
            scales = [str(r.fields[0].scale if r.fields else 1) + "\n" for r in regs]
            ranges = [f"{r.fields[0].min} ~ {r.fields[0].max}\n"
                      if r.fields and r.fields[0].has_range else "0 ~ 0\n" for r in regs]
            self.blocks.append((b.name, scales, ranges, b.scaled, b.name == "ETC"))

    @staticmethod
    def in_range(value, lo, hi):
        return lo <= value <= hi if hi >= lo else hi <= value <= lo

    def preprocess(self, data, scales, ranges, scaled):
        for i in range(len(data)):
            if data[i] <= 32767:
                pass
            elif 32767 < data[i] < 65535:
                data[i] = -(65535 - data[i] + 1)
        if not scaled:
            flags = [not self.in_range(d, 0, 3) for d in data]
            return data, flags
        for i in range(len(data)):
            scale = scales[i].strip("\n")
            data[i] = int(data[i]) * float(scale)
            data[i] = float("{:.3f}".format(data[i]))  # noqa: UP032 - as the 2021 design did
        flags = []
        for i in range(len(data)):
            r = ranges[i].strip("\n")
            lo, hi = float(r.split()[0]) if r.split()[0] != "None" else 0, float(
                r.split()[2]) if r.split()[2] != "None" else 0
            flags.append(not self.in_range(data[i], lo, hi))
        return data, flags

    def decode(self, blocks: dict[str, list[int]]):
        parts = {}
        for name, scales, ranges, scaled, is_etc in self.blocks:
            data = list(blocks[name])
            if is_etc:
                data.pop(3)
                scales, ranges = scales[:3] + scales[4:], ranges[:3] + ranges[4:]
            parts[name], _ = self.preprocess(data, scales, ranges, scaled)
        bms1, bms2 = parts["BMS1"], parts["BMS2"]
        bank = [1] + bms1[:9] + bms2[:34]
        for i in range(9):
            v = bank[1 + 9 + 21 + i]
            bank[1 + 9 + 21 + i] = 1 if v == 0 else (0 if v == 1 else v)
        racks = [[1, r] + bms1[9 + 16 * (r - 1):9 + 16 * r] + bms2[34 + 29 * (r - 1):34 + 29 * r]
                 for r in range(1, 9)]
        return bank, racks, [1] + parts["PCS"], [1] + parts["ETC"]


def bench_decode(seconds: float = 3.0) -> list[dict]:
    """Frames decoded per second on one core: ours (batched and single) vs the original 2021
    design's per-register decoding (OriginalDecoder)."""
    m = load_map("default")
    dec = decoder_for(m)
    raw = realistic_raw(m, 1000)

    def ours_batched():
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds:
            for tb in dec.decode_batch(raw[:100]):
                tb.column_lists()
                tb.out_of_range_lists()
            n += 100
        return n / (time.process_time() - t0)

    frames = [{name: raw[i, dec.block_offset[name]:dec.block_offset[name] + size].tolist()
               for name, size in zip(dec.block_names, dec.block_sizes)} for i in range(200)]

    def one_at_a_time(decode) -> float:
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds:
            decode(frames[n % 200])
            n += 1
        return n / (time.process_time() - t0)

    base = one_at_a_time(OriginalDecoder(m).decode)
    return [
        {"figure": "decode, frames/s per core (100-frame batches, typed Python values)",
         "ours": ours_batched(), "baseline": base, "unit": "frames/s",
         "target": ">= 50,000 and >= 10x baseline", "higher_is_better": True},
        {"figure": "decode, frames/s per core (one frame at a time, JSON-ready rows)",
         "ours": one_at_a_time(dec.decode), "baseline": base, "unit": "frames/s", "target": "",
         "higher_is_better": True},
    ]


def _frames(m: RegisterMap, n: int) -> list[Frame]:
    raw = realistic_raw(m, n, seed=1)
    dec = decoder_for(m)
    t0 = 1_764_000_000_000_000
    out = []
    spans = list(zip(dec.block_names, dec.block_sizes,
                     (dec.block_offset[b] for b in dec.block_names)))
    for i in range(n):     # a healthy bank: alarm registers clear (quiet.py), as stored rows go
        regs = quiet_alarms(m, {name: raw[i, off:off + size].tolist()
                                for name, size, off in spans})
        blocks = {name: BlockData(registers=Frame.registers_to_bytes(v))
                  for name, v in regs.items()}
        out.append(Frame("site-a", 1, i, t0 + i * 1_000_000, t0 + i * 1_000_000, "default", 1,
                         blocks))
    return out


def float8_layout(conn, m: RegisterMap) -> None:
    """Turn a migrated database into the original 2021 design's layout: every value column
    double precision."""
    from ess.db.quote import ident
    from ess.db.schema import table_specs

    cur = conn.cursor()
    for spec in table_specs([m]).values():
        for col, typ in spec.values:
            if typ != "text[]":
                cur.execute(f"ALTER TABLE {ident(spec.name)} ALTER COLUMN {ident(col)} "
                            "TYPE double precision")
    conn.commit()


def bench_storage(cluster, n: int = 3000) -> list[dict]:
    """Bytes on disk per stored frame (11 rows, tables + indexes): ours vs all-float8 columns."""
    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate
    from ess.db.writer import write_frames

    m = load_map("default")
    frames = _frames(m, n)
    sizes = {}
    for layout in ("ours", "float8"):
        name = f"bench_storage_{layout}_{os.getpid()}"
        conn = connect_dsn(cluster.create_database(name, timescale=True))
        migrate(conn, [m])
        if layout == "float8":
            float8_layout(conn, m)
        for k in range(0, n, 100):
            write_frames(conn, frames[k:k + 100], {m.key: m})
        cur = conn.cursor()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT sum(hypertable_size(format('%I', t)::regclass)) "
                    "FROM unnest(ARRAY['bank','rack','pcs','etc']) AS t")
        sizes[layout] = float(cur.fetchone()[0]) / n
        conn.close()
        cluster.drop_database(name)
    return [{"figure": "bytes on disk per stored frame (11 rows, with indexes)",
             "ours": sizes["ours"], "baseline": sizes["float8"], "unit": "bytes",
             "target": "smaller than all-float8", "higher_is_better": False}]
