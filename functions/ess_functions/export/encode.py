"""Streams of the daily export: COPY's CSV text, hashed, and encoded as CSV, CSV.gz or Parquet.

Whatever the format, the file's facts (sha256, csv_bytes, first/last ts) are those of the CSV
text COPY produced; the encoders only change what is stored. Memory stays bounded: one COPY
block, plus for Parquet one row group of parsed rows (ROW_GROUP_BYTES of CSV text), held in
pyarrow's system allocator (it returns freed memory sooner than the default pool) and trimmed
after each row group; Parquet uploads in 1 MiB parts (its files are ~10x smaller than CSV's).
"""

from __future__ import annotations

import csv
import hashlib
import io
import zlib
from dataclasses import dataclass

from ess.db.bigquery import export_columns
from ess.db.pg import copy_out
from ess.db.schema import TableSpec

from .sql import OOR_SEPARATOR

BLOCK = 1 << 20          # bytes gathered from COPY rows before hashing/compressing/uploading
ROW_GROUP_BYTES = 2 << 20  # CSV text per Parquet row group (memory grows with it: see docs)
PAGE_BYTES = 256 << 10     # Parquet data page: what each column writer buffers before encoding


@dataclass(frozen=True)
class Format:
    """One file format of the export: its name, file suffix, content type and compression."""

    name: str
    suffix: str
    content_type: str
    compression: str
    upload_chunk: int = 8 << 20  # resumable upload part held in memory (a multiple of 256 KiB)


FORMATS = {f.name: f for f in (
    Format("csv", ".csv", "text/csv; charset=utf-8", "none"),
    Format("csv.gz", ".csv.gz", "application/gzip", "gzip"),
    # ~10x smaller than CSV: 1 MiB parts take about as many requests as CSV's 8 MiB ones
    Format("parquet", ".parquet", "application/vnd.apache.parquet", "zstd", 1 << 20),
)}
DEFAULT_FORMAT = "csv"


class CsvStream(io.RawIOBase):
    """Sink of COPY output: hashes, counts and forwards it (through an encoder) in blocks.

    COPY delivers one row per write; `copy` wraps this in an io.BufferedWriter, so per row only
    C code runs and this class sees blocks of about BLOCK bytes.
    """

    def __init__(self, out=None) -> None:
        super().__init__()
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.tail = b""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        block = bytes(data)
        self.sha.update(block)
        self.size += len(block)
        if self.head.count(b"\n") < 2 and len(self.head) < BLOCK:
            self.head += block[:BLOCK]
        self.tail = (self.tail + block)[-65536:] if len(block) < 65536 else block[-65536:]
        if self.out is not None:
            self.out.write(block)
        return len(block)

    def time_range(self) -> tuple[str | None, str | None]:
        """ts (the events: since) of the first and last data rows (None when there are none)."""
        lines = self.head.split(b"\n")
        if len(lines) < 3 or not lines[1]:
            return None, None
        header = next(csv.reader([lines[0].decode()]))
        at = header.index("ts" if "ts" in header else "since")
        last = self.tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        first_row = next(csv.reader([lines[1].decode()]))
        last_row = next(csv.reader([last.decode()]))
        return first_row[at], last_row[at]


class _Plain:
    """CSV as COPY wrote it."""

    def __init__(self, out) -> None:
        self.write, self.close = out.write, lambda: None


class _Gzip:
    """CSV, gzip-compressed on the fly."""

    def __init__(self, out) -> None:
        self.out, self.zip = out, zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, block: bytes) -> None:
        self.out.write(self.zip.compress(block))

    def close(self) -> None:
        self.out.write(self.zip.flush())


def arrow_schema(spec: TableSpec):
    """The Parquet schema of a table's files: the database's widths, UTC microsecond ts."""
    import pyarrow as pa

    # A widened plain `numeric` (uint64 with a float) can exceed any decimal type's digits
    # (a double's 1e300 has 301): its exact decimal text, as in the CSV and BigQuery (STRING).
    by_sql = {"text": pa.string(), "smallint": pa.int16(), "integer": pa.int32(),
              "bigint": pa.int64(), "numeric(20)": pa.decimal128(20, 0), "real": pa.float32(),
              "double precision": pa.float64(), "numeric": pa.string(),
              "timestamptz": pa.timestamp("us", tz="UTC"), "text[]": pa.list_(pa.string())}
    types = dict(spec.keys + spec.values)
    keys = set(spec.key_names)
    return pa.schema([pa.field(c, by_sql[types[c]], nullable=c not in keys)
                      for c in export_columns(spec)])


class _Parquet:
    """Parquet: CSV text parsed in row groups of ROW_GROUP_BYTES, typed, written as it comes.

    Only pyarrow's core, CSV reader and Parquet writer are loaded (no compute kernels: the
    import is most of the memory); each row group is parsed, written and dropped before the next.
    """

    def __init__(self, out, spec: TableSpec) -> None:
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        self.pa, self.schema, self.pool = pa, arrow_schema(spec), pa.system_memory_pool()
        self.at = self.schema.get_field_index("out_of_range")
        self.read = lambda text: pcsv.read_csv(
            pa.py_buffer(text),
            read_options=pcsv.ReadOptions(column_names=self.schema.names, block_size=len(text),
                                          use_threads=False),
            convert_options=pcsv.ConvertOptions(
                column_types={f.name: pa.string() if pa.types.is_list(f.type) else f.type
                              for f in self.schema},
                # COPY writes NULL as an empty field; text such as NaN or NA stays text
                strings_can_be_null=True, null_values=[""]),
            memory_pool=self.pool)
        self.writer = pq.ParquetWriter(out, self.schema, compression="zstd", use_dictionary=False,
                                       data_page_size=PAGE_BYTES, memory_pool=self.pool)
        self.pending = bytearray()
        self.header = True      # the first line is COPY's header

    def write(self, block: bytes) -> None:
        self.pending += block
        while len(self.pending) >= ROW_GROUP_BYTES:  # no field holds a newline (ids, numbers)
            cut = self.pending.rfind(b"\n", 0, ROW_GROUP_BYTES) + 1 \
                or self.pending.find(b"\n") + 1
            if not cut:
                break
            self._row_group(bytes(self.pending[:cut]))
            del self.pending[:cut]

    def _flags(self, column):
        """out_of_range: the CSV's 'a;b' text (or null) as a list of strings."""
        pa = self.pa
        kind = self.schema.field(self.at).type
        if column.null_count == len(column):
            return pa.nulls(len(column), kind, memory_pool=self.pool)
        return pa.array([v.split(OOR_SEPARATOR) if v is not None else None
                         for v in column.to_pylist()], kind, memory_pool=self.pool)

    def _row_group(self, text: bytes) -> None:
        if self.header:
            text, self.header = text[text.index(b"\n") + 1:], False
        if not text:
            return
        table = self.read(text)
        del text
        arrays = [c.combine_chunks() if c.num_chunks != 1 else c.chunk(0) for c in table.columns]
        del table
        if self.at >= 0:                   # the events type has no out_of_range
            arrays[self.at] = self._flags(arrays[self.at])
        group = self.pa.Table.from_arrays(arrays, schema=self.schema)
        del arrays
        self.writer.write_table(group, row_group_size=group.num_rows)
        del group
        self.pool.release_unused()  # malloc_trim: the row group's freed pages back to the OS

    def close(self) -> None:
        if self.pending:
            self._row_group(bytes(self.pending))
            self.pending.clear()
        self.writer.close()


def encoder(fmt: Format, out, spec: TableSpec):
    """The encoder of `fmt` writing into `out` (write(block), close())."""
    if fmt.name == "parquet":
        return _Parquet(out, spec)
    return _Gzip(out) if fmt.compression == "gzip" else _Plain(out)


def copy(cur, sql: str, out=None, fmt: Format | None = None,
         spec: TableSpec | None = None) -> tuple[CsvStream, int]:
    """Run one COPY; hash its CSV text and, with `out`, store it encoded as `fmt`."""
    enc = encoder(fmt or FORMATS[DEFAULT_FORMAT], out, spec) if out is not None else None
    stream = CsvStream(enc)
    buffered = io.BufferedWriter(stream, buffer_size=BLOCK)
    rows = copy_out(cur, sql, buffered)
    buffered.flush()
    if enc is not None:
        enc.close()
    return stream, rows
